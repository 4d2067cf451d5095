"""`realm-play` (behind `make play`): a server, four bots, and you as the Lord.

1. Starts `twistd -n --pidfile= realm --listen tcp:PORT:interface=127.0.0.1`
   on a free local port (no idle timeout: the game waits while you are
   away), and waits until it accepts connections.
2. Starts `realm-client --bot --count 4 --keep` against it: a bot that is
   dismissed or deserts is replaced by a new one, so the realm stays full
   and the game never waits on an empty seat.
3. Runs `realm-client --lord` in the foreground, on this terminal.
4. When the Lord leaves (Ctrl-D, Ctrl-C, `--leave`), stops everything it
   started: the bots, then the server; no orphans, no port left bound.
   A Lord's client that is killed (it cannot put the terminal back) has
   the terminal put back as it was, and the exit status says which
   signal (128 + its number, as a shell says it).  If this launcher is
   killed itself (kill -9), the server and the bots get SIGTERM from the
   kernel and end too.

The server and the bots run in their own sessions, so a Ctrl-C at the
terminal reaches only the Lord (who leaves the realm, ending the game);
this launcher then stops the rest.  It says what it is waiting for on
stderr, keeping stdout for the game; the server's and the bots' logs go to
a temporary folder (under `$TMPDIR`), removed at the end unless something
went wrong there (the server did not start, or the server or the bots
ended in error): then it is kept, and the player is told where.
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from twisted.python import usage

from realm.chronicle_url import parse_url as parse_chronicle
from realm.looks import wrap

#: Seconds to wait for the server to accept connections.
START_TIMEOUT = 20.0
#: Seconds a child gets to end after SIGTERM (the server's own grace is 5).
STOP_TIMEOUT = 8.0
#: prctl(2): the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: Seconds the bots get to see the Lord's leaving and go by themselves.
BOTS_PATIENCE = 2.0


class Options(usage.Options):
    synopsis = ("Usage: realm-play [--bots N] [--think SECONDS] [--port PORT] "
                "[--chronicle URL]")
    longdesc = "Play realm as the Lord, with bots, against a server of your own."
    optParameters = [
        ["bots", None, 4, "how many bots play with you (the realm holds them and you)", int],
        ["think", None, 1.0, "seconds a bot thinks before answering", float],
        # No default shown: twistd's usage would add "[default: 0]".
        ["port", None, None, "local port for the server (default: a free one)", int],
        ["chronicle", None, None, "where your reigns are kept (default: sqlite: in "
         "~/.local/share/realm, or $XDG_DATA_HOME/realm)"],
    ]

    def opt_version(self) -> None:
        """Print realm's version and exit."""
        print(f"realm-play (realm) {version('realm')}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self["bots"] < 1:
            raise usage.UsageError(f"--bots must be at least 1, not {self['bots']}")
        if not 0 <= self["think"] < math.inf:  # also refuses nan
            raise usage.UsageError(f"--think must be a number of seconds, not {self['think']:g}")
        if self["port"] is not None and not 0 <= self["port"] < 65536:
            raise usage.UsageError(f"--port must be a port number (0 for a free one), "
                                   f"not {self['port']}")
        if self["chronicle"] is not None:
            try:
                parse_chronicle(self["chronicle"])
            except ValueError as e:
                raise usage.UsageError(str(e)) from e


class Stop(Exception):
    """A signal asked the launcher to stop."""


class Signals:
    """SIGINT, SIGTERM and SIGHUP raise `Stop`, but not inside `held()`:
    a child started there is one the launcher knows of (and stops) before
    a signal can cut it short; the signal is acted on as the block ends."""

    def __init__(self) -> None:
        self.holding = False
        self.asked = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.asked = True
            return
        raise Stop()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.asked:
            self.asked = False
            raise Stop()


SIGNALS = Signals()


def say(text: str, fresh: bool = False) -> None:
    """Tell the player what is happening, on stderr (if anyone is there: a
    closed terminal must not stop the tidying up); `fresh`: below what was
    left half-written (the Lord's prompt)."""
    try:
        line = f"realm-play: {text}"
        if sys.stderr.isatty():  # broken between words, as the Lord's screen is
            line = "\n".join(wrap(line, shutil.get_terminal_size().columns))
        sys.stderr.write(("\n" if fresh else "") + line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # the terminal is gone (EIO), or stderr closed
        pass


def terminal_settings() -> list[Any] | None:
    """The terminal's settings, if stdin is one (the Lord's client sets it raw)."""
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError, AttributeError):  # a pipe, closed, none
        return None


def restore(settings: list[Any] | None) -> None:
    """Put the terminal back as it was (a Lord killed could not)."""
    if settings is not None:
        try:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, settings)
        except (termios.error, OSError):  # the terminal is gone
            pass


