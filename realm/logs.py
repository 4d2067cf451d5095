"""realm's log: text or JSON lines, to twistd's log file or stdout, reopened
on SIGHUP.

twistd looks for an `ILogObserver` component on the application before
making its own log observer (the documented way to choose twistd's log,
see Twisted's "Logging" howto); `RealmService` sets one there, so
`twistd -l FILE realm` writes FILE through a `LogDestination` that
SIGHUP reopens (logrotate moves the file, realm writes a new one), and
`--log-format json` writes JSON Lines for log shippers (`twisted.logger`'s
own events, with their level and text).  twistd's `--logger` and
`--syslog` still take precedence.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.application import service
from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    PredicateResult,
    eventAsText,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.python.components import Componentized
from zope.interface import implementer, provider

FORMATS = ("text", "json")


class LogDestination:
    """A file by its path (reopened on demand), or stdout."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file: IO[str] = self._open()

    def _open(self) -> IO[str]:
        if self.path is None:
            return sys.stdout
        return open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def reopen(self) -> None:
        """Open the path again: logrotate has moved the old file away."""
        if self.path is None:
            return
        old, self._file = self._file, self._open()
        old.close()


def observer(destination: LogDestination, format: str) -> ILogObserver:
    written = (json_lines(destination) if format == "json"
               else textFileLogObserver(destination))  # type: ignore[arg-type]
    return FilteringLogObserver(written, [_not_a_retry])


@provider(ILogFilterPredicate)
def _not_a_retry(event: LogEvent) -> PredicateResult:
    """Twisted's `ClientService` logs each retry to connect (to Redis: two a
    second while it is away); realm.redis says why it cannot, once a minute."""
    retry = event.get("log_format", "").startswith("Scheduling retry ") and (
        "ClientService" in event.get("log_namespace", ""))
    return PredicateResult.no if retry else PredicateResult.maybe


def json_lines(destination: LogDestination) -> ILogObserver:
    """One JSON object a line (JSON Lines, not RFC 7464's record separator):
    `twisted.logger`'s own event, plus `level` and the rendered `text` (with
    a failure's traceback) that a log shipper looks for."""
    lines = jsonFileLogObserver(destination, recordSeparator="")  # type: ignore[arg-type]

    @implementer(ILogObserver)
    def observe(event: LogEvent) -> None:
        level = event.get("log_level")
        lines(dict(event, level=getattr(level, "name", "info"), text=eventAsText(
            event, includeTimestamp=False, includeSystem=False)))

    return observe  # type: ignore[return-value]


class RealmService(service.MultiService):
    """realm's top service: it also gives twistd its log observer."""

    def __init__(self, twistd_options: Any, format: str) -> None:
        super().__init__()
        options = twistd_options or {}
        logfile = options.get("logfile") or None
        nodaemon = bool(options.get("nodaemon"))
        # twistd's own --logger and --syslog keep their say.
        self.takes_log = not (options.get("logger") or options.get("syslog"))
        if logfile == "-" or (logfile is None and nodaemon):
            logfile = None  # stdout, as twistd does
        elif logfile is None:
            logfile = "twistd.log"
        self.log_path = logfile
        self.log_format = format
        self.destination: LogDestination | None = None

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        if self.takes_log and isinstance(parent, Componentized):  # twistd's Application
            self.destination = LogDestination(self.log_path)
            parent.setComponent(ILogObserver, observer(self.destination, self.log_format))

    def reopen_log(self) -> None:
        if self.destination is not None:
            self.destination.reopen()
