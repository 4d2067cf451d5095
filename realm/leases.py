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

A lease is taken atomically (`PLACE`) with a fencing number that only
grows; its owner renews all of its leases in one `RENEW` a second.  An
owner that finds a lease of its gone (expired while it was cut off from
Redis, and taken by another process) ends its copy of the realm at once:
two processes never both run a realm once they can both reach Redis.
"""

from __future__ import annotations

PREFIX = "realm:"
NODES = PREFIX + "nodes"
REALMS = PREFIX + "realms"
FENCE = PREFIX + "fence"


def heart(node: str) -> str:
    return f"{PREFIX}node:{node}"


def addrs(node: str) -> str:
    return f"{PREFIX}addrs:{node}"


def lease(realm: str) -> str:
    return f"{PREFIX}lease:{realm}"


def channel(node: str) -> str:
    """The pub/sub channel a process listens on."""
    return f"{PREFIX}to:{node}"


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: lease, realms, fence.  ARGV: realm, me, max realms (0: any), ttl ms.
#: -> {owner, fence}, or {"", "full"} when the service holds its limit.
PLACE = _NOW + """
local owner = redis.call('HMGET', KEYS[1], 'node', 'fence')
if owner[1] then return {owner[1], owner[2]} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local most = tonumber(ARGV[3])
if most > 0 and redis.call('ZCARD', KEYS[2]) >= most then return {'', 'full'} end
local fence = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'node', ARGV[2], 'fence', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return {ARGV[2], tostring(fence)}
"""

#: KEYS: lease, realms.  ARGV: max realms (0: any).
#: -> {owner, fence} of a realm in play, or {"", "full"|"free"}.
LOOKUP = _NOW + """
local owner = redis.call('HMGET', KEYS[1], 'node', 'fence')
if owner[1] then return {owner[1], owner[2]} end
local most = tonumber(ARGV[1])
if most > 0 and redis.call('ZCOUNT', KEYS[2], now, '+inf') >= most then return {'', 'full'} end
return {'', 'free'}
"""

#: The heartbeat.  KEYS: heart, addrs, nodes, realms, fence, then n leases,
#: then m peers' hearts.  ARGV: me, ttl ms, n, then n realms, n fences.
#: -> {realms lost (another owns them now), peers gone (no heartbeat)}.
#: A lease Redis has forgotten (it restarted) is written back, and the
#: fencing counter kept above it.
RENEW = _NOW + """
local me, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], now + ttl, me)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local top = tonumber(redis.call('GET', KEYS[5]) or '0')
local lost = {}
for i = 1, n do
  local key, realm, fence = KEYS[5 + i], ARGV[3 + i], ARGV[3 + n + i]
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
for i = 6 + n, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then table.insert(dead, KEYS[i]) end
end
return {lost, dead}
"""

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
ADMIT = _NOW + """
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