def ends_with_us(launcher: int) -> Callable[[], None]:
    """For a child (the server, the bots) in a session of its own: SIGTERM
    once the launcher `launcher` is gone, however it went (kill -9 too),
    so nothing it started outlives it (Linux's PR_SET_PDEATHSIG)."""
    def child() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # not Linux: the launcher's own tidying only
            return
        if os.getppid() != launcher:  # it went before the line above
            os.kill(os.getpid(), signal.SIGTERM)
    return child


def free_port() -> int:
    """A local TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twistd() -> str:
    """The `twistd` installed next to this Python, or else on the PATH."""
    beside = Path(sys.executable).parent / "twistd"
    return str(beside) if beside.exists() else (shutil.which("twistd") or "twistd")


def client(*args: str) -> list[str]:
    """`realm-client ARGS`, run by this Python."""
    return [sys.executable, "-m", "realm.cli", *args]


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_until_accepting(server: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the server accepts connections before it exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        if accepting(port):
            return True
        time.sleep(0.1)  # a blocking launcher: there is no reactor to wait on
    return False


def stop(proc: subprocess.Popen[bytes], what: str, patience: float = 0.0) -> bool:
    """End `proc`: give it `patience` to end by itself, then SIGTERM, then
    SIGKILL.  Whether it ended well: by itself with exit 0, or when asked
    (whatever it said then: it was cut short)."""
    if proc.poll() is not None:
        return proc.returncode == 0  # it ended by itself before it was asked
    if patience:
        say(f"Waiting for {what} to finish (up to {patience:g} s)...")
        try:
            proc.wait(patience)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        say(f"Stopping {what}...")
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(f"{what} did not stop; killing it.")
            proc.kill()
            proc.wait()
            return False
        return True
    return proc.returncode == 0


class CannotStart(Exception):
    """The game cannot start; the message says why, in one line."""


def chronicle() -> str:
    """Where `make play` keeps its reigns, so the next game remembers them."""
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = data / "realm"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CannotStart(f"cannot make the folder for your reigns, {folder}: "
                          f"{e.strerror or e} (--chronicle sqlite:FILE puts them elsewhere)"
                          ) from e
    return f"sqlite:{folder / 'realm.sqlite'}"


def start_server(config: Options, logs: Path,
                 started: list[tuple[subprocess.Popen[bytes], str]]) -> int:
    """Start the server on a free port (three tries if the port was taken
    meanwhile), in `started`; its port.  `CannotStart` with the server's
    own reason if it does not start."""
    asked = config["port"]
    if asked and accepting(asked):  # it would play on whatever listens there
        raise CannotStart(f"port {asked} is in use already; --port 0 picks a free one")
    why = "it did not accept connections in time"
    for _ in range(3):
        port = asked or free_port()
        with SIGNALS.held(), open(logs / "server.out", "wb") as out:  # what it says first
            server = subprocess.Popen(
                [twistd(), "-n", "--pidfile=", f"--logfile={logs / 'server.log'}", "realm",
                 "--listen", f"tcp:{port}:interface=127.0.0.1",
                 "--size", str(config["bots"] + 1), "--chronicle", config["chronicle"],
                 "--idle-timeout", "0"],  # your own game waits while you are away
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=ends_with_us(os.getpid()))
            started.append((server, "the server"))
        say(f"Server started (pid {server.pid}); waiting until it accepts connections "
            f"on 127.0.0.1:{port}...")
        if wait_until_accepting(server, port):
            return port
        stop(server, "the server")
        started.remove((server, "the server"))
        told = (logs / "server.out").read_text("utf-8", "replace").strip().splitlines()
        why = told[0] if told else why
        if asked or "in use" not in why:
            break
    raise CannotStart(f"the server did not start: {why}")


def play(config: Options) -> int:
    """Run a whole game; return the Lord's exit code."""
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    code = 1
    #: Whether the logs tell of something that went wrong: then they are kept.
    worth_keeping = False
    lord: subprocess.Popen[bytes] | None = None
    logs: Path | None = None
    terminal = terminal_settings()
    try:
        logs = Path(tempfile.mkdtemp(prefix="realm-play-"))
        if config["chronicle"] is None:
            config["chronicle"] = chronicle()
        kept = parse_chronicle(config["chronicle"])
        say("Your reigns are not kept (--chronicle none)." if kept.scheme == "none" else
            f"Your reigns are kept in {kept} (--chronicle in the game lists the best).")
        port = start_server(config, logs, started)
        endpoint = f"tcp:127.0.0.1:{port}"
        with SIGNALS.held(), open(logs / "bots.log", "wb") as bot_log:
            bots = subprocess.Popen(
                client("--bot", "--count", str(config["bots"]), "--keep",
                       "--connect", endpoint, "--think", str(config["think"])),
                stdin=subprocess.DEVNULL, stdout=bot_log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=ends_with_us(os.getpid()))
            started.insert(0, (bots, "the bots"))
        say(f"Started {config['bots']} bots (pid {bots.pid}); a bot that leaves is replaced. "
            f"Logs: {logs}")
        say("You are the Lord. Type a line and press Enter; --help lists the "
            "commands; Ctrl-D, Ctrl-C or --leave ends the game.")
        with SIGNALS.held():
            lord = subprocess.Popen(client("--lord", "--connect", endpoint))
            # From here Ctrl-C is the Lord's, who leaves; the launcher then tidies up.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        code = lord.wait()
        lord = None
        if code < 0:  # killed: it could not put the terminal back as it was
            restore(terminal)  # first: what is said next must not come out raw
            say(f"The Lord's client was ended by {signal.Signals(-code).name}.", fresh=True)
            code = 128 - code  # as a shell says it
    except CannotStart as e:
        why = str(e).rstrip(".")
        say(f"{why[:1].upper()}{why[1:]}.")
        worth_keeping = logs is not None and any(logs.iterdir())  # the server's, if any
    except Stop:
        say("Asked to stop.")
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):  # tidy up without interruption
            signal.signal(signum, signal.SIG_IGN)
        if lord is not None:  # stopped by a signal: the Lord leaves on SIGTERM
            stop(lord, "the Lord")
        restore(terminal)
        for proc, what in started:  # the bots first: they leave when the Lord has
            patience = BOTS_PATIENCE if what == "the bots" and not code else 0
            if not stop(proc, what, patience):
                say(f"{what} ended in error (exit {proc.returncode}).")
                worth_keeping = True
        if logs is not None:
            if worth_keeping:
                say(f"Logs are kept in {logs}.")
            else:
                shutil.rmtree(logs, ignore_errors=True)
    say("Everything it started has stopped. Farewell!" if started else "Farewell!")
    return code


def main(argv: list[str] | None = None) -> None:
    """The `realm-play` command."""
    config = Options()
    try:
        config.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(f"realm-play: {e}\n{config}")
        raise SystemExit(2) from e
    # Until the Lord is at the keyboard, Ctrl-C stops the launcher (which
    # tidies up); then it is the Lord's (see `play`).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, SIGNALS)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(play(config))


if __name__ == "__main__":
    main()
