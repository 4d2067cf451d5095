"""The server's state: its settings, its realms and its connections.

No I/O of its own: sessions call in, realms are created on first join and
discarded when their last member goes, so a server that runs for weeks
holds only the realms in play.  With `--cluster` a `realm.cluster`
directory decides where a realm runs; without it every realm runs here.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.cred.checkers import ICredentialsChecker
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from realm import commands, wire
from realm.chronicle import Chronicle, NoChronicle
from realm.deadlines import Deadlines
from realm.guard import AddressCount
from realm.guesses import Guesses
from realm.names import JoinError
from realm.quiet import since_last
from realm.realm import Member, Realm, RealmError
from realm.stats import Stats

log = Logger()


@dataclass(frozen=True)
class Settings:
    """What `twistd realm`'s options set; `0` turns a limit off."""

    size: int = 5
    default_realm: str = "westeros"
    event_wait: float = 30.0
    max_rate: float = 20.0  # lines a second per connection, bursts of 2x
    max_per_address: int = 64
    max_realms: int = 10000
    max_realms_per_address: int = 0  # realms started by one address, in play; 0: any
    login_timeout: float = 60.0
    idle_timeout: float = 900.0
    max_queue: int = 256 * 1024  # bytes queued for a reader that stalls
    reign_length: int = 12  # events in a reign the Lord wins


class Client(Protocol):
    """A connection, or a member on another process."""

    address: str

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class Player(commands.Actor, Client, Protocol):
    """A connection that joins a realm."""


class Connection(Client, Protocol):
    """A connection of this process, as the server counts it."""

    kind: str  # its transport, for the metrics: tcp, tls, unix, websocket...


def is_chat(text: str) -> bool:
    """Whether a playing line is chat (not a command, not blank)."""
    return not text.startswith("--") and bool(text.strip())


def play(member: Player, realm: Realm, raw: bytes, text: str,
         heard: Collection[Member] = ()) -> None:
    """A playing line of `member`'s: a command, or chat for its realm (for
    those of its members who have not `heard` it already)."""
    if text.startswith("--"):
        try:
            commands.run(member, realm, text)
        except RealmError as e:
            member.send(e.line)
    elif text.strip():
        realm.chat(member, raw, heard)


class LocalSeat:
    """A member's seat in a realm this process runs."""

    __slots__ = ("realm", "member", "realm_name")

    def __init__(self, realm: Realm, member: Player) -> None:
        self.realm = realm
        self.member = member
        self.realm_name = realm.name

    def line(self, raw: bytes, text: str) -> None:
        play(self.member, self.realm, raw, text)

    def gone(self, why: str) -> None:
        self.realm.remove(self.member, why)


class Seat(Protocol):
    """A member's place in a realm, on this process or another."""

    realm_name: str

    def line(self, raw: bytes, text: str) -> None:
        """A playing line from the member: a command or chat."""

    def gone(self, why: str) -> None:
        """The member has gone (lost, silent too long): leave the realm."""


class Directory(Protocol):
    """Where realms run when there are several processes (realm.cluster)."""

    def admit(self, client: Client) -> Deferred[bool]: ...
    def released(self, client: Client) -> None: ...
    def check(self, key: str, name: str, address: str) -> Deferred[None]: ...
    def join(self, member: Player, key: str) -> Deferred[Seat]: ...
    def ended(self, realm: Realm) -> None: ...
    def closing(self) -> None: ...
    def closed(self) -> Deferred[Any]: ...
    def reachable(self) -> bool: ...
    def relayed(self) -> int: ...
    def runs(self, key: str) -> str | None:
        """The process that runs realm `key`, if members here sit in it."""

    rtt: float  # seconds the last heartbeat took


