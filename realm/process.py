"""The server as a process: its ports, its signals, its limits, its log.

- `Listener`: one `--listen`/`--web` endpoint.  A port that cannot be
  opened (in use, no permission) stops the start with one line saying
  what and where, and a non-zero exit: no traceback.
- `Signals`: SIGTERM and SIGINT end the server the graceful way (every
  member is told) and the process exits 0; SIGHUP reopens the log file
  (what logrotate expects) and keeps every game.
- `raise_open_files_limit`: the soft RLIMIT_NOFILE raised to the hard
  limit, so a server can hold as many connections as the system allows.
- `with_backlog`: a larger listen backlog than Twisted's 50 by default.
- `collect_less_often`: the cyclic garbage collector's first generation
  made larger, so that a busy server does not walk its every connection
  again and again.
"""

from __future__ import annotations

import errno
import gc
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.application import service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from realm import proxied

log = Logger()

#: The listen backlog given to tcp:, ssl:, unix: and haproxy: endpoints
#: that do not set one (Twisted's default is 50).
BACKLOG = 1024
_BACKLOG_KINDS = ("tcp", "tcp6", "ssl", "unix", "haproxy")
#: Container objects allocated (net) before the youngest generation is
#: collected; Python's default is 700.
GC_YOUNG = 50_000


class StartupFailure(SystemExit, Exception):
    """The server cannot start: one line for the operator, exit status 1.

    The line goes to the process's own stderr (twistd has put a logger in
    `sys.stderr`'s place by now, which would bury it in the log as an
    error with a timestamp) and to the log as an error: a critical event
    before logging has begun would be written to stderr a second time.

    It is a `SystemExit` (`twistd -n` exits with no traceback) and an
    `Exception`: a daemon's twistd passes an Exception's line to the
    process that started it, which waits for that word (and would wait
    for ever for a mere SystemExit).  That word is cut at 100 bytes, and
    the daemon's stderr is /dev/null by the time its ports open: the
    stderr twistd was started with is kept (`keep_stderr`) until the
    server runs (`let_stderr_go`), and the whole line goes there.
    """

    stderr: IO[str] | None = None

    def __init__(self, line: str) -> None:
        super().__init__(1)
        self.line = f"realm: {line}"
        log.error("{line}", line=self.line)
        stderr = StartupFailure.stderr or sys.__stderr__ or sys.stderr
        stderr.write(self.line + "\n")
        stderr.flush()

    @staticmethod
    def keep_stderr() -> None:
        if StartupFailure.stderr is None:
            try:
                StartupFailure.stderr = os.fdopen(  # not inherited by children
                    os.dup(2), "w", errors="backslashreplace")
            except OSError:  # no stderr at all
                pass

    @staticmethod
    def let_stderr_go() -> None:
        """A daemon must not hold its starter's terminal open."""
        kept, StartupFailure.stderr = StartupFailure.stderr, None
        if kept is not None:
            kept.close()

    def __str__(self) -> str:
        return self.line


def with_backlog(description: str) -> str:
    """`description` with `backlog=BACKLOG` added where it can take one."""
    kind = description.split(":", 1)[0].lower()
    if kind in _BACKLOG_KINDS and "backlog=" not in description:
        return f"{description}:backlog={BACKLOG}"
    return description


