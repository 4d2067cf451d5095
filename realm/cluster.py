"""Many processes, one service: this process's part in a `--cluster`.

A connection is served by the process it reached; the realm it joins is
run by one process, its lease holder in Redis (realm.leases).  A member
whose realm runs elsewhere sits there as a `RemoteMember` proxy, and here
on a `RemoteSeat`; lines between them go through realm.relay.  A realm
whose members are all here costs no Redis traffic per line.

Failures, as the contract says:
- a process that dies (or does not answer) stops renewing: within `ttl`
  its heartbeat is gone; the processes it shared realms with remove its
  members from theirs and end its realms for their members; its leases
  expire and the realms can start again elsewhere.  Sooner if a join
  needs it: no one listens on its channel.
- Redis unreachable: a realm not running here is refused; realms here go
  on; members across processes are let go (lines between them could be
  lost).  Once back (or found emptied: a heartbeat says so), it writes
  back what it holds and tells those it let go ("cut").  See realm.leases.
- shutting down: its realms end for everyone, its members leave theirs.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import task
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.logger import Logger

from realm import leases, wire
from realm.names import JoinError, refusal
from realm.redis import RedisLink, RedisURL, Unreachable
from realm.relay import Op, Relay, RemoteMember, RemoteSeat, Tables, decode, end_realm
from realm.server import LocalSeat, play

if TYPE_CHECKING:
    from realm.realm import Realm
    from realm.server import Client, Player, RealmServer, Seat

log = Logger()

MOVED = "moved"  # the realm is not (or no longer) run where it was asked


class Cluster:
    """Where realms run, their leases, the relay, and the other processes."""

    def __init__(self, server: RealmServer, reactor: Any, url: RedisURL,
                 ttl: float = 5.0, beat: float = 1.0) -> None:
        self.server = server
        self.clock = reactor
        self.node = secrets.token_hex(6)
        self.ttl = ttl
        self.ttl_ms = int(ttl * 1000)
        self.redis = RedisLink(reactor, url, leases.channel(self.node), self._received,
                               self._up, self._down)
        self.relay = Relay(reactor, self.node, self.redis.publish)
        self.addresses = leases.Addresses(server, self.redis, self.node, self.ttl_ms, reactor)
        self.fences: dict[str, str] = {}  # realm run here -> its fencing number
        self.proxies: dict[tuple[str, int], RemoteMember] = {}
        self.seated: dict[int, tuple[Player, RemoteSeat | None]] = {}
        self.tables = Tables()  # the members here of each realm run elsewhere
        self.rtt = 0.0  # seconds the last heartbeat took, for the metrics
        self._asking: dict[int, tuple[str, Deferred[str]]] = {}
        self._ids = itertools.count(1)
        self._placing: Counter[str] = Counter()  # realms this process may be taking
        self._cut: set[str] = set()  # processes to tell, once Redis is back, they were let go
        self._known = False  # this process has reached Redis before
        self._beat = task.LoopingCall(self._heartbeat)
        self._beat.clock = reactor
        self._beat_every = beat
        self._handlers: dict[str, Callable[..., None]] = {
            "check": self._on_check, "join": self._on_join, "line": self._on_line,
            "gone": self._on_gone, "checked": self._on_answer, "joined": self._on_answer,
            "send": self._on_send, "close": self._on_close, "cut": self._on_cut,
            "bye": lambda sender: self._peer_gone(sender, wire.REALM_GONE),
            "near": self.tables.near,
        }

    def reachable(self) -> bool:
        return bool(self.redis.up)

    def relayed(self) -> int:  # ops sent to other processes, for the metrics
        return self.relay.relayed

    def runs(self, key: str) -> str | None:
        return next((s.owner for _, s in self.seated.values() if s and s.realm_name == key), None)

    def start(self) -> None:
        log.info("Cluster node {node} on {url}", node=self.node, url=str(self.redis.url))
        self.redis.start()
        self._beat.start(self._beat_every, now=False)

    # -- connections per address, across the service (realm.leases.Addresses) --
    def admit(self, client: Client) -> Deferred[bool]:
        return self.addresses.admit(client)

    def released(self, client: Client) -> None:
        self.addresses.released(client)

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
            if member not in self.server.sessions:  # it went while Redis answered
                raise JoinError(wire.TRY_AGAIN.notice())
            if owner == self.node:
                realm = self.server.found(key, member.address)
                realm.add(member)
                self.fences[key] = fence
                return LocalSeat(realm, member)
            sid = next(self._ids)
            self.seated[sid] = (member, None)  # its lines may come before the answer
            neighbours = self.tables.joining(owner, key, sid)
            try:
                answer = await self._ask(
                    owner, ["join", sid, key, member.name, member.address, fence], key)
            except JoinError:
                self.seated.pop(sid, None)
                self.relay.send(owner, ["gone", sid, wire.LEFT_WHY])  # if it came late
                raise
            finally:
                neighbours.joining.discard(sid)
            if answer == "" and member not in self.server.sessions:
                answer = wire.TRY_AGAIN.notice().decode()  # it went while the owner seated it
                self.relay.send(owner, ["gone", sid, wire.LEFT_WHY])
            if answer == "":
                near = neighbours if owner in self.tables.direct else None  # else an older owner
                return RemoteSeat(self.relay, self.seated, member, owner, sid, key, near)
            self.seated.pop(sid, None)
            if answer != MOVED:
                raise JoinError(answer.encode("utf-8"))
        raise JoinError(wire.UNREACHABLE.notice(realm=key))

    async def _lookup(self, script: str, key: str) -> tuple[str, str]:
        """(owner, fence) of the realm `key` (PLACE takes it if no one runs it)."""
        most = self.server.settings.max_realms
        placing = script is leases.PLACE
        if placing:
            keys, args = leases.place(key, self.node, most, self.ttl_ms, self._known)
            self._placing[key] += 1  # the lease may be ours before we know it
        else:
            keys, args = leases.lookup(key, self.node, most, self.ttl_ms, self._known)
        try:
            owner, fence = await self.redis.script(script, keys, args)
        except Unreachable:
            raise JoinError(wire.UNREACHABLE.notice(realm=key)) from None
        finally:
            if placing:
                self._placing -= Counter([key])
        owner, fence = owner.decode(), fence.decode()
        if owner == "" and fence in ("full", "settling"):
            raise JoinError(wire.TOO_MANY_REALMS.notice(realms=wire.counted(most, "realm"))
                            if fence == "full" else wire.UNREACHABLE.notice(realm=key))
        return owner, fence

    async def _ask(self, owner: str, op: Op, key: str) -> str:
        """`op`'s answer from the realm's owner; let go when silent `ttl` s or no one listens."""
        d: Deferred[str] = Deferred()
        self._asking[op[1]] = (owner, d)
        self.relay.send(owner, op)
        d.addTimeout(self.ttl, self.clock)
        self.redis.call("PUBSUB", "NUMSUB", leases.channel(owner)).addCallbacks(
            self._listening, lambda _: None, callbackArgs=(owner,))
        try:
            return await d
        except TimeoutError:
            log.warn("Process {node} did not answer in {s:g} s: letting it go",
                     node=owner, s=self.ttl)
            self._give_up(owner, wire.CUT_OFF)
            raise JoinError(wire.UNREACHABLE.notice(realm=key)) from None
        except Unreachable:
            raise JoinError(wire.UNREACHABLE.notice(realm=key)) from None
        finally:
            self._asking.pop(op[1], None)

    def _listening(self, answer: list[Any], owner: str) -> None:
        if answer[1] == 0:
            log.warn("Process {node} is not listening: letting it go", node=owner)
            self._give_up(owner, wire.CUT_OFF)

    def ended(self, realm: Realm) -> None:
        """A realm run here is over: let its lease go."""
        fence = self.fences.pop(realm.name, None)
        if fence is not None:
            self._release(realm.name, fence)

    def _release(self, key: str, fence: str) -> None:
        if self.redis.up:
            self.redis.script(leases.RELEASE, [leases.lease(key), leases.REALMS],
                              [key, self.node, fence]).addErrback(lambda _: None)

    # -- messages from other processes --------------------------------------------
    def _received(self, payload: bytes) -> None:
        try:
            sender, ops = decode(payload)
        except ValueError:
            log.warn("Ignored a message on realm's channel that is not realm's")
            return
        if not self.redis.up:  # everything shared was let go: so is this
            self._cut.add(sender)
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
        """The realm `key` if it runs here under `fence`; else None, and a lease
        of ours that outlived the realm is let go (the asker then finds it free)."""
        realm = self.server.realms.get(key)
        if realm is not None and self.fences.get(key) == fence:
            return realm
        if key not in self.fences and key not in self._placing:
            self._release(key, fence)
        return None

    def _on_check(self, sender: str, rid: int, key: str, name: str, address: str,
                  fence: str) -> None:
        realm = self._here(key, fence)
        answer = MOVED if realm is None else refusal(realm.check, name)
        self.relay.send(sender, ["checked", rid, answer])

    def _on_join(self, sender: str, sid: int, key: str, name: str, address: str,
                 fence: str) -> None:
        realm = self._here(key, fence)
        answer = MOVED
        if realm is not None:
            proxy = RemoteMember(self.relay, self.proxies, sender, sid, name, address, realm)
            answer = refusal(realm.add, proxy)
            if not answer:
                self.proxies[(sender, sid)] = proxy
        # After the lines the join sent it: the member hears them first.
        self.relay.send(sender, ["near"])  # lines may come with who heard them (realm.relay)
        self.relay.send(sender, ["joined", sid, answer])

    def _on_line(self, sender: str, sid: int, text: str, heard: Sequence[int] = ()) -> None:
        proxy = self.proxies.get((sender, sid))
        if proxy is not None:  # not to those of its process that heard it there
            near = [self.proxies[sender, o] for o in heard if (sender, o) in self.proxies]
            play(proxy, proxy.realm, text.encode("utf-8"), text, near)

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
                seat.shut()
            member.close()

    def _on_cut(self, sender: str) -> None:  # it let go of us: so do we
        log.warn("Process {node} let this one go: what was shared with it goes", node=sender)
        self._peer_gone(sender, wire.CUT_OFF)

    # -- the other processes ---------------------------------------------------------
    def peers(self) -> set[str]:
        """The processes this one shares a realm with."""
        found = {home for home, _ in self.proxies}
        found.update(seat.owner for _, seat in self.seated.values() if seat is not None)
        return found

    def _give_up(self, node: str, why: wire.Line) -> None:
        """Let `node` go, and tell it so (it may only be slow, or cut off)."""
        if node in self.peers() or any(owner == node for owner, _ in self._asking.values()):
            self._peer_gone(node, why)
            self.relay.send(node, ["cut"])

    def _peer_gone(self, node: str | None, why: wire.Line) -> None:
        """`node` (None: all) is gone: its members and its realms go here."""
        for key in [key for key in self.proxies if node is None or key[0] == node]:
            proxy = self.proxies.pop(key, None)
            if proxy is not None:  # else a Lord's leaving has closed it meanwhile
                proxy.realm.remove(proxy)
        for sid, (member, seat) in list(self.seated.items()):
            if seat is not None and (node is None or seat.owner == node):
                del self.seated[sid]
                seat.shut()
                member.send(why.notice(realm=seat.realm_name))
                member.close()
        for owner, d in list(self._asking.values()):
            if (node is None or owner == node) and not d.called:
                d.errback(Unreachable(f"{owner} is gone"))
        self.tables.forget(node)

    def _heartbeat(self) -> Deferred[None] | None:
        if not self.redis.up:
            return None
        keys, args = leases.renew(self.node, self.ttl_ms, self._known, self.fences,
                                  sorted(self.peers()))
        started = time.monotonic()
        d = self.redis.script(leases.RENEW, keys, args)
        d.addCallback(self._renewed, started)
        d.addErrback(self._renew_failed)
        return d

    def _renewed(self, answer: list[list[bytes]], started: float) -> None:
        self.rtt = time.monotonic() - started
        lost, dead, forgot = answer
        if forgot:  # emptied (FLUSHALL, an empty replica): nothing reconnected
            self.addresses.recount()
        for key in (k.decode() for k in lost):
            self.fences.pop(key, None)
            realm = self.server.realms.get(key)
            if realm is not None:
                log.warn("Lost the lease of realm {realm}: another process runs it", realm=key)
                realm.end(wire.REALM_MOVED.notice(realm=key))
        for heart in (h.decode() for h in dead):
            node = heart.removeprefix(leases.heart(""))
            log.warn("Process {node} is gone: its members leave, its realms end", node=node)
            self._give_up(node, wire.REALM_GONE)

    def _renew_failed(self, failure: Any) -> None:
        if not failure.check(Unreachable):  # Redis went: on_down says so
            log.failure("The heartbeat failed", failure)

    def _up(self) -> None:
        """Redis is back: write back what it forgot; tell those let go."""
        self.addresses.recount()
        self._heartbeat()
        self._known = True
        cut, self._cut = self._cut, set()
        for node in cut:
            self.relay.send(node, ["cut"])

    def _down(self) -> None:
        """Lines between processes may be lost now: let those members go."""
        self._cut |= self.peers()
        self._peer_gone(None, wire.CUT_OFF)
        self.addresses.down()

    # -- shutting down ---------------------------------------------------------------
    def closing(self) -> None:
        """The process is stopping: end its realms for everyone, tell its peers."""
        for realm in list(self.server.realms.values()):
            end_realm(realm, wire.SHUTTING_DOWN.notice())
        for peer in self.peers():
            self.relay.send(peer, ["bye"])
        if self._beat.running:
            self._beat.stop()

    def closed(self) -> Deferred[Any]:
        """All connections gone: send what is held, then leave Redis (one connection: in order)."""
        self.relay.flush()
        d: Deferred[Any] = succeed(None)
        if self.redis.up:
            keys = [leases.heart(self.node), leases.addrs(self.node), leases.NODES]
            d = self.redis.script(leases.GOODBYE, keys, [self.node])
        d.addErrback(lambda _: None)
        return d.addCallback(lambda _: self.redis.stop())
