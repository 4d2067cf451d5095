"""`realm-client`'s command line: its options, connecting, and running
the Lord (`realm.lord` on a `realm.console` screen) or the bots
(`realm.bots.Band`).

    realm-client --lord [--connect ENDPOINT] [--realm NAME] [--password-file F]
    realm-client --bot [--count N] [--keep] [--think S] [--name NAME] [--seed N] ...

It exits 0 when its players leave, 1 when the server cannot be reached, a
connection is lost or refused, or the server's certificate is not trusted,
2 on a usage error.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import termios
import tty
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, cast

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.protocol import Factory
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogFilterPredicate,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    eventAsText,
    globalLogBeginner,
)
from twisted.python import usage

from realm import wire
from realm.bot import Bot, NamePool, Temper
from realm.bots import Band
from realm.certificates import checking
from realm.client import LEAVE_GRACE, RealmClient, Unreachable
from realm.console import LordPipe, LordTerminal
from realm.looks import reflows, terminal_colour
from realm.lord import LordDriver

#: The options that only bots take.
BOT_OPTIONS = ("name", "count", "keep", "quiet", "think", "loyalty", "most-loyalty", "seed")
#: How long to wait for a connection before giving up, in seconds.
CONNECT_TIMEOUT = 10.0


def print_version(command: str) -> None:
    """`--version`: realm's own version, not Twisted's."""
    print(f"{command} (realm) {version('realm')}")
    raise SystemExit(0)


class Options(usage.Options):
    synopsis = "Usage: realm-client (--lord | --bot) [options]"
    longdesc = ("Play in a realm: --lord reads your lines from the keyboard; "
                "--bot runs bots that answer the Lord.")
    optFlags = [
        ["lord", None, "join as the Lord, reading lines from stdin"],
        ["bot", None, "run bots"],
        ["quiet", "q", "bots: print nothing but errors"],
        ["keep", None, "bots: when one is dismissed or deserts, a new one takes its "
                       "seat, until the Lord leaves"],
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

    def opt_version(self) -> None:
        """Print realm's version and exit."""
        print_version("realm-client")

    def opt_password(self, _: str) -> None:
        """(Not taken: use --password-file or REALM_PASSWORD.)"""
        # Without this, getopt would take `--password` as `--password-file`,
        # and the error would print the secret.
        raise usage.UsageError("a password is never taken on the command line, where "
                               "others can read it: use --password-file or REALM_PASSWORD")

    def postOptions(self) -> None:
        if self["lord"] == self["bot"]:
            raise usage.UsageError("give exactly one of --lord and --bot")
        if self["lord"] and (self["name"] or "").strip().lower() == wire.LORD.lower():
            self["name"] = None  # `--lord --name Lord` (the contract's synopsis): --lord
        for_bots = [f"--{option}" for option in BOT_OPTIONS
                    if self[option] != self.defaults[option]] if self["lord"] else []
        if for_bots:
            raise usage.UsageError(f"{' and '.join(for_bots)}: for bots (--bot); the Lord is "
                                   "one, and is called Lord")
        if self["count"] < 1:
            raise usage.UsageError(f"--count must be at least 1, not {self['count']}")
        if not 0 <= self["think"] < math.inf:  # also refuses nan
            raise usage.UsageError(f"--think must be a number of seconds, not {self['think']:g}")
        if self["bot"] and (self["name"] or "").strip().lower() == wire.LORD.lower():
            raise usage.UsageError("a bot cannot be the Lord: run realm-client --lord")
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


async def connect(reactor: Any, where: str, make: Callable[[], RealmClient]) -> RealmClient:
    """Connect one client to the endpoint `where`, or raise `Unreachable`."""
    try:
        endpoint = clientFromString(reactor, checking(where))
    except (ValueError, TypeError, ImportError) as e:
        raise Unreachable(f"bad --connect {where!r}: {e}") from e
    except OSError as e:  # a trustRoots= folder, a certificate= file it cannot read
        e = getattr(e, "originalException", e)  # FilePath's UnlistableError wraps it
        raise Unreachable(f"bad --connect {where!r}: cannot read "
                          f"{getattr(e, 'filename', None) or 'a file it names'}: "
                          f"{getattr(e, 'strerror', None) or e}") from e
    attempt = endpoint.connect(Factory.forProtocol(make))
    attempt.addTimeout(CONNECT_TIMEOUT, reactor)
    stopped: list[None] = []  # Ctrl-C or SIGTERM came first

    def stop() -> None:
        stopped.append(None)
        attempt.cancel()

    stopping = reactor.addSystemEventTrigger("before", "shutdown", stop)
    try:
        return await attempt  # type: ignore[no-any-return]
    except (DeferredTimeout, ConnectingCancelledError) as e:  # the timeout or a stop cancelled it
        if stopped:
            raise Unreachable(f"stopped before reaching the realm at {where}") from e
        raise Unreachable(f"cannot reach the realm at {where}: no answer in "
                          f"{CONNECT_TIMEOUT:g} s") from e
    except (ConnectError, OSError) as e:
        raise Unreachable(f"cannot reach the realm at {where}: {e}") from e
    except (OverflowError, ValueError) as e:  # a port over 65535, found only now
        raise Unreachable(f"bad --connect {where!r}: {e}") from e
    finally:
        reactor.removeSystemEventTrigger(stopping)


