"""The server's state: its settings, its realms and its connections.

No I/O of its own: sessions call in, realms are created on first join and
discarded when their last member goes, so a server that runs for weeks
holds only the realms in play.  With `--cluster` a `realm.cluster`
directory decides where a realm runs; without it every realm runs here.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from twisted.cred.checkers import ICredentialsChecker
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from realm import commands, wire
from realm.deadlines import Deadlines
from realm.guard import Backoff
from realm.names import JoinError
from realm.realm import Realm, RealmError

log = Logger()

#: Wrong passwords an address may send before it must wait.
MAX_GUESSES = 3


@dataclass(frozen=True)
class Settings:
    """What `twistd realm`'s options set; `0` turns a limit off."""

    size: int = 5
    default_realm: str = "westeros"
    event_wait: float = 30.0
    max_rate: float = 20.0  # lines a second per connection, bursts of 2x
    max_per_address: int = 64
    max_realms: int = 10000
    max_realms_per_address: int = 16  # realms started by one address, in play
    login_timeout: float = 60.0
    idle_timeout: float = 900.0
    max_queue: int = 256 * 1024  # bytes queued for a reader that stalls


class Client(Protocol):
    """A connection, as the server counts it."""

    address: str

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class Player(commands.Actor, Client, Protocol):
    """A connection that joins a realm."""


class LocalSeat:
    """A member's seat in a realm this process runs."""

    __slots__ = ("realm", "member", "realm_name")

    def __init__(self, realm: Realm, member: Player) -> None:
        self.realm = realm
        self.member = member
        self.realm_name = realm.name

    def line(self, raw: bytes, text: str) -> None:
        if text.startswith("--"):
            try:
                commands.run(self.member, self.realm, text)
            except RealmError as e:
                self.member.send(e.line)
        elif text.strip():
            self.realm.chat(self.member, raw)

    def gone(self, why: str) -> None:
        self.realm.remove(self.member, why)


class RealmServer:
    """Every realm and connection of one server process."""

    def __init__(
        self,
        settings: Settings,
        clock: IReactorTime,
        checker: ICredentialsChecker | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.checker = checker
        self.rng = rng or random.Random()
        self.deadlines = Deadlines(clock)
        self.realms: dict[str, Realm] = {}
        self.sessions: set[Client] = set()
        self.draining = False
        self.refusals: Counter[str] = Counter()  # refused lines by kind, for the metrics
        self._per_address: Counter[str] = Counter()
        self._started_by: dict[str, str] = {}  # realm -> the address that started it
        self._realms_of: Counter[str] = Counter()  # address -> realms it started
        # Wrong Lord passwords: per address, and for the Lord as a whole.
        self._guesses = Backoff(free=MAX_GUESSES, base=1.0, cap=300.0)
        self._lord_guesses = Backoff(free=10 * MAX_GUESSES, base=0.5, cap=60.0)
        self._drained: Deferred[None] | None = None

    # -- connections -------------------------------------------------------
    def connected(self, client: Client) -> bytes | None:
        """Count a new connection; return a refusal, or None to welcome it."""
        limit = self.settings.max_per_address
        if limit and self._per_address[client.address] >= limit:
            log.warn("Refused a connection from {address}: {limit} already",
                     address=client.address, limit=limit)
            self.refusals["too_many_connections"] += 1
            return wire.TOO_MANY_CONNECTIONS.notice(limit=limit)
        self._per_address[client.address] += 1
        self.sessions.add(client)
        return None

    def disconnected(self, client: Client) -> None:
        if client in self.sessions:
            self.sessions.discard(client)
            self._per_address[client.address] -= 1
            if not self._per_address[client.address]:
                del self._per_address[client.address]
        if self._drained is not None and not self.sessions:
            self._drained.callback(None)
            self._drained = None

    def refused(self, kind: str, n: int) -> None:
        self.refusals[kind] += n

    # -- the Lord's password -------------------------------------------------
    def password_wait(self, address: str) -> float:
        """Seconds `address` must wait before its next try at the password."""
        now = self.clock.seconds()
        return max(self._guesses.wait(address, now), self._lord_guesses.wait("", now))

    def password_wrong(self, address: str) -> float:
        now = self.clock.seconds()
        self.refusals["wrong_password"] += 1
        return max(self._guesses.failed(address, now), self._lord_guesses.failed("", now))

    def password_right(self, address: str) -> None:
        self._guesses.succeeded(address)
        self._lord_guesses.succeeded("")

    # -- realms --------------------------------------------------------------
    def check(self, key: str, name: str, address: str) -> Deferred[None]:
        """Whether `name` from `address` could join the realm `key` now."""
        try:
            self._realm_for(key, address).check(name)
        except JoinError as e:
            return fail(e)
        return succeed(None)

    def join(self, member: Player, key: str) -> Deferred[LocalSeat]:
        """Seat `member` (its name set) in the realm `key`."""
        try:
            realm = self._realm_for(key, member.address)
            realm.add(member)
        except JoinError as e:
            return fail(e)
        if key not in self.realms:
            self.realms[key] = realm
            self._started_by[key] = member.address
            self._realms_of[member.address] += 1
            log.info("Realm {realm} created by {address}", realm=key, address=member.address)
        return succeed(LocalSeat(realm, member))

    def _realm_for(self, key: str, address: str) -> Realm:
        """The realm `key`: in play, or a new one `address` may start."""
        realm = self.realms.get(key)
        if realm is not None:
            return realm
        s = self.settings
        if self.draining:
            raise JoinError(wire.DRAINING.notice())
        if s.max_realms and len(self.realms) >= s.max_realms:
            raise JoinError(wire.TOO_MANY_REALMS.notice(limit=s.max_realms))
        if s.max_realms_per_address and self._realms_of[address] >= s.max_realms_per_address:
            raise JoinError(wire.ADDRESS_REALMS.notice(limit=s.max_realms_per_address))
        return Realm(key, s.size, self.clock, s.event_wait, self.rng, self._realm_empty)

    def _realm_empty(self, realm: Realm) -> None:
        if self.realms.get(realm.name) is realm:
            del self.realms[realm.name]
            address = self._started_by.pop(realm.name)
            self._realms_of[address] -= 1
            if not self._realms_of[address]:
                del self._realms_of[address]

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
        `grace` seconds, whichever is first.
        """
        n = len(self.sessions)
        log.info("Shutting down: closing {n} connection{s}", n=n, s="" if n == 1 else "s")
        self.deadlines.stop()
        drained: Deferred[None] = Deferred()
        if not self.sessions:
            drained.callback(None)
            return drained
        self._drained = drained
        farewell = wire.SHUTTING_DOWN.notice()
        for session in list(self.sessions):
            session.send(farewell)
            session.close()
        return drained.addTimeout(grace, self.clock, lambda *a: None)

