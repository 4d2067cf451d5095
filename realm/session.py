"""One client's session, whatever carries its lines (TCP, TLS, WebSocket).

A session is composed, not inherited: it holds a `Link` (what carries
its lines: `send`, `close`, `abort`, `address`), a `Gate` (the checks
every line passes) and its phase.  Each line is checked, then handed to
the handler of its phase:

  naming    -- the line is `NAME` or `NAME@REALM`
  password  -- the line is the Lord's password (only with `--auth`); after
               wrong ones from its address it is held, then checked
  waiting   -- an answer is awaited (the realm's, the password checker's);
               lines wait in order and are handled once it comes
  playing   -- `--command [ARG]` or chat, for the member's seat in its realm
  closed    -- the session is over; lines are ignored

A link calls `opened()` once connected, `line_received(raw)` per line
(without its line end) and `lost()` once disconnected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from realm import wire
from realm.gate import NOT_HTTP, Gate, Refused, is_http
from realm.guard import whole_seconds
from realm.link import Link
from realm.names import LORD, JoinError, parse_join
from realm.quiet import since_last

if TYPE_CHECKING:
    from realm.server import RealmServer, Seat

log = Logger()

MAX_PASSWORD_FAILURES = 3
MOST_PENDING = 16  # lines held while an answer is awaited (a join, a password's check)
GREETING = wire.GREETING.notice() + wire.ASK_NAME.notice()


class Session:
    """The phases of one connection; the link carries its lines."""

    due: float | None = None  # when the login or idle timeout expires
    _first = True  # no name line has come yet
    bucket: int | None = None  # realm.deadlines' bookkeeping

    def __init__(self, server: RealmServer, link: Link) -> None:
        self.server = server
        self.link = link
        self.address = link.address
        self.send: Callable[[bytes], None] = link.send
        self.name = ""
        self.prefix = b""
        self.seat: Seat | None = None
        self.kind = getattr(link, "kind", "tcp")  # the transport, for the metrics
        self._stats = server.stats
        self._clock = server.clock
        self._gate = Gate(server.settings.max_rate, self._clock.seconds())
        self._handle: Callable[[bytes, str], None] = self._naming
        self._pending: list[bytes] = []  # lines that arrive while waiting
        self._failures = 0
        self._realm_key = ""
        self._idle = server.settings.idle_timeout
        #: A password waiting its turn (`Guesses.in_turn`), or held before its
        #: check: the timer, and the answer it would give.
        self._queued: Deferred[Any] | None = None
        self._held_check: tuple[IDelayedCall, Deferred[Any]] | None = None

    # -- lifecycle ---------------------------------------------------------
    def opened(self) -> None:
        self._wait_for(lambda: self.server.admit(self), self._admitted)

    def _admitted(self, refusal: bytes | None) -> None:
        if refusal is not None:
            self._handle = self._closed
            self.send(refusal)
            self.close()
            return
        self._login_deadline()
        self._handle = self._naming
        self.send(GREETING)

    def _login_deadline(self) -> None:
        login = self.server.settings.login_timeout
        if login:
            self.due = self._clock.seconds() + login
            self.server.deadlines.watch(self)

    def lost(self) -> None:
        self._handle = self._closed
        self.due = None
        # Nobody is there to get in: the address's next password goes now.
        if self._held_check is not None and self._held_check[0].active():
            held, answer = self._held_check
            held.cancel()
            answer.callback(None)
        if self._queued is not None:
            self._queued.cancel()  # waiting its turn, it leaves the line; being checked, stops
        self.server.deadlines.forget(self)
        # Out of the realm first, then uncounted: the last connection's going
        # lets a shutdown close the chronicle, and a Lord's leaving records
        # the reign in it.
        seat, self.seat = self.seat, None
        if seat is not None:
            seat.gone(wire.LEFT_WHY)
        self.server.disconnected(self)

    def close(self) -> None:
        self.link.close()

    def leave(self) -> None:
        """Say goodbye, leave the realm (telling it) and close."""
        self.send(wire.FAREWELL.notice(name=self.name))
        self._depart(wire.LEFT_WHY)

    def expired(self) -> None:
        """The login or idle timeout has passed."""
        if self.seat is None:
            self.send(wire.LOGIN_TIMEOUT.notice())
            log.info("Login timeout for {address}", address=self.address)
            self._handle = self._closed
            self.close()
        else:
            self.send(wire.IDLE_TIMEOUT.notice())
            self._depart(wire.IDLE_WHY)

    def _depart(self, why: str) -> None:
        seat, self.seat = self.seat, None
        self._handle = self._closed
        if seat is not None:
            seat.gone(why)
        self.close()

    # -- lines ---------------------------------------------------------------
    def line_received(self, raw: bytes) -> None:
        """Check one line (without its delimiter) and hand it on."""
        now = self._clock.seconds()
        text = self._gate.check(raw, now)
        if text.__class__ is Refused:
            self.refuse(text)  # type: ignore[arg-type]
            return
        self._stats.lines_received += 1
        if self.seat is not None and self._idle:
            self.due = now + self._idle  # Deadlines looks when the old one is due
        self._handle(raw, text)  # type: ignore[arg-type]

    def refuse(self, refused: Refused) -> None:
        """Tell the client why a line was refused; log it, a kind a minute
        for the whole server (realm.quiet)."""
        self.send(refused.line)
        self._stats.refused[refused.kind] += 1
        name, address = self.name, self.address
        realm = self.seat.realm_name if self.seat else "-"
        said = "{name}@{realm} ({address})" if name else "{address}"  # before a name: no name
        self._stats.quiet.tell(self._clock, refused.kind, lambda n: log.info(
            "Refused {what} from " + said + ": {why}", what=since_last(n, "a line", "lines"),
            name=name, realm=realm, address=address, why=refused.kind.replace("_", " ")))

    # -- phases --------------------------------------------------------------
    def _naming(self, raw: bytes, text: str) -> None:
        first, self._first = self._first, False
        if first and is_http(text):  # a web page's request, made by a visitor's browser
            self.refuse(NOT_HTTP)
            self._handle = self._closed
            self.close()
            return
        if text.startswith("--"):
            self.refuse(Refused("join_first", wire.JOIN_FIRST.notice()))
            return
        try:
            name, key = parse_join(text, self.server.settings.default_realm)
        except JoinError as e:
            # Its text is not logged: a Lord may type a password here.
            self.refuse(_refused(e))
            return
        self._wait_for(lambda: self.server.check(key, name, self.address),
                       lambda _: self._checked(name, key))

    def _checked(self, name: str, key: str) -> None:
        if name == LORD and self.server.checker is not None:
            self._handle = self._password
            self.name = name
            self._realm_key = key
            self.send(wire.ASK_PASSWORD.notice())
            return
        self._join(name, key)

    def _join(self, name: str, key: str) -> None:
        self.name = name
        self.prefix = name.encode("ascii") + b": "

        def seated(seat: Seat) -> Seat:
            if self._handle != self._waiting:  # closing meanwhile (a timeout): out again
                seat.gone(wire.LEFT_WHY)
            return seat
        self._wait_for(lambda: self.server.join(self, key).addCallback(seated), self._seated)

    def _seated(self, seat: Seat) -> None:
        self.seat = seat
        self._handle = seat.line
        if self._idle:
            self.due = self._clock.seconds() + self._idle
            self.server.deadlines.watch(self)
        else:
            self.due = None
            self.server.deadlines.forget(self)

    def _wait_for(self, start: Callable[[], Deferred[Any]],
                  then: Callable[[Any], None]) -> None:
        """Hold the lines that come until what `start` began answers, then
        hand the answer to `then` (a `JoinError` sends the client back to
        naming) and handle the held lines."""
        self._handle = self._waiting

        def go_on(result: object) -> None:
            if self._handle == self._waiting:  # else the connection went meanwhile
                then(result)

        def refused(failure: Failure) -> None:
            failure.trap(JoinError)
            if self._handle == self._waiting:
                self.name = ""
                self.prefix = b""
                self._handle = self._naming
                assert isinstance(failure.value, JoinError)
                self.refuse(_refused(failure.value))

        answer = start()
        answer.addCallbacks(go_on, refused)
        answer.addErrback(self._unexpected)
        answer.addCallback(lambda _: self._replay())

    def _password(self, raw: bytes, text: str) -> None:
        guesses, address = self.server.guesses, self.address

        def check(wait: float) -> Deferred[Any]:
            if self._handle != self._waiting:  # gone meanwhile: nothing to check
                return succeed(None)
            if not wait:
                return self._check_password(raw, text)
            # Too many wrong ones lately: this one is checked once the wait
            # is over (a right one then gets in; guessing stays slow).
            self._stats.quiet.log(  # one a minute: each held guess is told to the guesser
                self._clock, "password_held", log.warn, "Holding a Lord's password from "
                "{address} {wait:.0f} s before checking it, after wrong ones",
                address=address, wait=wait)
            self.send(wire.PASSWORD_WAIT.notice(seconds=whole_seconds(wait)))
            if self.due is not None:  # the server's wait is not the client's
                self.due += wait
            checked: Deferred[Any] = Deferred()

            def look_again() -> None:  # others' passwords held as long may be wrong
                self._held_check = None
                guesses.wait(address).addCallback(check).chainDeferred(checked)
            self._held_check = (self._clock.callLater(wait, look_again), checked)
            return checked

        def turn() -> Deferred[Any]:
            if self.due is None:  # it waited its turn, the server's wait: time starts again
                self._login_deadline()
            return guesses.wait(address).addCallback(check)

        def start() -> Deferred[Any]:
            """One password of an address at a time: each waits what the last set."""
            ahead = guesses.waiting(address)
            if ahead:  # behind the address's other passwords: the client's time stops
                self.due = None
                self.send(wire.PASSWORD_IN_LINE.notice(ahead=wire.counted(ahead, "other")))
            self._queued = guesses.in_turn(address, turn)
            return self._queued

        self._wait_for(start, self._password_checked)

    def _check_password(self, raw: bytes, text: str) -> Deferred[Any]:
        checker = self.server.checker
        assert checker is not None
        d: Deferred[Any] = checker.requestAvatarId(UsernamePassword(b"lord", raw))

        def as_text(failure: Failure) -> Deferred[bytes | tuple[()]]:
            # `--auth memory:` keeps str, `--auth file:` bytes: try both.
            failure.trap(UnauthorizedLogin)
            return checker.requestAvatarId(
                UsernamePassword("lord", text))  # type: ignore[arg-type]

        d.addErrback(as_text)
        d.addCallbacks(self._password_right, self._password_bad)
        return d

    def _password_right(self, avatar_id: object) -> object:
        """Cleared now, before the address's next password is looked at
        (and whether or not the connection is still there to get in)."""
        self.server.guesses.right(self.address)
        return avatar_id

    def _password_checked(self, avatar_id: object) -> None:
        if avatar_id is None:
            return  # not checked, or wrong: said so already
        log.info("{address} proved to be the Lord", address=self.address)
        self._join(LORD, self._realm_key)

    def _password_bad(self, failure: Failure) -> Deferred[None]:
        failure.trap(UnauthorizedLogin)
        self._stats.refused["wrong_password"] += 1

        def counted(wait: float) -> None:
            log.warn("Wrong Lord password from {address} ({n} of {limit} on this "
                     "connection; {wait:.0f} s to wait)", address=self.address,
                     n=self._failures + 1, limit=MAX_PASSWORD_FAILURES, wait=wait)
            self._strike(wire.WRONG_PASSWORD.notice())

        return self.server.guesses.wrong(self.address).addCallback(counted)

    def _strike(self, refusal: bytes) -> None:
        """A password refused: back to naming, or out at the third."""
        if self._handle != self._waiting:  # the connection went while it was checked
            return
        self.name = ""
        self._failures += 1
        if self._failures >= MAX_PASSWORD_FAILURES:
            self.send(wire.LAST_PASSWORD.notice())
            self._handle = self._closed
            self.close()
            return
        self._handle = self._naming
        self.send(refusal)

    def _unexpected(self, failure: Failure) -> None:
        log.failure("Joining failed unexpectedly", failure)
        if self._handle == self._waiting:
            self._handle = self._naming
            self.name = ""
            self.send(wire.TRY_AGAIN.notice())

    def _waiting(self, raw: bytes, text: str) -> None:
        if len(self._pending) >= MOST_PENDING:  # a password's turn may be minutes away
            self.refuse(Refused("wait_for_answer", wire.WAIT_FOR_ANSWER.notice()))
            return
        self._pending.append(raw)

    def _replay(self) -> None:
        while self._pending and self._handle not in (self._waiting, self._closed):
            raw = self._pending.pop(0)
            self._handle(raw, raw.decode("utf-8"))

    def _closed(self, raw: bytes, text: str) -> None:
        pass


def _refused(error: JoinError) -> Refused:
    """A refused name or join, by its kind (`bad_name`, `name_taken`, `draining`...)."""
    kind = wire.refusal(error.line.decode("utf-8").rstrip("\r\n"))
    return Refused(kind or "join", error.line)
