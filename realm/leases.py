"""What the cluster keeps in Redis, and the scripts that change it.

Everything here is soft state that the processes can rebuild: when Redis
restarts empty, each process writes back what it holds (its heartbeat,
its connections per address, its realms' leases) within a second of
reconnecting.  No game is kept only in Redis.

Keys (one Redis database, the `--cluster` URL's):

    realm:node:NODE     "1", expires TTL ms after the last heartbeat
    realm:nodes         zset: NODE -> when its heartbeat expires (ms)
    realm:addrs:NODE    hash: ADDRESS -> that process's connections from it
    realm:lease:REALM   hash {node, fence}: who runs REALM; expires TTL ms
                        after its owner's last renewal
    realm:realms        zset: REALM -> when its lease expires (ms)
    realm:fence         the last fencing number handed out
    realm:epoch         set once by the first heartbeat: gone, Redis has
                        lost what it held (it restarted empty)
    realm:settle        while it lives (TTL ms), no realm is placed anew
    realm:guess:...     wrong Lord passwords (realm.guesses)

A lease is taken atomically (`PLACE`) with a fencing number that only
grows; its owner renews all of its leases in one `RENEW` a second.  An
owner that finds a lease of its gone (expired while it was cut off from
Redis, and taken by another process) ends its copy of the realm at once:
two processes never both run a realm once they can both reach Redis.

When Redis comes back empty, the first process that had known it before
to renew, place or look up a realm finds `realm:epoch` gone and sets
`realm:settle` for TTL ms: meanwhile every live process reconnects and
writes its leases back (and the fencing counter above them), a realm
nobody holds is refused as unreachable rather than started afresh (so a
realm still playing on one process is not taken over by another that
reconnected first), and no process is taken for dead for a heartbeat it
has not written back yet.  Redis may also lose its data with every
connection open (a FLUSHALL, a failover to an empty replica): then the
next placement may come before any heartbeat, so it checks the epoch
too.

`Addresses` keeps this process's connections per address there, for
`--max-per-address` across the service.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed

from realm.redis import NOW, PREFIX

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from realm.redis import RedisLink
    from realm.server import Client, RealmServer

NODES = PREFIX + "nodes"
REALMS = PREFIX + "realms"
FENCE = PREFIX + "fence"
EPOCH = PREFIX + "epoch"
SETTLE = PREFIX + "settle"


def heart(node: str) -> str:
    return f"{PREFIX}node:{node}"


def addrs(node: str) -> str:
    return f"{PREFIX}addrs:{node}"


def lease(realm: str) -> str:
    return f"{PREFIX}lease:{realm}"


def channel(node: str) -> str:
    """The pub/sub channel a process listens on."""
    return f"{PREFIX}to:{node}"


#: The lease of KEYS[1], or {false} if none, or if its owner's heartbeat has
#: lapsed: a lease may outlive its owner's heartbeat by a millisecond (Redis
#: 7.0 reads the clock at each command of a script), and a process that saw
#: the owner gone must then find its realms free.
_OWNER = f"""
local owner = redis.call('HMGET', KEYS[1], 'node', 'fence')
if owner[1] and redis.call('EXISTS', '{PREFIX}node:' .. owner[1]) == 0 then owner = {{false}} end
"""


def _epoch(epoch: int, settle: int, me: int, ttl: int, known: int) -> str:
    """Lua: `realm:epoch` (KEYS[epoch]) gone, Redis has lost what it held:
    set it again, and if this process (ARGV[me]) knew this Redis before
    (ARGV[known] is '1'), let the leases be written back for ARGV[ttl] ms
    (KEYS[settle])."""
    return f"""
if redis.call('EXISTS', KEYS[{epoch}]) == 0 then
  redis.call('SET', KEYS[{epoch}], ARGV[{me}])
  if ARGV[{known}] == '1' then redis.call('SET', KEYS[{settle}], ARGV[{me}], 'PX', ARGV[{ttl}]) end
end
"""


#: KEYS: lease, realms, fence, settle, epoch.  ARGV: realm, me, max realms
#: (0: any), ttl ms, known.  -> {owner, fence}, or {"", "full"} when the
#: service holds its limit, {"", "settling"} while Redis's leases are being
#: written back.
PLACE = NOW + _OWNER + """
if owner[1] then return {owner[1], owner[2]} end
""" + _epoch(5, 4, 2, 4, 5) + """
if redis.call('EXISTS', KEYS[4]) == 1 then return {'', 'settling'} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local most = tonumber(ARGV[3])
if most > 0 and redis.call('ZCARD', KEYS[2]) >= most then return {'', 'full'} end
local fence = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'node', ARGV[2], 'fence', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return {ARGV[2], tostring(fence)}
"""

#: KEYS: lease, realms, settle, epoch.  ARGV: max realms (0: any), me, ttl
#: ms, known.  -> {owner, fence} of a realm in play, or {"",
#: "full"|"free"|"settling"}.
LOOKUP = NOW + _OWNER + """
if owner[1] then return {owner[1], owner[2]} end
""" + _epoch(4, 3, 2, 3, 4) + """
if redis.call('EXISTS', KEYS[3]) == 1 then return {'', 'settling'} end
local most = tonumber(ARGV[1])
if most > 0 and redis.call('ZCOUNT', KEYS[2], now, '+inf') >= most then return {'', 'full'} end
return {'', 'free'}
"""

#: The heartbeat.  KEYS: heart, addrs, nodes, realms, fence, epoch, settle,
#: then n leases, then m peers' hearts.  ARGV: me, ttl ms, n, known (1: this
#: process had reached this Redis before), then n realms, n fences.
#: -> {realms lost (another owns them now), peers gone (no heartbeat, and
#: not while Redis's keys are being written back), 1 while they are (write
#: the connections per address back too)}.  A lease Redis has forgotten
#: (it restarted, or was emptied) is written back, and the fencing counter
#: kept above it.
RENEW = NOW + """
local forgot = redis.call('EXISTS', KEYS[6]) == 0 or redis.call('EXISTS', KEYS[7]) == 1
""" + _epoch(6, 7, 1, 2, 4) + """
local me, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], now + ttl, me)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local top = tonumber(redis.call('GET', KEYS[5]) or '0')
local lost = {}
for i = 1, n do
  local key, realm, fence = KEYS[7 + i], ARGV[4 + i], ARGV[4 + n + i]
  local owner = redis.call('HMGET', key, 'node', 'fence')
  if not owner[1] then
    redis.call('HSET', key, 'node', me, 'fence', fence)
    if tonumber(fence) > top then
      top = tonumber(fence)
      redis.call('SET', KEYS[5], fence)
    end
    owner = {me, fence}
  end
  if owner[1] == me and owner[2] == fence then
    redis.call('PEXPIRE', key, ttl)
    redis.call('ZADD', KEYS[4], now + ttl, realm)
  else
    table.insert(lost, realm)
  end
