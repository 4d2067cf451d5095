"""`realm-client`'s command line: its options, connecting, and running
the Lord (`realm.console`) or the bots (`realm.client.BotDriver`).

    realm-client --lord [--connect ENDPOINT] [--realm NAME] [--password-file F]
    realm-client --bot [--count N] [--think S] [--name NAME] [--seed N] ...

It exits 0 when its players leave, 1 when the server cannot be reached or
a connection is lost, 2 on a usage error.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import termios
import tty
from collections.abc import Callable
from typing import Any, cast

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.python import usage

from realm.bot import Bot, NamePool, Temper
from realm.client import LORD, BotDriver, RealmClient
from realm.console import LEAVE_GRACE, Lord, LordPipe, LordTerminal, terminal_colour

#: How long to wait for a connection before giving up, in seconds.
CONNECT_TIMEOUT = 10.0


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