async def run_lord(reactor: Any, config: Options, go_raw: Callable[[], None] | None) -> None:
    """The Lord: connect, then read the keyboard (a terminal if `go_raw`)."""
    where = config["connect"]
    lord = LordDriver(reactor, where)
    try:
        await connect(reactor, where,
                      lambda: RealmClient(lord, wire.LORD, config["realm"], config["password"]))
    except Unreachable as e:
        complain(str(e))
        raise SystemExit(1) from e
    finished: Deferred[None] = Deferred()

    def leave_then() -> Deferred[None] | None:
        """At shutdown (Ctrl-C, SIGTERM): leave, and show the goodbye."""
        if finished.called:
            return None
        lord.stop()
        return finished

    reactor.addSystemEventTrigger("before", "shutdown", leave_then)
    screen: LordTerminal | LordPipe
    if go_raw is not None:
        go_raw()
        terminal = ServerProtocol(LordTerminal, lord, terminal_colour(), _columns,
                                  reflows(os.environ))
        StandardIO(terminal, reactor=reactor)
        drawn = screen = cast(LordTerminal, terminal.terminalProtocol)
        # A signal handler runs between any two steps: redraw in the reactor's turn.
        signal.signal(signal.SIGWINCH, lambda *_: reactor.callFromThread(drawn.resized))
    else:
        screen = LordPipe(lord)
        StandardIO(screen, reactor=reactor)
    lord.attach(screen)
    try:
        ending = await lord.done
        closing = screen.close().addTimeout(LEAVE_GRACE, reactor)
        await closing.addErrback(lambda _: None)  # a stuck terminal: exit anyway
    finally:
        finished.callback(None)
    if ending.failed:
        if not ending.shown:
            complain(ending.why)
        raise SystemExit(1)


def _columns() -> int:
    """The terminal's width now (it may have been resized), from the terminal."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except OSError:
        return 80


async def run_bots(reactor: Any, config: Options) -> None:
    """`--count` bots, one connection each, until the last is gone."""
    seed = config["seed"]
    where = config["connect"]
    told: set[str] = set()

    def tell(error: str) -> None:
        """Say why a bot failed as it happens; the same reason only once."""
        if error not in told:
            told.add(error)
            complain(error)

    def brain(i: int) -> Bot:
        return Bot(random.Random(None if seed is None else seed + i + 1), config["temper"])

    band = Band(lambda make: connect(reactor, where, make), reactor, brain,
                think=config["think"],
                pool=None if config["name"] else NamePool(random.Random(seed)),
                name=config["name"], realm=config["realm"], keep=config["keep"],
                report=(lambda text: None) if config["quiet"] else _say, tell=tell,
                where=where)

    def leave_all() -> Deferred[Any]:
        going = band.stop()
        return going.addTimeout(LEAVE_GRACE + 1, reactor).addErrback(lambda _: None)

    reactor.addSystemEventTrigger("before", "shutdown", leave_all)
    if await band.start(config["count"]):
        raise SystemExit(1)


def complain(text: str) -> None:
    """One line for the user on stderr (`\r\n` on a terminal, in case it is raw)."""
    end = "\r\n" if sys.stderr.isatty() else "\n"
    sys.stderr.write(f"realm-client: {text}{end}")
    sys.stderr.flush()


def _log_critical_only() -> None:
    """Show on stderr what is logged as critical, as Twisted does until
    logging begins; but not Twisted's traceback for a certificate that
    names no host, which realm-client tells in one line
    (`realm.certificates.NamesNoHost`)."""
    from service_identity import CertificateError

    def told(event: dict[str, Any]) -> PredicateResult:
        failure = event.get("log_failure")
        return PredicateResult.no if failure and failure.check(CertificateError) \
            else PredicateResult.maybe

    text = FileLogObserver(sys.stderr, lambda event: (
        eventAsText(event, includeTimestamp=False, includeSystem=False) or "") + "\n")
    shown = [LogLevelFilterPredicate(defaultLogLevel=LogLevel.critical),
             cast(ILogFilterPredicate, told)]
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(text, shown)],
                                     redirectStandardIO=False)


def _say(text: str) -> None:
    """A bot's news on stdout; once nobody reads it (a closed pipe), none."""
    try:
        print(text, flush=True)
    except OSError:  # and nothing at exit either: stdout is /dev/null from now on
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def _standard_streams() -> None:
    """A standard stream closed at the start (`<&-`, `>&-`, `2>&-`) is
    /dev/null: input has ended, output goes nowhere.  Opened in order
    before the reactor starts, each takes its stream's number (the lowest
    free), not one of the reactor's own files (the Lord's screen, on
    descriptors 0 and 1, would then write to it)."""
    for name, flags, mode in (("stdin", os.O_RDONLY, "r"), ("stdout", os.O_WRONLY, "w"),
                              ("stderr", os.O_WRONLY, "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.open(os.devnull, flags), mode, closefd=False))


def main(argv: list[str] | None = None) -> None:
    """The `realm-client` command."""
    config = Options()
    try:
        config.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"realm-client: {e}\n{config}")
        raise SystemExit(2) from e
    _log_critical_only()
    _standard_streams()
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