class Listener(service.Service):
    """Listen on one endpoint while running.  On a `haproxy:` endpoint each
    client's address comes from its PROXY header, read before the client's
    protocol is connected (realm.proxied: Twisted's own reads it after)."""

    def __init__(self, reactor: Any, description: str, factory: IProtocolFactory,
                 what: str, linger: Callable[[], Deferred[Any]] | None = None) -> None:
        behind = proxied.listening(description)
        if behind is not None:
            description, what = behind, f"{what} (PROXY protocol)"
            factory = proxied.HeaderFirstFactory(factory, reactor)
        self.reactor = reactor
        self.description = description
        self.factory = factory
        self.what = what
        self.linger = linger  # stop listening only once this has fired
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        endpoint = endpoints.serverFromString(self.reactor, with_backlog(self.description))
        listening = endpoint.listen(self.factory)
        outcome: list[Any] = []
        listening.addBoth(outcome.append)
        if not outcome:  # an endpoint that listens later: report it then
            listening.addCallback(self._listening).addErrback(self._failed_later)
        elif isinstance(outcome[0], Failure):
            reason = _reason(outcome[0])
            raise StartupFailure(f"cannot listen on {self.description} for "
                                 f"{self.what}: {reason}")
        else:
            self._listening(outcome[0])

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        log.info("Serving {what} on {endpoint} (at {address})", what=self.what,
                 endpoint=self.description, address=_where(address),
                 port=getattr(address, "port", None))

    def _failed_later(self, failure: Failure) -> None:
        log.critical("Cannot listen on {endpoint} for {what}: {reason}; stopping",
                     endpoint=self.description, what=self.what,
                     reason=failure.getErrorMessage())
        stop(self.reactor)

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        if self.linger is None:
            return port.stopListening()
        return self.linger().addBoth(lambda _: port.stopListening())


def _where(address: Any) -> str:
    """`host:port` for an IP address, the path for a UNIX socket."""
    if hasattr(address, "port"):
        return f"{address.host}:{address.port}"
    name = getattr(address, "name", address)
    return os.fsdecode(name) if isinstance(name, bytes) else str(name)


class Signals(service.Service):
    """SIGTERM/SIGINT: stop gracefully, exit 0.  SIGHUP: reopen the log."""

    def __init__(self, reactor: Any, reopen: Callable[[], None]) -> None:
        self.reactor = reactor
        self.reopen = reopen
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        # The reactor installs its own handlers as it starts (they make
        # twistd kill itself again with the signal: exit 143 or 130).
        self.reactor.callWhenRunning(self._install)

    def _install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hang_up)
        StartupFailure.let_stderr_go()
        log.info("Running: SIGTERM or SIGINT stops gracefully, SIGHUP reopens the log")

    def _stop(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self._stopping:  # an impatient operator: the first is being done
            log.info("Received {signal} again: already shutting down", signal=name)
            return
        self._stopping = True
        log.info("Received {signal}: shutting down", signal=name)
        self.reactor.callFromThread(stop, self.reactor)

    def _hang_up(self, signum: int, frame: object) -> None:
        self.reactor.callFromThread(self._reopen)

    def _reopen(self) -> None:
        self.reopen()
        log.info("Received SIGHUP: reopened the log; every game goes on")


def stop(reactor: Any) -> None:
    """Stop the reactor, unless it is stopping already (a signal, a drain's
    end and a listener that failed may each come during another's)."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one; return the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            log.warn("Could not raise the open-files limit from {soft}: {e}", soft=soft, e=e)
    log.info("Open-files limit: {limit} (each connection takes one)", limit=soft)
    return soft


def collect_less_often() -> None:
    """Collect the youngest generation every `GC_YOUNG` allocations.

    Every line allocates a few short-lived objects (bytes joined, a bound
    method, a Deferred now and then) that reference counting frees at
    once.  At Python's 700 a busy server still collects about a hundred
    times a second; whatever lives through it (a member's held lines, a reign in
    play) ages into the older generations, whose collections walk every
    object of every connection: 14% of the CPU with 10,000 connections,
    3% with 500 (bench/RESULTS.md).  At 50,000 nearly everything young is
    gone by the time the collector looks, and older collections are rare.
    Cyclic garbage still goes: later, and a young collection costs no
    more, since it walks only what is still alive.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


def _reason(failure: Failure) -> str:
    """Why listening failed, in a line: for a UNIX socket, the path that
    failed, not Twisted's lock file (`'123' -> b'/run/x.sock.lock'`)."""
    error = failure.value
    if isinstance(error, OSError) and error.strerror and error.filename2 is not None:
        path = os.fsdecode(error.filename2).removesuffix(".lock")
        folder = os.path.dirname(path) or "."
        missing = f" (there is no folder {folder})" if error.errno == errno.ENOENT else ""
        return f"{error.strerror}: {path}{missing}"
    return failure.getErrorMessage()
