"""`realm-client`: one client protocol, two drivers (the Lord and the bots).

`RealmClient` speaks the wire protocol (../shared/PROTOCOL.md): it sends the
name line on connect, answers a password request, notices its own arrival,
and hands every line to its driver.  It keeps no game state.

- `realm.console.Lord` is driven from the keyboard, through a terminal
  (`LordTerminal`) or pipes (`LordPipe`).
- `BotDriver` is driven by a `realm.bot.Bot` brain, answering after a short
  think (an injected clock); a bot without a name draws one from
  `lore.NAMES` and draws again when the server says it is taken.

The command line that runs them is `realm.cli`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from realm.bot import LEAVE, Bot, NamePool, Reply
from realm.console import LEAVE_GRACE, lord_left, server_closing

LORD = "Lord"


def entered_name(line: str) -> str | None:
    """The NAME of a `*** NAME has entered the realm (n/SIZE)` line."""
    head, found, _ = line.partition(" has entered the realm")
    if not found or not head.startswith("*** "):
        return None
    return head[4:].strip()


def asks_password(line: str) -> bool:
    """Whether a server line asks for the Lord's password."""
    return line.startswith("*** ") and not line.startswith("*** Error: ") and (
        "password" in line.lower())


def dismisses(line: str, name: str) -> bool:
    """Whether a server line tells `name` (not another member) it is dismissed."""
    words = set(re.findall(r"[\w-]+", line.lower()))
    return line.startswith("*** ") and "dismissed" in words and bool(
        words & {"you", name.lower()})


class Driver(Protocol):
    """What drives a `RealmClient`: the Lord or a bot."""

    def connected(self, client: RealmClient) -> None:
        """The connection is up; the name line goes out next."""

    def heard(self, line: str) -> None:
        """A line from the server."""

    def joined(self) -> None:
        """The server announced our arrival."""

    def refused(self, error: str) -> str | None:
        """The server refused our name: a name to try next, or None to quit."""

    def lost(self, reason: Failure) -> None:
        """The connection is gone."""


class RealmClient(LineReceiver):
    """One connection to a realm.  Phases: `joining`, then `playing`."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, driver: Driver, name: str, realm: str | None = None,
                 password: str | None = None) -> None:
        self.driver = driver
        self.name = name
        self.realm = realm
        self.password = password
        self.phase = "joining"
        self._password_sent = False

    def connectionMade(self) -> None:
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            try:
                no_delay(True)
            except OSError:
                pass  # not a TCP socket: nothing to tune
        self.driver.connected(self)
        self._send_name()

    def _send_name(self) -> None:
        self._password_sent = False
        self.send(f"{self.name}@{self.realm}" if self.realm else self.name)

    def send(self, text: str) -> None:
        """Send one line of text."""
        self.sendLine(text.encode("utf-8"))

    def lineReceived(self, data: bytes) -> None:
        line = data.rstrip(b"\r").decode("utf-8", "replace")
        if self.phase == "joining":
            self.line_joining(line)
        else:
            self.driver.heard(line)

    def line_joining(self, line: str) -> None:
        self.driver.heard(line)
        if line.startswith("*** Error: "):
            self.name_refused(line)
        elif asks_password(line) and self.name.lower() == LORD.lower():
            self.password_asked()
        elif (entered_name(line) or "").lower() == self.name.lower():
            self.phase = "playing"
            self.driver.joined()

    def name_refused(self, error: str) -> None:
        name = self.driver.refused(error)
        if name is None:
            self.hang_up()
        else:
            self.name = name
            self._send_name()

    def password_asked(self) -> None:
        if self._password_sent:
            return
        if self.password is None:
            self.driver.refused("The server asks for the Lord's password: "
                                "give it with --password-file or REALM_PASSWORD.")
            self.hang_up()
            return
        self._password_sent = True
        self.send(self.password)

    def lineLengthExceeded(self, line: bytes) -> None:
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


class BotDriver:
    """A bot: hears lines, thinks, and answers the Lord through its brain."""

    def __init__(self, brain: Bot, clock: IReactorTime, think: float,
                 pool: NamePool | None = None,
                 report: Callable[[str], None] = lambda text: None) -> None:
        self.brain = brain
        self.clock = clock
        self.think = think
        self.pool = pool
        self.report = report
        self.name = ""
        self.pending: deque[Reply] = deque()
        self.timers: list[IDelayedCall] = []
        self.leaving = False
        self.ending = ""
        self.failure = ""
        self.client: RealmClient | None = None
        #: Fires with None when the bot's game is over, with an error if not.
        self.done: Deferred[str | None] = Deferred()

    def connected(self, client: RealmClient) -> None:
        self.client = client
        self.name = client.name

    def joined(self) -> None:
        self.report(f"[{self.name}] joined the realm")

    def refused(self, error: str) -> str | None:
        if self.pool is not None and "taken" in error.lower():
            name = self.pool.draw()
            if name is not None:
                self.report(f"[{self.name}] is taken; trying {name}")
                self.name = name
                return name
        self.failure = f"{self.name}: {error.removeprefix('*** Error: ')}"
        return None

    def heard(self, line: str) -> None:
        self._note_ending(line)
        reply = self.brain.hear(line)
        if reply is None:
            return
        self.pending.append(reply)
        if self.think <= 0:
            self._say_next()
        else:
            delay = self.think * self.brain.rng.uniform(0.5, 1.5)
            self.timers.append(self.clock.callLater(delay, self._say_next))

    def _note_ending(self, line: str) -> None:
        """Remember why the server may be about to close: the last line tells."""
        if lord_left(line):
            self.ending = "the Lord has left"
        elif dismisses(line, self.name):
            self.ending = "dismissed"
        elif server_closing(line):
            self.ending = "the server has closed"
        elif not self.leaving:
            self.ending = ""

    def _say_next(self) -> None:
        """Say the oldest reply: replies keep their order whatever the delays."""
        self.timers = [call for call in self.timers if call.active()]
        reply = self.pending.popleft()
        if self.client is None or not self.client.connected or self.leaving:
            return
        self.client.send(reply.text)
        self.report(f"[{self.name}] {reply.text}")
        if reply.leaves:
            self.leave("deserted")

    def leave(self, why: str) -> None:
        """Leave the realm (`--leave`) unless already on the way out."""
        if self.leaving or self.client is None:
            return
        self.leaving = True
        self.ending = why
        if not self.client.connected:
            return
        if self.client.phase == "playing":
            self.client.send(LEAVE)
        self.timers.append(self.clock.callLater(LEAVE_GRACE, self.client.abort))

    def lost(self, reason: Failure) -> None:
        for call in self.timers:
            if call.active():
                call.cancel()
        self.timers = []
        if self.failure:
            self.done.callback(self.failure)
        elif self.ending:
            self.report(f"[{self.name}] is gone: {self.ending}")
            self.done.callback(None)
        else:
            self.done.callback(f"{self.name}: the connection to the realm was lost")