end
local dead = {}
if redis.call('EXISTS', KEYS[7]) == 0 then
  for i = 8 + n, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then table.insert(dead, KEYS[i]) end
  end
end
return {lost, dead, forgot and 1 or 0}
"""

Call = tuple[list[str], list[Any]]  # a script's KEYS and ARGV


def place(realm: str, me: str, most: int, ttl_ms: int, known: bool) -> Call:
    return [lease(realm), REALMS, FENCE, SETTLE, EPOCH], [realm, me, most, ttl_ms, int(known)]


def lookup(realm: str, me: str, most: int, ttl_ms: int, known: bool) -> Call:
    return [lease(realm), REALMS, SETTLE, EPOCH], [most, me, ttl_ms, int(known)]


def renew(me: str, ttl_ms: int, known: bool, fences: dict[str, str], peers: list[str]) -> Call:
    """RENEW's keys and arguments: `fences` are the realms `me` runs."""
    realms = list(fences.items())
    keys = [heart(me), addrs(me), NODES, REALMS, FENCE, EPOCH, SETTLE,
            *(lease(k) for k, _ in realms), *(heart(p) for p in peers)]
    return keys, [me, ttl_ms, len(realms), int(known), *(k for k, _ in realms),
                  *(f for _, f in realms)]


#: KEYS: lease, realms.  ARGV: realm, me, fence.  Let a realm go.
RELEASE = """
local owner = redis.call('HMGET', KEYS[1], 'node', 'fence')
if owner[1] == ARGV[2] and owner[2] == ARGV[3] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"""

#: KEYS: nodes, my addrs.  ARGV: address, limit, ttl ms, me, addrs prefix.
#: -> 1 and the connection counted, or 0: the address holds its limit.
ADMIT = NOW + """
local total = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if node ~= ARGV[4] then
    total = total + tonumber(redis.call('HGET', ARGV[5] .. node, ARGV[1]) or '0')
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

#: KEYS: my addrs.  ARGV: pairs of address, connections gone.
FORGET = """
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
"""

#: KEYS: my addrs.  ARGV: ttl ms, then pairs of address, connections.
#: Write this process's connections back after Redis came back.
RECOUNT = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

#: KEYS: heart, addrs, nodes.  ARGV: me.  A process that leaves.
GOODBYE = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


class Addresses:
    """This process's connections per address, kept in Redis so that every
    process counts them (`--max-per-address` across the service)."""

    def __init__(self, server: RealmServer, redis: RedisLink, node: str, ttl_ms: int,
                 clock: IReactorTime) -> None:
        self.server = server
        self.redis = redis
        self.node = node
        self.ttl_ms = ttl_ms
        self.clock = clock
        self._counted: set[Client] = set()  # the connections Redis counts
        self._forget: Counter[str] = Counter()

    def admit(self, client: Client) -> Deferred[bool]:
        limit = self.server.settings.max_per_address
        if not limit or not self.redis.up:
            return succeed(True)  # counted here only; written back when Redis is
        d = self.redis.script(ADMIT, [NODES, addrs(self.node)], [
            client.address, limit, self.ttl_ms, self.node, PREFIX + "addrs:"])

        def counted(answer: int) -> bool:
            if answer:
                self._counted.add(client)
                if client not in self.server.sessions:  # it went while Redis counted
                    self.released(client)
            return bool(answer)

        return d.addCallback(counted).addErrback(lambda _: True)

    def released(self, client: Client) -> None:
        if client in self._counted:
            self._counted.discard(client)
            if not self._forget:
                self.clock.callLater(0, self._forget_now)
            self._forget[client.address] += 1

    def _forget_now(self) -> None:
        gone, self._forget = self._forget, Counter()
        if gone and self.redis.up:
            args = [x for address, n in gone.items() for x in (address, n)]
            self.redis.script(FORGET, [addrs(self.node)], args).addErrback(
                lambda _: None)  # lost with Redis: written back whole when it returns

    def recount(self) -> None:
        """Redis is back: write back every connection of this process."""
        counts = self.server.connections_by_address()
        args: list[Any] = [self.ttl_ms, *(x for a, n in counts.items() for x in (a, n))]
        self.redis.script(RECOUNT, [addrs(self.node)], args).addErrback(lambda _: None)
        self._counted = set(self.server.sessions)
        self._forget.clear()

    def down(self) -> None:
        self._counted.clear()
