"""The server's state: its settings, its realms and its sessions.

No I/O of its own: sessions call in, realms are created on first join and
discarded when their last member goes, so a server that runs for weeks
holds only the realms in play.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.cred.checkers import ICredentialsChecker
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from realm.names import JoinError
from realm.realm import Realm, notice

if TYPE_CHECKING:
    from realm.session import Session

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
    login_timeout: float = 60.0
    idle_timeout: float = 900.0
    max_queue: int = 256 * 1024  # bytes queued for a reader that stalls


class RealmServer:
    """Every realm and session of one server process."""

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
        self.realms: dict[str, Realm] = {}
        self.sessions: set[Session] = set()
        self._per_address: Counter[str] = Counter()
        self._drained: Deferred[None] | None = None

    # -- connections -------------------------------------------------------
    def connected(self, session: Session) -> str | None:
        """Register a new session; return a refusal, or None to welcome it."""
        limit = self.settings.max_per_address
        if limit and self._per_address[session.address] >= limit:
            log.warn("Refused a connection from {address}: {limit} already",
                     address=session.address, limit=limit)
            return (f"Too many connections from your address ({limit}); "
                    "close one and try again.")
        self._per_address[session.address] += 1
        self.sessions.add(session)
        return None

    def disconnected(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self._per_address[session.address] -= 1
            if not self._per_address[session.address]:
                del self._per_address[session.address]
        if self._drained is not None and not self.sessions:
            self._drained.callback(None)
            self._drained = None

    # -- realms --------------------------------------------------------------
    def realm_for(self, key: str, name: str) -> Realm:
        """The realm `key`, with `name` checked as able to join it."""
        realm = self.realms.get(key)
        if realm is None:
            limit = self.settings.max_realms
            if limit and len(self.realms) >= limit:
                raise JoinError(f"This server holds its limit of {limit} "
                                "realms; join one already in play, or try later.")
            s = self.settings
            realm = Realm(key, s.size, self.clock, s.event_wait, self.rng,
                          self._realm_empty)
        realm.check(name)
        return realm

    def join(self, session: Session, key: str) -> Realm:
        """Seat `session` (its name already set) in the realm `key`."""
        realm = self.realm_for(key, session.name)
        if key not in self.realms:
            self.realms[key] = realm
            log.info("Realm {realm} created", realm=key)
        realm.add(session)
        return realm

    def _realm_empty(self, realm: Realm) -> None:
        if self.realms.get(realm.name) is realm:
            del self.realms[realm.name]

    def shutdown(self, grace: float = 5.0) -> Deferred[None]:
        """Tell every session the server is closing and close them all.

        The Deferred fires once every connection is gone, or after
        `grace` seconds, whichever is first.
        """
        log.info("Shutting down: closing {n} connections", n=len(self.sessions))
        farewell = notice("The server is shutting down. Farewell!")
        drained: Deferred[None] = Deferred()
        if not self.sessions:
            drained.callback(None)
            return drained
        self._drained = drained
        for session in list(self.sessions):
            session.send(farewell)
            session.close()
        return drained.addTimeout(grace, self.clock, lambda *a: None)
