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

With `--cluster`, `who` and `end` for a realm another process runs say
which, when members connected here sit in it.  Anything else answers
`error: ...`.  The console is for whoever can open the socket: keep it
private (`mode=600`, a folder only the service account reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from realm import wire
from realm.gate import has_control
from realm.looks import visible
from realm.server import RealmServer

log = Logger()

HELP = (
    "help            these commands",
    "realms          one line a realm run here: NAME n/SIZE",
    "who REALM       a realm's members: NAME ADDRESS",
    "announce TEXT   *** [Herald] TEXT to every member here",
    "end REALM       end a realm: its members are told and disconnected",
    "drain           refuse new realms; exit 0 once the last connection is gone",
)


def counted(n: int, thing: str) -> str:
    """`1 member`, `2 members`."""
    return f"{n} {wire.noun(n, thing)}"


class Drain:
    """Taking a process out of service without ending anybody's game.

    It is drained once no connection is left here and no realm runs here:
    with `--cluster`, a realm run here may still have members connected
    to other processes, and their game goes on too."""

    def __init__(self, server: RealmServer, reactor: Any, timeout: float = 0.0) -> None:
        self.server = server
        self.reactor = reactor
        self.timeout = timeout

    def start(self) -> str:
        server = self.server
        if server.draining:
            return f"draining already: {self._left()}"
        server.draining = True
        log.info("Draining: new realms are refused; {left}", left=self._left())
        server.when_drained().addCallback(self._empty)
        if self.timeout:
            self.reactor.callLater(self.timeout, self._too_long)
        return f"draining: {self._left()}; new realms are refused"

    def _left(self) -> str:
        server = self.server
        left = f"{counted(len(server.sessions), 'connection')} left"
        seats = (getattr(session, "seat", None) for session in server.sessions)
        seated = {seat.realm_name for seat in seats if seat is not None}
        elsewhere = len(server.realms.keys() - seated)
        if elsewhere:
            left += f", and {counted(elsewhere, 'realm')} run here for members elsewhere"
        return left

    def _empty(self, _: object) -> None:
        log.info("Drained: the last member and realm are gone; stopping")
        self.reactor.stop()  # the shutdown says farewell to connections not in a realm

    def _too_long(self) -> None:
        if self.reactor.running and (self.server.sessions or self.server.realms):
            log.info("The drain timeout has passed: ending {left}", left=self._left())
            self.reactor.stop()  # the shutdown says farewell to what is left


class AdminProtocol(LineOnlyReceiver):
    """One operator's session."""

    delimiter = b"\n"
    MAX_LENGTH = 4096

    def __init__(self, server: RealmServer, drain: Drain) -> None:
        self.server = server
        self.drain = drain
        self.commands: dict[str, Callable[[str], list[str]]] = {
            "help": lambda arg: list(HELP), "realms": self._realms, "who": self._who,
            "announce": self._announce, "end": self._end, "drain": self._drain,
        }

    def lineReceived(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = line.decode("utf-8", "replace").strip()
            answer = ["error: that line is not UTF-8 text"]
        else:
            answer = self._answer(text)
        log.info("Admin: {command} -> {first}", command=visible(text[:80]),
                 first=answer[0][:80] if answer else "")
        self.transport.write(  # type: ignore[union-attr]
            "".join(f"{line}\n" for line in [*answer, "."]).encode("utf-8"))

    def _answer(self, text: str) -> list[str]:
        word, _, arg = text.partition(" ")
        command = self.commands.get(word.lower())
        if command is None:
            return [f"error: unknown command {word[:40]!r}; try help" if word
                    else "error: no command; try help"]
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
        n = self.server.announce(wire.HERALD_SAYS.notice(text=arg))
        return [f"announced to {counted(n, 'member')}"]

    def _end(self, arg: str) -> list[str]:
        if not arg:
            return ["error: end which realm? end REALM"]
        realm = self.server.realms.get(arg.lower())
        if realm is None:
            return self._elsewhere(arg)
        n = len(realm.members)
        realm.end(wire.REALM_ENDED.notice(realm=realm.name))
        return [f"ended {realm.name}: {counted(n, 'member')} told"]

    def _drain(self, arg: str) -> list[str]:
        return [self.drain.start()]


class AdminFactory(Factory):
    def __init__(self, server: RealmServer, drain: Drain) -> None:
        self.server = server
        self.drain = drain

    def buildProtocol(self, addr: object) -> AdminProtocol:
        proto = AdminProtocol(self.server, self.drain)
        proto.factory = self
        return proto

