"""One client's session, whatever carries its lines (TCP, TLS, WebSocket).

A session checks each line (length, UTF-8, control characters, rate),
then hands it to the handler of its phase:

  naming    -- the line is `NAME` or `NAME@REALM`
  password  -- the line is the Lord's password (only with `--auth`)
  checking  -- the password is being checked; lines wait in order
  playing   -- `--command [ARG]` or chat for the realm
  closed    -- the session is over; lines are ignored

Subclasses supply the transport: `send(data)` (wire-ready CRLF lines),
`close()`, and `address`.  They call `opened()` once connected,
`line_received(raw)` per line and `lost()` once disconnected.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from realm import commands
from realm.names import LORD, JoinError, parse_join
from realm.realm import Realm, RealmError, notice
from realm.server import RealmServer

log = Logger()

MAX_LINE = 1024
MAX_PASSWORD_FAILURES = 3
GREETING = (notice("Hail, traveller! This is realm, a Game of Thrones.")
            + notice("What is your name? Send NAME or NAME@REALM "
                     "(Lord to rule the realm)."))
# C0 and C1 control characters, but tab; DEL too.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def error(text: str) -> bytes:
    return notice("Error: " + text)


@implementer(IPushProducer)
class Session(TimeoutMixin):
    """The phases of one connection; the transport is the subclass's.

    A session is also its transport's push producer: the transport pauses
    it when the client stops reading, and `send` of a subclass asks
    `stalled()` before writing while paused.
    """

    address = "?"
    name = ""
    prefix = b""
    realm: Realm | None = None
    paused = False  # the client stopped reading: its send buffer is full
    dropped = False  # dropped as a slow reader: read and write no more
    _queued = 0  # bytes sent while paused

    def __init__(self, server: RealmServer) -> None:
        self.server = server
        self.callLater = server.clock.callLater  # type: ignore[method-assign,assignment]
        self._handle: Callable[[bytes, str], None] = self._naming
        self._pending: list[bytes] = []  # lines that arrive while checking
        self._realm_key = ""
        self._failures = 0
        self._throttled = False
        self._rate = server.settings.max_rate  # 0: no limit, no bucket
        self._tokens = 2.0 * self._rate
        self._last = 0.0

    # -- transport side, supplied by subclasses -----------------------------
    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection now, whatever is still queued."""
        raise NotImplementedError

    # -- a client that stops reading -----------------------------------------
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._queued = 0

    def stopProducing(self) -> None:
        pass

    def stalled(self, size: int) -> bool:
        """While paused: count `size` more bytes; True means do not send.

        Past `max_queue` bytes the session is dropped, with a log line, so
        a client that never reads cannot grow the server's memory.
        """
        limit = self.server.settings.max_queue
        if self._queued > limit:
            return True  # being dropped already
        self._queued += size
        if self._queued <= limit:
            return False
        log.warn("Dropped {name} ({address}): it stopped reading and {queued} "
                 "bytes queued up", name=self.name or "-", address=self.address,
                 queued=self._queued)
        self.dropped = True
        self.abort()
        return True

    # -- lifecycle ---------------------------------------------------------
    def opened(self) -> None:
        refusal = self.server.connected(self)
        if refusal is not None:
            self._handle = self._closed
            self.send(error(refusal))
            self.close()
            return
        self._last = self.server.clock.seconds()
        self.setTimeout(self.server.settings.login_timeout or None)
        self.send(GREETING)

    def lost(self) -> None:
        self.setTimeout(None)
        self._handle = self._closed
        self.server.disconnected(self)
        if self.realm is not None:
            self.realm.remove(self)
            self.realm = None

    def leave(self) -> None:
        """Say goodbye, leave the realm (telling it) and close."""
        self.send(notice(f"Farewell, {self.name}."))
        self._depart("has left the realm")

    def timeoutConnection(self) -> None:
        if self.realm is None:
            self.send(error("You did not give a name in time. Farewell."))
            log.info("Login timeout for {address}", address=self.address)
        else:
            self.send(error("You have been silent too long. Farewell."))
            self._depart("was silent too long and has been shown out")
        self.close()

    def _depart(self, why: str) -> None:
        realm, self.realm = self.realm, None
        self._handle = self._closed
        if realm is not None:
            realm.remove(self, why)
        self.close()

    def refuse(self, text: str) -> None:
        """Refuse a line: tell the client why and log it."""
        log.info("Refused input from {name}@{realm} ({address}): {why}",
                 name=self.name or "-", realm=self.realm.name if self.realm else "-",
                 address=self.address, why=text)
        self.send(error(text))

    # -- lines ---------------------------------------------------------------
    def line_received(self, raw: bytes) -> None:
        """Check one line (without its delimiter) and hand it on."""
        if len(raw) > MAX_LINE:
            self.refuse(f"Line too long ({len(raw)} bytes); the limit is "
                        f"{MAX_LINE}. It was not sent.")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.refuse("That line is not valid UTF-8 text; it was not sent.")
            return
        # isprintable() is False for every control character (and for some
        # harmless ones): the regex decides only for those lines.
        if not text.isprintable() and _CONTROL.search(text):
            self.refuse("Control characters are not allowed; the line was "
                        "not sent.")
            return
        if self._rate and not self._allow():
            why = (f"You are sending too fast (more than "
                   f"{self.server.settings.max_rate:g} lines a second); "
                   "that line was not sent.")
            if self._throttled:
                self.send(error(why))  # logged once a flood, not once a line
            else:
                self._throttled = True
                self.refuse(why)
            return
        self._throttled = False
        if self.realm is not None:
            self.resetTimeout()  # the login timeout is a deadline to join
        self._handle(raw, text)

    def _allow(self) -> bool:
        """A token bucket: `max_rate` a second, bursts of twice that."""
        rate = self.server.settings.max_rate
        if not rate:
            return True
        now = self.server.clock.seconds()
        self._tokens = min(2.0 * rate, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    # -- phases --------------------------------------------------------------
    def _naming(self, raw: bytes, text: str) -> None:
        if text.startswith("--"):
            self.refuse("Join first: send your name (NAME or NAME@REALM). "
                        "Commands work once you are in a realm.")
            return
        try:
            name, key = parse_join(text, self.server.settings.default_realm)
        except JoinError as e:
            # Not echoed to the log: a Lord may type a password here.
            log.info("Refused a name line from {address}", address=self.address)
            self.send(error(str(e)))
            return
        try:
            self.server.realm_for(key, name)
        except JoinError as e:
            self.refuse(str(e))
            return
        self.name = name
        if name == LORD and self.server.checker is not None:
            self._realm_key = key
            self._handle = self._password
            self.send(notice("This realm's Lord must prove it: send the "
                             "Lord's password."))
            return
        self._join(key)

    def _join(self, key: str) -> None:
        try:
            self.realm = self.server.join(self, key)
        except JoinError as e:
            self.name = ""
            self._handle = self._naming
            self.refuse(str(e))
            return
        self.prefix = self.name.encode("ascii") + b": "
        self._handle = self._playing
        self.setTimeout(self.server.settings.idle_timeout or None)

    def _password(self, raw: bytes, text: str) -> None:
        assert self.server.checker is not None
        self._handle = self._checking
        checker = self.server.checker
        d = checker.requestAvatarId(UsernamePassword(b"lord", raw))

        def as_text(failure: Failure) -> Deferred[bytes | tuple[()]]:
            # `--auth memory:` keeps str, `--auth file:` bytes: try both.
            failure.trap(UnauthorizedLogin)
            return checker.requestAvatarId(
                UsernamePassword("lord", text))  # type: ignore[arg-type]

        d.addErrback(as_text)
        d.addCallbacks(self._password_ok, self._password_bad)
        d.addErrback(self._unexpected)

    def _password_ok(self, avatar_id: object) -> None:
        if self._handle != self._checking:
            return  # the connection went meanwhile
        log.info("{address} proved to be the Lord", address=self.address)
        self._handle = self._naming
        self._join(self._realm_key)
        self._replay()

    def _password_bad(self, failure: Failure) -> None:
        failure.trap(UnauthorizedLogin)
        if self._handle != self._checking:
            return
        self.name = ""
        self._failures += 1
        log.warn("Wrong Lord password from {address} ({n} of {limit})",
                 address=self.address, n=self._failures, limit=MAX_PASSWORD_FAILURES)
        if self._failures >= MAX_PASSWORD_FAILURES:
            self.send(error("Wrong password, for the last time. Farewell."))
            self._handle = self._closed
            self.close()
            return
        self._handle = self._naming
        self.send(error("Wrong password; you are not the Lord. Send a name "
                        "to try again."))
        self._replay()

    def _unexpected(self, failure: Failure) -> None:
        log.failure("Checking a password failed", failure)
        self._handle = self._naming
        self.refuse("The password could not be checked; try again.")
        self._replay()

    def _checking(self, raw: bytes, text: str) -> None:
        self._pending.append(raw)

    def _replay(self) -> None:
        pending, self._pending = self._pending, []
        for raw in pending:
            self._handle(raw, raw.decode("utf-8"))

    def _playing(self, raw: bytes, text: str) -> None:
        realm = self.realm
        assert realm is not None
        if text.startswith("--"):
            try:
                commands.run(self, text)
            except RealmError as e:
                self.refuse(str(e))
        elif text.strip():
            realm.chat(self, raw)

    def _closed(self, raw: bytes, text: str) -> None:
        pass