class RealmServer:
    """Every realm and connection of one server process."""

    def __init__(
        self,
        settings: Settings,
        clock: IReactorTime,
        checker: ICredentialsChecker | None = None,
        rng: random.Random | None = None,
        chronicle: Chronicle | None = None,
    ) -> None:
        self.settings = settings
        self.chronicle: Chronicle = chronicle or NoChronicle()
        self.clock = clock
        self.checker = checker
        self.rng = rng or random.Random()
        self.deadlines = Deadlines(clock)
        self.realms: dict[str, Realm] = {}
        self.sessions: set[Connection] = set()
        self.draining = False
        self.shutting_down = False
        self.stats = Stats()
        self._addresses = AddressCount(settings.max_per_address)
        self._started_by: dict[str, str] = {}  # realm -> the address that started it
        self._realms_of: Counter[str] = Counter()  # address -> realms it started
        # Wrong Lord passwords, per address and for the Lord as a whole
        # (realm.guesses.SharedGuesses with --cluster).
        self.guesses = Guesses(clock)
        # Waiting for what `when_empty` and `when_drained` wait for.
        self._waiting: list[tuple[Callable[[], bool], Deferred[None]]] = []
        self.cluster: Directory | None = None  # set by realm.cluster with --cluster

    # -- connections -------------------------------------------------------
    def admit(self, client: Connection) -> Deferred[bytes | None]:
        """Count a new connection; fires with a refusal, or None to welcome it."""
        refusal = self.connected(client)
        if refusal is not None or self.cluster is None:
            return succeed(refusal)
        def counted(ok: bool) -> bytes | None:
            return None if ok else self._too_many(client.address, " in the cluster")

        return self.cluster.admit(client).addCallback(counted)

    def connected(self, client: Connection) -> bytes | None:
        """Count a new connection here; return a refusal, or None."""
        if not self._addresses.admit(client.address):
            return self._too_many(client.address)
        self.sessions.add(client)
        self.stats.connections[client.kind] += 1
        self.stats.connections_total[client.kind] += 1
        return None

    def _too_many(self, address: str, where: str = "") -> bytes:
        """Refuse a connection from `address`, which holds its limit; log it
        a minute at most, with how many there were (a loop that connects
        must not flood the log)."""
        limit = self.settings.max_per_address
        self.stats.refused["too_many_connections"] += 1
        self.stats.quiet.tell(self.clock, "too_many_connections", lambda n: log.warn(
            "Refused {what} from {address}: {limit} already{where}", address=address,
            what=since_last(n, "a connection", "connections"), limit=limit, where=where))
        return wire.TOO_MANY_CONNECTIONS.notice(limit=limit)

    def disconnected(self, client: Connection) -> None:
        if client in self.sessions:
            self.sessions.discard(client)
            self.stats.connections[client.kind] -= 1
            self._addresses.release(client.address)
            if self.cluster is not None:
                self.cluster.released(client)
        self._wake()

    def when_empty(self) -> Deferred[None]:
        """Fires once no connection is left."""
        return self._once(lambda: not self.sessions)

    def when_drained(self) -> Deferred[None]:
        """Fires once no connection is left and no realm runs here (with
        `--cluster`, its members may all be connected elsewhere)."""
        return self._once(lambda: not self.sessions and not self.realms)

    def _once(self, done: Callable[[], bool]) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiting.append((done, d))
        self._wake()
        return d

    def _wake(self) -> None:
        """Fire what waits for what is now so (a connection or realm went);
        nothing to do, and nothing made, when no one waits (the usual case)."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        for done, d in waiting:
            if not done():
                self._waiting.append((done, d))
            elif not d.called:  # else it timed out
                d.callback(None)

    def announce(self, data: bytes) -> int:
        """Send `data` to every member of every realm run here, and to every
        member connected here whose realm runs elsewhere; how many."""
        n = 0
        for realm in self.realms.values():
            realm.broadcast(data)
            n += len(realm.members)
        for session in self.sessions:
            seat = getattr(session, "seat", None)
            if seat is not None and not isinstance(seat, LocalSeat):
                session.send(data)
                n += 1
        return n

    def connections_by_address(self) -> dict[str, int]:
        return self._addresses.counts()

    # -- realms --------------------------------------------------------------
    def check(self, key: str, name: str, address: str) -> Deferred[None]:
        """Whether `name` from `address` could join the realm `key` now."""
        realm = self.realms.get(key)
        if realm is None and self.cluster is not None:
            return self.cluster.check(key, name, address)
        try:
            (realm or self.new_realm(key, address)).check(name)
        except JoinError as e:
            return fail(e)
        return succeed(None)

    def join(self, member: Player, key: str) -> Deferred[Seat]:
        """Seat `member` (its name set) in the realm `key`."""
        realm = self.realms.get(key)
        if realm is None and self.cluster is not None:
            return self.cluster.join(member, key)
        try:
            realm = self.found(key, member.address)
            realm.add(member)
        except JoinError as e:
            return fail(e)
        return succeed(LocalSeat(realm, member))

    def new_realm(self, key: str, address: str) -> Realm:
        """A new realm `key` that `address` starts, if this process may."""
        s = self.settings
        if self.draining:
            raise JoinError(wire.DRAINING.notice())
        if s.max_realms and len(self.realms) >= s.max_realms:
            raise JoinError(wire.TOO_MANY_REALMS.notice(realms=wire.counted(s.max_realms, "realm")))
        if s.max_realms_per_address and self._realms_of[address] >= s.max_realms_per_address:
            raise JoinError(wire.ADDRESS_REALMS.notice(
                realms=wire.counted(s.max_realms_per_address, "realm")))
        return Realm(key, s.size, self.clock, s.event_wait, self.rng, self._realm_empty,
                     s.reign_length, self.chronicle, self.stats)

    def found(self, key: str, address: str) -> Realm:
        """The realm `key` run here: in play, or started now by `address`."""
        realm = self.realms.get(key)
        if realm is None:
            realm = self.realms[key] = self.new_realm(key, address)
            self._started_by[key] = address
            self._realms_of[address] += 1
            log.info("Realm {realm} created by {address}", realm=key, address=address)
        return realm

    def _realm_empty(self, realm: Realm) -> None:
        if self.realms.get(realm.name) is realm:
            del self.realms[realm.name]
            address = self._started_by.pop(realm.name)
            self._realms_of[address] -= 1
            if not self._realms_of[address]:
                del self._realms_of[address]
            if self.cluster is not None:
                self.cluster.ended(realm)
            self._wake()

    def end(self, key: str, goodbye: bytes) -> bool:
        """End the realm `key` for everyone in it; False if there is none."""
        realm = self.realms.get(key)
        if realm is None:
            return False
        realm.end(goodbye)
        return True

    def shutdown(self, grace: float = 5.0) -> Deferred[None]:
        """Tell every connection the server is closing and close them all.

        The Deferred fires once every connection is gone, or after
        `grace` seconds, whichever is first; with a cluster, once the
        others have been told too.
        """
        self.stats.quiet.stop()  # what waits for its minute is logged now
        n = len(self.sessions)
        log.info("Shutting down: closing {n} connection{s}", n=n, s="" if n == 1 else "s")
        self.shutting_down = True
        self.deadlines.stop()
        if self.cluster is not None:
            self.cluster.closing()
        drained = self.when_empty()
        if self.sessions:
            farewell = wire.SHUTTING_DOWN.notice()
            for session in list(self.sessions):
                session.send(farewell)
                session.close()
            drained.addTimeout(grace, self.clock, lambda *a: log.info(
                "Stopped waiting for {n} to close after {s:g} s",
                n=wire.counted(len(self.sessions), "connection"), s=grace))
        if self.cluster is not None:
            cluster = self.cluster
            drained.addCallback(lambda _: cluster.closed()).addCallback(lambda _: None)
        return drained
