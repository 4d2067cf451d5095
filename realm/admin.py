"""The operator's console: `--admin ENDPOINT` (a UNIX socket, mode 600).

One command a line; every answer is lines, then a line `.` alone, so a
script knows where an answer ends (`nc -U`, `socat`):

    help            these commands
    realms          one line a realm run here: NAME n/SIZE
    who REALM       its members, one a line: NAME ADDRESS (the Lord marked)
    announce TEXT   every member of every realm here, and every member
                    connected here, gets `*** [Herald] TEXT`
    end REALM       its members are told and disconnected
    drain           new realms are refused, /readyz says 503, realms in play
                    go on; the process exits 0 once its last connection is
                    gone (or, with --drain-timeout S, ends what is left then)
    status          ready, draining or shutting down; realms, members left

With `--cluster`, `who` and `end` for a realm another process runs say
which, when members connected here sit in it.  Anything else answers
`error: ...`.  The console is for whoever can open the socket: keep it
private (`mode=600`, a folder only the service account reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

from realm import wire
from realm.gate import has_control, is_http
from realm.looks import visible
from realm.process import stop
from realm.server import RealmServer

log = Logger()

HELP = (
    "help            these commands",
    "realms          one line a realm run here: NAME n/SIZE",
    "who REALM       a realm's members: NAME ADDRESS",
    "announce TEXT   *** [Herald] TEXT to every member here",
    "end REALM       end a realm: its members are told and disconnected",
    "drain           refuse new realms; exit 0 once the last connection is gone",
    "status          ready, draining or shutting down, and what is left",
)
#: The commands that take nothing after them.
BARE = {"help", "realms", "drain", "status"}


#: Seconds between two log lines saying what a drain still waits for.
PROGRESS = 60.0


class Drain:
    """Taking a process out of service without ending anybody's game.

    It is drained once no connection is left here and no realm runs
    here: with `--cluster`, a realm run here may still have members
    connected to other processes, and their game goes on too.  (A
    connection that never joins is closed by its login timeout.)  While
    it waits, the log says what for, once a `PROGRESS`."""

    def __init__(self, server: RealmServer, reactor: Any, timeout: float = 0.0) -> None:
        self.server = server
        self.reactor = reactor
        self.timeout = timeout
        self._done = False  # drained, or given up on: the process is stopping

    def start(self) -> str:
        server = self.server
        if server.draining:
            return f"draining already: {self.left()}"
        server.draining = True
        log.info("Draining: new realms are refused; {left}", left=self.left())
        server.when_drained().addCallback(self._empty)
        if self.timeout:
            self.reactor.callLater(self.timeout, self._too_long)
        self.reactor.callLater(PROGRESS, self._still)
        return f"draining: {self.left()}; new realms are refused"

    def left(self) -> str:
        """What a drain waits for now, in words."""
        server = self.server
        seats = [seat for session in server.sessions
                 if (seat := getattr(session, "seat", None)) is not None]
        left = f"{wire.counted(len(seats), 'member')} left"
        elsewhere = len(server.realms.keys() - {seat.realm_name for seat in seats})
        if elsewhere:
            left += f", and {wire.counted(elsewhere, 'realm')} run here for members elsewhere"
        unjoined = len(server.sessions) - len(seats)
        if unjoined:
            left += f", and {wire.counted(unjoined, 'connection')} not in a realm"
        return left

    @property
    def _stopping(self) -> bool:
        """Drained, given up on, or shut down otherwise: nothing to add."""
        return self._done or self.server.shutting_down

    def _still(self) -> None:
        if not self._stopping:
            log.info("Still draining: {left}", left=self.left())
            self.reactor.callLater(PROGRESS, self._still)

    def _empty(self, _: object) -> None:
        if not self._stopping:
            self._done = True
            log.info("Drained: the last connection and realm are gone; stopping")
            stop(self.reactor)

    def _too_long(self) -> None:
        if not self._stopping:
            self._done = True
            log.info("The drain timeout has passed: ending what is left, {left}",
                     left=self.left())
            stop(self.reactor)  # the shutdown says farewell to what is left


@implementer(IHalfCloseableProtocol)
class AdminProtocol(LineOnlyReceiver):
    """One operator's session.  A last command without its newline, sent
    before the operator's end closes (`printf drain | socat - UNIX-CONNECT:...`),
    is answered too."""

    delimiter = b"\n"
    MAX_LENGTH = 4096
    _unfinished = False  # the bytes so far end inside a line

    def __init__(self, server: RealmServer, drain: Drain) -> None:
        self.server = server
        self.drain = drain
        self.commands: dict[str, Callable[[str], list[str]]] = {
            "help": lambda arg: list(HELP), "realms": self._realms, "who": self._who,
            "announce": self._announce, "end": self._end, "drain": self._drain,
            "status": self._status,
        }

    def dataReceived(self, data: bytes) -> None:
        if data:
            self._unfinished = not data.endswith(self.delimiter)
        super().dataReceived(data)

    def readConnectionLost(self) -> None:
        if self._unfinished:
            self._unfinished = False
            self.dataReceived(self.delimiter)
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    def lineReceived(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = line.decode("utf-8", "replace").strip()
            answer = ["error: that line is not UTF-8 text"]
        else:
            if is_http(text):  # a web page's request, made by a visitor's browser
                log.info("Admin: closed a connection that spoke HTTP")
                self.transport.write(b"error: this is the operator's console, not HTTP\n.\n")  # type: ignore[union-attr]
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
            answer = self._answer(text)
        log.info("Admin: {command} -> {first}", command=visible(text[:80]),
                 first=answer[0][:80] if answer else "")
        self.transport.write(  # type: ignore[union-attr]
            "".join(f"{line}\n" for line in [*answer, "."]).encode("utf-8"))

    def _answer(self, text: str) -> list[str]:
        word, arg = (text.split(None, 1) + ["", ""])[:2]  # a tab parts them as a space does
        command = self.commands.get(word.lower())
        if command is None:
            return [f"error: unknown command {word[:40]!r}; try help" if word
                    else "error: no command; try help"]
        if arg.strip() and word.lower() in BARE:  # `drain now` may not mean what it does
            return [f"error: {word.lower()} takes nothing after it"]
        return command(arg.strip())

    def lineLengthExceeded(self, line: bytes) -> None:
        self.transport.write(b"error: line too long\n.\n")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _realms(self, arg: str) -> list[str]:
        return [f"{name} {realm.count}" for name, realm in sorted(self.server.realms.items())]

    def _elsewhere(self, arg: str) -> list[str]:
        cluster = self.server.cluster
        owner = cluster.runs(arg.lower()) if cluster is not None else None
        if owner is not None:  # its members here know where it runs
            return [f"error: realm {arg!r} runs on process {owner}, not on this one"]
        return [f"error: no realm {arg!r} runs on this process"]

    def _who(self, arg: str) -> list[str]:
        if not arg:
            return ["error: who is in which realm? who REALM"]
        realm = self.server.realms.get(arg.lower())
        if realm is None:
            return self._elsewhere(arg)
        return [f"{m.name} {getattr(m, 'address', '?')}"
                + (" (the Lord)" if m is realm.lord else "") for m in realm.members.values()]

    def _announce(self, arg: str) -> list[str]:
        if not arg:
            return ["error: announce what? announce TEXT"]
        if has_control(arg):
            return ["error: the text holds control characters"]
        if len(arg.encode("utf-8")) > wire.MAX_LINE:  # as a player's line may
            return [f"error: the text is over {wire.MAX_LINE} bytes"]
        n = self.server.announce(wire.HERALD_SAYS.notice(text=arg))
        return [f"announced to {wire.counted(n, 'member')}"]

    def _end(self, arg: str) -> list[str]:
        if not arg:
            return ["error: end which realm? end REALM"]
        realm = self.server.realms.get(arg.lower())
        if realm is None:
            return self._elsewhere(arg)
        n = len(realm.members)
        realm.end(wire.REALM_ENDED.notice(realm=realm.name))
        return [f"ended {realm.name}: {wire.counted(n, 'member')} told"]

    def _drain(self, arg: str) -> list[str]:
        return [self.drain.start()]

    def _status(self, arg: str) -> list[str]:
        server = self.server
        state = ("shutting down" if server.shutting_down else
                 "draining" if server.draining else "ready")
        realms = wire.counted(len(server.realms), "realm")
        return [f"{state}: {realms} run here, {self.drain.left()}"]


class AdminFactory(Factory):
    noisy = False  # no "Starting factory" line: realm logs what it serves, where

    def __init__(self, server: RealmServer, drain: Drain) -> None:
        self.server = server
        self.drain = drain

    def buildProtocol(self, addr: object) -> AdminProtocol:
        proto = AdminProtocol(self.server, self.drain)
        proto.factory = self
        return proto

