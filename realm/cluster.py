"""Many processes, one service: this process's part in a `--cluster`.

A connection is served by the process it reached; the realm it joins is
run by exactly one process, its lease holder in Redis (realm.leases).  A
member whose realm runs elsewhere sits there as a `RemoteMember` proxy,
and here on a `RemoteSeat`: its lines go to the owner, the owner's lines
come back, all through realm.relay, one Redis message per process per
reactor turn.  A realm whose members are all here costs no Redis traffic
per line: it is a plain local realm with a lease renewed once a second.

Failures, as the contract says:
- a process that dies stops renewing: within `ttl` its heartbeat is gone;
  the processes it shared realms with remove its members from theirs
  (as for a lost connection) and end its realms for their members; its
  leases expire and the realms can be started again elsewhere.
- Redis unreachable: what needs it (a realm not running here) is refused
  with `*** Error: ` (`wire.UNREACHABLE`); realms here go on; members
  across processes are let go, since lines between them could be lost.
  When Redis answers again this process writes back what it holds.
- shutting down: its realms end for everyone, its members leave theirs.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import task
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.logger import Logger

from realm import leases, wire
from realm.names import JoinError
from realm.redis import RedisLink, RedisURL, Unreachable
from realm.relay import Op, Relay, decode
from realm.server import LocalSeat, play

if TYPE_CHECKING:
    from realm.realm import Realm
    from realm.server import Client, Player, RealmServer, Seat

log = Logger()

MOVED = "moved"  # the realm is not (or no longer) run where it was asked


class RemoteMember:
    """At the realm's owner: a member connected to another process."""

    __slots__ = ("cluster", "home", "sid", "name", "prefix", "address", "realm")

    def __init__(self, cluster: Cluster, home: str, sid: int, name: str, address: str,
                 realm: Realm) -> None:
        self.cluster = cluster
        self.home = home
        self.sid = sid
        self.name = name
        self.prefix = name.encode("ascii") + b": "
        self.address = address
        self.realm = realm

    def send(self, data: bytes) -> None:
        self.cluster.relay.deliver(self.home, self.sid, data)

    def close(self) -> None:
        if self.cluster.proxies.pop((self.home, self.sid), None) is not None:
            self.cluster.relay.send(self.home, ["close", self.sid])

    def leave(self) -> None:
        self.send(wire.FAREWELL.notice(name=self.name))
        self.realm.remove(self)
        self.close()


class RemoteSeat:
    """Here: a member's seat in a realm another process runs."""

    __slots__ = ("cluster", "owner", "sid", "realm_name", "open")

    def __init__(self, cluster: Cluster, owner: str, sid: int, realm_name: str) -> None:
        self.cluster = cluster
        self.owner = owner
        self.sid = sid
        self.realm_name = realm_name
        self.open = True

    def line(self, raw: bytes, text: str) -> None:
        self.cluster.relay.send(self.owner, ["line", self.sid, text])

    def gone(self, why: str) -> None:
        if self.open:
            self.open = False
            self.cluster.seated.pop(self.sid, None)
            self.cluster.relay.send(self.owner, ["gone", self.sid, why])


