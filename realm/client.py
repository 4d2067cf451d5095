"""`realm-client`'s protocol, and what its two drivers share.

`RealmClient` speaks the wire protocol (docs/PROTOCOL.md): it sends
the name line on connect, answers a password request, learns its own name
as the server stored it from its `entered` line, and hands every line to
its `Driver`.  It keeps no game state.  Every line is made `visible`
first: a server's control characters (escape sequences, BEL) are shown as
`^[`, `^G`..., never executed by the player's terminal, in every mode.

`Player` is what both drivers share: leaving (`--leave`, then a grace
before the connection is cut), remembering the server's goodbye, and
turning the connection's end into an `Ending`.  The drivers:

- `realm.lord.LordDriver`, driven from the keyboard (`realm.console`
  draws it on a terminal or pipes);
- `realm.bots.BotDriver`, driven by a `realm.bot.Bot` brain, and
  `realm.bots.Band`, which runs `--count` of them.

The command line that runs them is `realm.cli`; what they make of a TLS
server's certificate, `realm.certificates`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from realm import wire
from realm.certificates import NamesNoHost, names_shown, untrusted
from realm.looks import visible

#: How long to wait for the server to close after `--leave`, in seconds.
LEAVE_GRACE = 5.0
#: How long a server may say nothing once connected, in seconds (realm
#: greets at once; a server that does not is hung, or no realm).
SILENT_WAIT = 10.0


class Unreachable(Exception):
    """The server cannot be reached; the message says why, in one line."""


@dataclass(frozen=True)
class Ending:
    """How a player's game ended, in one line: well, or not (`failed`).

    `shown`: the reason is already on the player's screen (the server's
    own `*** Error: ` line), so it need not be told again.
    """

    why: str
    failed: bool = False
    shown: bool = False


class Driver(Protocol):
    """What drives a `RealmClient`: the Lord or a bot."""

    def connected(self, client: RealmClient) -> None:
        """The connection is up; the name line goes out next."""

    def heard(self, line: str) -> None:
        """A line from the server, made `visible`."""

    def joined(self, name: str) -> None:
        """The server announced our arrival, under `name` as it stored it."""

    def refused(self, line: str, key: str) -> str | None:
        """The server refused us (`key` is `wire.refusal(line)`): a name to
        try next, or None to hang up."""

    def secret(self) -> Deferred[str | None] | None:
        """The server asks for the Lord's password and none was given: one
        to be asked for (None when it is given up), or None at once."""

    def lost(self, reason: Failure) -> None:
        """The connection is gone."""

    def fail(self, why: str) -> None:
        """The game cannot go on: `why` is the ending, once the connection is gone."""


@implementer(IHandshakeListener)
class RealmClient(LineReceiver):
    """One connection to a realm.  Phases: `joining`, then `playing`."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, driver: Driver, name: str, realm: str | None = None,
                 password: str | None = None) -> None:
        self.driver = driver
        #: The name asked for; once joined, the name the server stored.
        self.name = name
        self.realm = realm
        self.password = password
        self.phase = "joining"

    def connectionMade(self) -> None:
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            try:
                no_delay(True)
            except OSError:
                pass  # not a TCP socket: nothing to tune
        self.driver.connected(self)
        self._send_name()

    def handshakeCompleted(self) -> None:
        """TLS: a certificate that names no host is refused (`NamesNoHost`),
        before the name line leaves."""
        if names_shown(self.transport) == []:
            self.transport.failVerification(Failure(NamesNoHost()))  # type: ignore[union-attr]

    def _send_name(self) -> None:
        self.send(f"{self.name}@{self.realm}" if self.realm else self.name)

    def send(self, text: str) -> None:
        """Send one line of text."""
        self.sendLine(text.encode("utf-8"))

    def lineReceived(self, data: bytes) -> None:
        line = visible(data.rstrip(b"\r").decode("utf-8", "replace"))
        if self.phase == "joining":
            self.line_joining(line)
        else:
            self.driver.heard(line)

    def line_joining(self, line: str) -> None:
        self.driver.heard(line)
        key = wire.refusal(line)
        stored = wire.entered(line)
        if key is not None:
            self.name_refused(line, key)
        elif wire.ASK_PASSWORD.matches(line):
            self.password_asked()
        elif stored is not None and stored.lower() == self.name.lower():
            self.name = stored
            self.phase = "playing"
            self.driver.joined(stored)

    def name_refused(self, line: str, key: str) -> None:
        name = self.driver.refused(line, key)
        if name is None:
            self.hang_up()
        else:
            self.name = name
            self._send_name()

    def password_asked(self) -> None:
        if self.password is not None:
            self.send(self.password)
            return
        asked = self.driver.secret()
        if asked is None:
            self.hang_up()
        else:
            asked.addCallback(self._secret_given)

    def _secret_given(self, secret: str | None) -> None:
        if not self.connected or self.phase != "joining":
            return
        if secret is None:
            self.hang_up()
        else:
            self.send(secret)

    def lineLengthExceeded(self, line: bytes) -> None:
        """No realm sends such a line (a realm's are short): say so, and go."""
        self.driver.fail(f"the server sent a line over {self.MAX_LENGTH // 1024} KiB, "
                         "which no realm does")
        self.hang_up()

    def hang_up(self) -> None:
        """Close the connection once what is queued has gone out."""
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Close the connection now, whatever is queued."""
        if self.transport is not None:
            getattr(self.transport, "abortConnection", self.transport.loseConnection)()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.driver.lost(reason or Failure(ConnectionDone()))


#: The server's goodbyes that end a game well for a bot, and how to say so.
GOODBYES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (wire.LORD_LEFT.matches, "the Lord has left"),
    (wire.DISMISSED_YOU.matches, "dismissed"),
    (wire.SHUTTING_DOWN.matches, "the server has closed"),
    (wire.realm_over, "the realm is over"),
)


class Player:
    """What the Lord and a bot share: the client, leaving, and the ending.

    `leave` sends `--leave` (once joined: a line before that would be a
    name) and cuts the connection after `LEAVE_GRACE` if the server has not
    closed it by then.  `done` fires with the `Ending` once the connection
    is gone; `ending_for` (a driver's hook) says what it was.
    """

    def __init__(self, clock: IReactorTime, where: str = "") -> None:
        self.clock = clock
        #: The endpoint connected to, for the advice in a TLS failure.
        self.where = where
        self.client: RealmClient | None = None
        self.name = ""
        self.is_joined = False
        self.leaving = False
        self.cut = False  # we ended the connection (leaving), not the server
        #: The server's goodbye (the last line tells), or why we left.
        self.ending = ""
        #: Why the game cannot go on, in one line; `failure_shown` when it
        #: is the server's own line, already on the player's screen.
        self.failure = ""
        self.failure_shown = False
        self.timers: list[IDelayedCall] = []
        self.answered = False  # the server has sent a line
        self.done: Deferred[Ending] = Deferred()

    def connected(self, client: RealmClient) -> None:
        self.client = client
        self.name = client.name
        self.later(SILENT_WAIT, self._silent)

    def _silent(self) -> None:
        if not self.answered and self.client is not None:
            self.fail(f"cannot reach the realm at {self.where}: it said nothing in "
                      f"{SILENT_WAIT:g} s")
            self.client.abort()

    def joined(self, name: str) -> None:
        self.name = name
        self.is_joined = True
        if self.leaving:
            self.send(wire.LEAVE)

    def note(self, line: str) -> None:
        """Remember why the server may be about to close: the last line tells."""
        self.answered = True
        if wire.IDLE_TIMEOUT.match(line) is not None:  # shown: not the player's leaving
            self.fail(line.removeprefix(wire.ERROR), shown=True)
        for says, why in GOODBYES:
            if says(line):
                self.ending = why
                return
        if not self.leaving:  # we left: that stays the reason
            self.ending = ""

    def fail(self, why: str, shown: bool = False) -> None:
        """The game cannot go on: say why when the connection is gone."""
        if not self.failure:
            self.failure, self.failure_shown = why, shown

    def send(self, text: str) -> None:
        if self.client is not None and self.client.connected:
            self.client.send(text)

    def leave(self, why: str, at_once: bool = True) -> None:
        """Leave the realm: `--leave` once joined, then a grace before the
        connection is cut.  Not yet joined: hang up `at_once`, or else wait
        for the join (the Lord's lines typed before it go first)."""
        client = self.client
        if client is None:
            return
        first = not self.leaving
        self.leaving = True
        self.ending = self.ending or why
        if not client.connected:
            return
        if at_once and not self.is_joined:
            self._cut(client.hang_up)
        elif first:
            if self.is_joined:
                self.send(wire.LEAVE)
            self.timers.append(self.clock.callLater(LEAVE_GRACE, self._cut, client.abort))

    def _cut(self, how: Callable[[], None]) -> None:
        """We end the connection, not the server."""
        self.cut = True
        how()

    def later(self, delay: float, call: Callable[[], object]) -> None:
        """Call `call` after `delay` seconds, unless the connection goes first."""
        self.timers = [timer for timer in self.timers if timer.active()]
        self.timers.append(self.clock.callLater(delay, call))

    def lost(self, reason: Failure) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        self.timers = []
        tls = untrusted(reason, self.where, self.client and self.client.transport)
        if tls is not None:
            ending = Ending(tls, failed=True)
        elif self.failure:
            ending = Ending(self.failure, failed=True, shown=self.failure_shown)
        else:
            ending = self.ending_for(reason)
        self.done.callback(ending)

    def ending_for(self, reason: Failure) -> Ending:
        """How the game ended, the connection gone without a failure noted."""
        if self.is_joined and (self.leaving or self.ending):
            return Ending(self.ending or "left")
        if not self.is_joined:
            return Ending("left before joining the realm" if self.cut else
                          "the connection to the realm was lost before joining", failed=True)
        return Ending("the connection to the realm was lost", failed=True)
