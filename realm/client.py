"""`realm-client`: one client protocol, two drivers (the Lord and the bots).

`RealmClient` speaks the wire protocol (../shared/PROTOCOL.md): it sends the
name line on connect, answers a password request, notices its own arrival,
and hands every line to its driver.  It keeps no game state.

- `realm.console.Lord` is driven from the keyboard, through a terminal
  (`LordTerminal`) or pipes (`LordPipe`).
- `BotDriver` is driven by a `realm.bot.Bot` brain, answering after a short
  think (an injected clock); a bot without a name draws one from
  `lore.NAMES` and draws again when the server says it is taken.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import termios
import tty
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectError, ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.python.failure import Failure

from realm.bot import LEAVE, Bot, NamePool, Reply, Temper
from realm.console import (
    LEAVE_GRACE,
    Lord,
    LordPipe,
    LordTerminal,
    lord_left,
    server_closing,
    terminal_colour,
)

LORD = "Lord"
#: How long to wait for a connection before giving up, in seconds.
CONNECT_TIMEOUT = 10.0


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


# -- The command line ----------------------------------------------------

class Options(usage.Options):
    synopsis = "Usage: realm-client (--lord | --bot) [options]"
    longdesc = ("Play in a realm: --lord reads your lines from the keyboard; "
                "--bot runs bots that answer the Lord.")
    optFlags = [
        ["lord", None, "join as the Lord, reading lines from stdin"],
        ["bot", None, "run bots"],
        ["quiet", "q", "bots: print nothing but errors"],
    ]
    optParameters = [
        ["connect", "c", "tcp:localhost:2345", "Twisted client endpoint of the server"],
        ["realm", "r", None, "realm to join (default: the server's)"],
        ["name", "n", None, "bots: the name (default: drawn from the pool)"],
        ["count", None, 1, "bots: how many to run in this process", int],
        ["think", None, 1.0, "bots: seconds to think before answering", float],
        ["loyalty", None, Temper.loyalty, "bots: starting loyalty", int],
        ["most-loyalty", None, Temper.most, "bots: the most loyalty a bot can have", int],
        ["seed", None, None, "bots: random seed, for repeatable bots", int],
        ["password-file", None, None, "the Lord: file whose first line is the password"],
    ]

    def postOptions(self) -> None:
        if self["lord"] == self["bot"]:
            raise usage.UsageError("give exactly one of --lord and --bot")
        if self["lord"] and (self["name"] or self["count"] != 1):
            raise usage.UsageError("the Lord is one, and is called Lord")
        if self["count"] < 1 or self["think"] < 0:
            raise usage.UsageError("--count must be at least 1, --think not negative")
        try:
            self["temper"] = Temper(self["loyalty"], self["most-loyalty"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from e
        self["password"] = self._password()

    def _password(self) -> str | None:
        if self["password-file"]:
            try:
                with open(self["password-file"], encoding="utf-8") as f:
                    return f.readline().rstrip("\r\n")
            except OSError as e:
                raise usage.UsageError(f"cannot read --password-file: {e}") from e
        return os.environ.get("REALM_PASSWORD") or None  # empty: unset


class Unreachable(Exception):
    """The server cannot be reached; the message says why, in one line."""


async def connect(reactor: Any, where: str, make: Callable[[], RealmClient]) -> RealmClient:
    """Connect one client to the endpoint `where`, or raise `Unreachable`."""
    try:
        endpoint = clientFromString(reactor, where)
    except ValueError as e:
        raise Unreachable(f"bad --connect {where!r}: {e}") from e
    attempt = endpoint.connect(Factory.forProtocol(make))
    attempt.addTimeout(CONNECT_TIMEOUT, reactor)
    try:
        return await attempt  # type: ignore[no-any-return]
    except (ConnectError, OSError, DeferredTimeout) as e:
        raise Unreachable(f"cannot reach the realm at {where}: {e}") from e


async def run_lord(reactor: Any, config: Options, go_raw: Callable[[], None] | None) -> None:
    """The Lord: connect, then read the keyboard (a terminal if `go_raw`)."""
    lord = Lord(reactor)
    try:
        await connect(reactor, config["connect"],
                      lambda: RealmClient(lord, LORD, config["realm"], config["password"]))
    except Unreachable as e:
        complain(str(e))
        raise SystemExit(1) from e
    finished: Deferred[None] = Deferred()

    def leave_then() -> Deferred[None] | None:
        """At shutdown (Ctrl-C, SIGTERM): leave, and show the goodbye."""
        if finished.called:
            return None
        lord.leave()
        return finished

    reactor.addSystemEventTrigger("before", "shutdown", leave_then)
    screen: LordTerminal | LordPipe
    if go_raw is not None:
        go_raw()
        terminal = ServerProtocol(LordTerminal, lord, terminal_colour(), _columns)
        StandardIO(terminal, reactor=reactor)
        screen = cast(LordTerminal, terminal.terminalProtocol)
    else:
        screen = LordPipe(lord)
        StandardIO(screen, reactor=reactor)
    lord.attach(screen)
    try:
        code = await lord.done
        closing = screen.close().addTimeout(LEAVE_GRACE, reactor)
        await closing.addErrback(lambda _: None)  # a stuck terminal: exit anyway
    finally:
        finished.callback(None)
    if lord.why:
        complain(lord.why)
    if code:
        raise SystemExit(code)


def _columns() -> int:
    return shutil.get_terminal_size().columns


def bot_names(config: Options, pool: NamePool | None) -> list[str | None]:
    """One name per bot: `--name`, `--name`2, ... or drawn from `pool`."""
    if pool is not None:
        return [pool.draw() for _ in range(config["count"])]
    name = config["name"]
    return [name] + [f"{name}{i}" for i in range(2, config["count"] + 1)]


async def run_bots(reactor: Any, config: Options) -> None:
    """`--count` bots, one connection each, until the last is gone."""
    seed = config["seed"]
    pool = None if config["name"] else NamePool(random.Random(seed))
    report = (lambda text: None) if config["quiet"] else _say
    bots: list[BotDriver] = []

    async def one(i: int, name: str | None) -> str | None:
        if name is None:
            return "there are not enough names for so many bots"
        brain = Bot(random.Random(None if seed is None else seed + i + 1), config["temper"])
        bot = BotDriver(brain, reactor, config["think"], pool, report)
        bots.append(bot)
        try:
            await connect(reactor, config["connect"],
                          lambda: RealmClient(bot, name, config["realm"]))
        except Unreachable as e:
            return str(e)
        return await bot.done

    told: set[str] = set()

    def tell(error: str | None) -> str | None:
        """Say why a bot failed as it happens; the same reason only once."""
        if error and error not in told:
            told.add(error)
            complain(error)
        return error

    def leave_all() -> Deferred[Any]:
        for bot in bots:
            bot.leave("stopped")
        going = gatherResults([bot.done for bot in bots if bot.client is not None])
        return going.addTimeout(LEAVE_GRACE + 1, reactor).addErrback(lambda _: None)

    reactor.addSystemEventTrigger("before", "shutdown", leave_all)
    names = bot_names(config, pool)
    results = await gatherResults(
        [ensureDeferred(one(i, n)).addCallback(tell) for i, n in enumerate(names)])
    if any(results):
        raise SystemExit(1)


def complain(text: str) -> None:
    """One line for the user on stderr (`\r\n` on a terminal, in case it is raw)."""
    end = "\r\n" if sys.stderr.isatty() else "\n"
    sys.stderr.write(f"realm-client: {text}{end}")
    sys.stderr.flush()


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> None:
    """The `realm-client` command."""
    config = Options()
    try:
        config.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"realm-client: {e}\n{config}")
        raise SystemExit(2) from e
    if not config["lord"]:
        react(run_bots, [config])
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        react(run_lord, [config, None])
    # A terminal: raw mode once connected, as twisted.conch.stdio.runWithProtocol
    # does, but without its closing screen reset, so the game stays readable.
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        react(run_lord, [config, lambda: tty.setraw(fd)])
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


if __name__ == "__main__":
    main()