class Cluster:
    """Where realms run, their leases, the relay, and the other processes."""

    def __init__(self, server: RealmServer, reactor: Any, url: RedisURL,
                 ttl: float = 5.0, beat: float = 1.0, ask: float = 3.0) -> None:
        self.server = server
        self.clock = reactor
        self.node = secrets.token_hex(6)
        self.ttl_ms = int(ttl * 1000)
        self.ask_timeout = ask
        self.redis = RedisLink(reactor, url, leases.channel(self.node), self._received,
                               self._up, self._down)
        self.relay = Relay(reactor, self.node, self.redis.publish)
        self.fences: dict[str, str] = {}  # realm run here -> its fencing number
        self.proxies: dict[tuple[str, int], RemoteMember] = {}
        self.seated: dict[int, tuple[Player, RemoteSeat | None]] = {}
        self.rtt = 0.0  # seconds the last heartbeat took, for the metrics
        self._asking: dict[int, tuple[str, Deferred[str]]] = {}
        self._ids = itertools.count(1)
        self._counted: set[Client] = set()
        self._forget: Counter[str] = Counter()
        self._beat = task.LoopingCall(self._heartbeat)
        self._beat.clock = reactor
        self._beat_every = beat
        self._handlers: dict[str, Callable[..., None]] = {
            "check": self._on_check, "join": self._on_join, "line": self._on_line,
            "gone": self._on_gone, "checked": self._on_answer, "joined": self._on_answer,
            "send": self._on_send, "close": self._on_close, "bye": self._on_bye,
        }

    def reachable(self) -> bool:
        return bool(self.redis.up)

    def relayed(self) -> int:
        return self.relay.relayed

    def start(self) -> None:
        log.info("Cluster node {node} on {url}", node=self.node, url=str(self.redis.url))
        self.redis.start()
        self._beat.start(self._beat_every, now=False)

    # -- connections per address, across the service ---------------------------
    def admit(self, client: Client) -> Deferred[bool]:
        limit = self.server.settings.max_per_address
        if not limit or not self.redis.up:
            return succeed(True)  # counted here only; written back when Redis is
        d = self.redis.script(leases.ADMIT, [leases.NODES, leases.addrs(self.node)], [
            client.address, limit, self.ttl_ms, self.node, leases.PREFIX + "addrs:"])

        def counted(answer: int) -> bool:
            if answer:
                self._counted.add(client)
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
            self.redis.script(leases.FORGET, [leases.addrs(self.node)], args).addErrback(
                lambda _: None)  # lost with Redis: written back whole when it returns

    # -- where a realm runs ---------------------------------------------------------
    def check(self, key: str, name: str, address: str) -> Deferred[None]:
        return Deferred.fromCoroutine(self._check(key, name, address))

    async def _check(self, key: str, name: str, address: str) -> None:
        for _ in range(3):
            owner, fence = await self._lookup(leases.LOOKUP, key)
            if owner == self.node and key in self.server.realms:
                self.server.realms[key].check(name)
                return
            if owner in ("", self.node):
                self.server.new_realm(key, address)  # the local limits
                return
            answer = await self._ask(owner, ["check", next(self._ids), key, name, address, fence],
                                     key)
            if answer != MOVED:
                if answer:
                    raise JoinError(answer.encode("utf-8"))
                return
        raise JoinError(wire.UNREACHABLE.notice(realm=key))

    def join(self, member: Player, key: str) -> Deferred[Seat]:
        return Deferred.fromCoroutine(self._join(member, key))

    async def _join(self, member: Player, key: str) -> Seat:
        for _ in range(3):
            owner, fence = await self._lookup(leases.PLACE, key)
            if owner == self.node:
                realm = self.server.found(key, member.address)
                realm.add(member)
                self.fences[key] = fence
                return LocalSeat(realm, member)
            sid = next(self._ids)
            self.seated[sid] = (member, None)  # its lines may come before the answer
            try:
                answer = await self._ask(
                    owner, ["join", sid, key, member.name, member.address, fence], key)
            except JoinError:
                self.seated.pop(sid, None)
                self.relay.send(owner, ["gone", sid, wire.LEFT_WHY])  # if it came late
                raise
            if answer == "":
                seat = RemoteSeat(self, owner, sid, key)
                self.seated[sid] = (member, seat)
                return seat
            self.seated.pop(sid, None)
            if answer != MOVED:
                raise JoinError(answer.encode("utf-8"))
        raise JoinError(wire.UNREACHABLE.notice(realm=key))

    async def _lookup(self, script: str, key: str) -> tuple[str, str]:
        """(owner, fence) of the realm `key` (PLACE takes it if no one runs it)."""
        most = self.server.settings.max_realms
        if script is leases.PLACE:
            keys, args = [leases.lease(key), leases.REALMS, leases.FENCE], [
                key, self.node, most, self.ttl_ms]
        else:
            keys, args = [leases.lease(key), leases.REALMS], [most]
        try:
            owner, fence = await self.redis.script(script, keys, args)
        except Unreachable:
            raise JoinError(wire.UNREACHABLE.notice(realm=key)) from None
        owner, fence = owner.decode(), fence.decode()
        if owner == "" and fence == "full":
            raise JoinError(wire.TOO_MANY_REALMS.notice(limit=most))
        return owner, fence

    async def _ask(self, owner: str, op: Op, key: str) -> str:
        """Send `op` to the realm's owner; its answer, or JoinError."""
        d: Deferred[str] = Deferred()
        self._asking[op[1]] = (owner, d)
        self.relay.send(owner, op)
        d.addTimeout(self.ask_timeout, self.clock)
        try:
            return await d
        except (TimeoutError, Unreachable):
            raise JoinError(wire.UNREACHABLE.notice(realm=key)) from None
        finally:
            self._asking.pop(op[1], None)

    def ended(self, realm: Realm) -> None:
        """A realm run here is over: let its lease go."""
        fence = self.fences.pop(realm.name, None)
        if fence is not None and self.redis.up:
            self.redis.script(leases.RELEASE, [leases.lease(realm.name), leases.REALMS],
                              [realm.name, self.node, fence]).addErrback(lambda _: None)

    # -- messages from other processes --------------------------------------------
    def _received(self, payload: bytes) -> None:
        try:
            sender, ops = decode(payload)
        except ValueError:
            log.warn("Ignored a message on realm's channel that is not realm's")
            return
        for op in ops:
            handler = self._handlers.get(op[0])
            if handler is None:
                log.warn("Ignored an unknown op {op!r} from {node}", op=op[0], node=sender)
                continue
            try:
                handler(sender, *op[1:])
            except Exception:  # a loop boundary: one bad op must not stop the rest
                log.failure("Handling {op!r} from {node} failed", op=op[0], node=sender)

    def _here(self, key: str, fence: str) -> Realm | None:
        realm = self.server.realms.get(key)
        return realm if realm is not None and self.fences.get(key) == fence else None

    def _on_check(self, sender: str, rid: int, key: str, name: str, address: str,
                  fence: str) -> None:
        realm = self._here(key, fence)
        answer = MOVED
        if realm is not None:
            try:
                realm.check(name)
                answer = ""
            except JoinError as e:
                answer = e.line.decode("utf-8")
        self.relay.send(sender, ["checked", rid, answer])

    def _on_join(self, sender: str, sid: int, key: str, name: str, address: str,
                 fence: str) -> None:
        realm = self._here(key, fence)
        answer = MOVED
        if realm is not None:
            proxy = RemoteMember(self, sender, sid, name, address, realm)
            try:
                realm.add(proxy)
                self.proxies[(sender, sid)] = proxy
                answer = ""
            except JoinError as e:
                answer = e.line.decode("utf-8")
        self.relay.send(sender, ["joined", sid, answer])

    def _on_line(self, sender: str, sid: int, text: str) -> None:
        proxy = self.proxies.get((sender, sid))
        if proxy is not None:
            play(proxy, proxy.realm, text.encode("utf-8"), text)

    def _on_gone(self, sender: str, sid: int, why: str) -> None:
        proxy = self.proxies.pop((sender, sid), None)
        if proxy is not None:
            proxy.realm.remove(proxy, why)

    def _on_answer(self, sender: str, rid: int, answer: str) -> None:
        asked = self._asking.get(rid)
        if asked is not None and not asked[1].called:
            asked[1].callback(answer)

    def _on_send(self, sender: str, sids: list[int], text: str) -> None:
        data = text.encode("utf-8")
        for sid in sids:
            entry = self.seated.get(sid)
            if entry is not None:
                entry[0].send(data)

    def _on_close(self, sender: str, sid: int) -> None:
        entry = self.seated.pop(sid, None)
        if entry is not None:
            member, seat = entry
            if seat is not None:
                seat.open = False
            member.close()

    def _on_bye(self, sender: str) -> None:
        self._peer_gone(sender, wire.REALM_GONE)

    # -- the other processes ---------------------------------------------------------
    def peers(self) -> set[str]:
        """The processes this one shares a realm with."""
        found = {home for home, _ in self.proxies}
        found.update(seat.owner for _, seat in self.seated.values() if seat is not None)
        return found

    def _peer_gone(self, node: str | None, why: wire.Line) -> None:
        """`node` is gone: its members leave realms here, its realms end for
        the members here."""
        for key, proxy in list(self.proxies.items()):
            if node is None or key[0] == node:
                del self.proxies[key]
                proxy.realm.remove(proxy)
        for sid, (member, seat) in list(self.seated.items()):
            if seat is not None and (node is None or seat.owner == node):
                del self.seated[sid]
                seat.open = False
                member.send(why.notice(realm=seat.realm_name))
                member.close()
        for owner, d in list(self._asking.values()):
            if (node is None or owner == node) and not d.called:
                d.errback(Unreachable(f"{owner} is gone"))

    def _heartbeat(self) -> Deferred[None] | None:
        if not self.redis.up:
            return None
        realms = list(self.fences.items())
        peers = sorted(self.peers())
        keys = [leases.heart(self.node), leases.addrs(self.node), leases.NODES,
                leases.REALMS, leases.FENCE, *(leases.lease(k) for k, _ in realms),
                *(leases.heart(p) for p in peers)]
        args = [self.node, self.ttl_ms, len(realms), *(k for k, _ in realms),
                *(f for _, f in realms)]
        started = time.monotonic()

        def renewed(answer: list[list[bytes]]) -> None:
            self.rtt = time.monotonic() - started
            lost, dead = answer
            for key in (k.decode() for k in lost):
                self.fences.pop(key, None)
                realm = self.server.realms.get(key)
                if realm is not None:
                    log.warn("Lost the lease of realm {realm}: another process runs it",
                             realm=key)
                    realm.end(wire.REALM_MOVED.notice(realm=key))
            for heart in (h.decode() for h in dead):
                node = heart.removeprefix(leases.heart(""))
                log.warn("Process {node} is gone: its members leave, its realms end",
                         node=node)
                self._peer_gone(node, wire.REALM_GONE)

        return self.redis.script(leases.RENEW, keys, args).addCallbacks(
            renewed, lambda _: None)

    def _up(self) -> None:
        """Redis is back: write back what it may have forgotten."""
        counts = self.server.connections_by_address()
        args: list[Any] = [self.ttl_ms, *(x for a, n in counts.items() for x in (a, n))]
        self.redis.script(leases.RECOUNT, [leases.addrs(self.node)], args).addErrback(
            lambda _: None)
        self._counted = set(self.server.sessions)
        self._heartbeat()

    def _down(self) -> None:
        """Lines between processes may be lost now: let those members go."""
        self._peer_gone(None, wire.CUT_OFF)
        self._counted.clear()

    # -- shutting down ---------------------------------------------------------------
    def closing(self) -> None:
        """The process is stopping: end its realms for everyone, tell its peers."""
        for realm in list(self.server.realms.values()):
            realm.end(wire.SHUTTING_DOWN.notice())
        for peer in self.peers():
            self.relay.send(peer, ["bye"])
        self._beat.stop()

    def closed(self) -> Deferred[Any]:
        """Every connection is gone: send what is held, then leave Redis."""
        d = self.relay.flush()
        if self.redis.up:
            d.addCallback(lambda _: self.redis.script(
                leases.GOODBYE, [leases.heart(self.node), leases.addrs(self.node),
                                 leases.NODES], [self.node]))
        d.addErrback(lambda _: None)
        return d.addCallback(lambda _: self.redis.stop())
