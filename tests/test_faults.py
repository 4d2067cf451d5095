"""Fault tests over real loopback sockets (127.0.0.1 only).

Clients killed mid-line, a client that never reads, one that falls
behind and catches up (no line overtakes the queue), a flood, a password
brute force, SIGTERM to a running `twistd -n realm` with a game in
progress, and TLS end to end with a certificate the test makes.  Every
wait is bounded; nothing sleeps on the wall clock.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from fakes import memory_checker
from realm_procs import make_certificate
from twisted.internet import defer, error, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, clientFromString
from twisted.logger import formatEvent
from twisted.python.failure import Failure

from realm.protocol import HOLD, RealmFactory, StreamLink
from realm.server import RealmServer, Settings
from realm.testing import WAIT, LineClient, bounded, eventually

SECRET = "Longclaw-42"
TWISTD = str(Path(sys.executable).parent / "twistd")


Client = LineClient


class Recording(RealmFactory):
    """The server's factory, keeping the protocols it makes."""

    def __init__(self, server: RealmServer) -> None:
        super().__init__(server)
        self.made: list[StreamLink] = []

    def buildProtocol(self, addr: object) -> StreamLink:
        proto = super().buildProtocol(addr)
        self.made.append(proto)
        return proto


class Running:
    """A realm server on a loopback port, with helpers to connect to it."""

    def __init__(self, settings: Settings, checker: Any = None) -> None:
        self.server = RealmServer(settings, reactor, checker=checker)  # type: ignore[arg-type]
        self.factory = Recording(self.server)
        self.clients: list[Client] = []
        self.port: Any = None

    @defer.inlineCallbacks
    def start(self) -> Generator[Any, Any, None]:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.port = yield endpoint.listen(self.factory)

    def connect(self, name: str | None = None,
                password: str | None = None) -> defer.Deferred[Client]:
        return connect(self.port.getHost().port, name, password, self.clients)

    @defer.inlineCallbacks
    def stop(self) -> Generator[Any, Any, None]:
        for client in self.clients:
            if client.transport is not None and not client.lost.called:
                client.transport.abortConnection()  # type: ignore[attr-defined]
        yield defer.DeferredList([bounded(c.lost, "a client to close")
                                  for c in self.clients if c.transport is not None])
        if self.port is not None:
            yield self.port.stopListening()
        # Let the server see its side of every connection go.
        yield bounded(self.server.shutdown(grace=WAIT), "the server's sessions to close")


@defer.inlineCallbacks
def connect(port: int, name: str | None = None, password: str | None = None,
            clients: list[Client] | None = None) -> Generator[Any, Any, Client]:
    """A client on 127.0.0.1:`port`; joined as `name` if one is given."""
    client = Client()
    if clients is not None:
        clients.append(client)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    yield bounded(endpoint.connect(protocol.Factory.forProtocol(lambda: client)),
                  "a connection")
    if name is not None:
        client.say(name)
        if password is not None:
            yield client.wait_for("must prove it")
            client.say(password)
        yield client.wait_for(f"{name.split('@')[0].capitalize()} has entered the realm")
    return client


# -- clients killed mid-line ---------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_clients_killed_mid_line() -> Generator[Any, Any, None]:
    running = Running(Settings(size=5))
    yield running.start()
    try:
        lord = yield running.connect("Lord")
        arya = yield running.connect("Arya")
        bran = yield running.connect("Bran")
        cersei = yield running.connect("Cersei")
        bran.transport.write(b"half a li")  # no end of line, then gone
        bran.transport.abortConnection()
        cersei.transport.write("Winter is c\xf6".encode()[:-1])  # inside a UTF-8 character
        cersei.transport.abortConnection()
        lurker = yield running.connect()
        lurker.transport.write(b"Jai")  # half a name, never joined
        lurker.transport.abortConnection()
        yield arya.wait_for("Bran has left the realm")
        yield arya.wait_for("Cersei has left the realm")
        lord.say("Still here, my friends?")
        yield arya.wait_for("Lord: Still here, my friends?")
        arya.say("Aye")
        yield lord.wait_for("Arya: Aye")
        assert not [line for line in arya.lines + lord.lines if "half" in line or "Winter" in line]
        yield eventually(lambda: len(running.server.sessions) == 2, "the server to drop them")
        assert not arya.errors() and not lord.errors()
        assert running.server.realms["westeros"].count == "2/5"
    finally:
        yield running.stop()


# -- a client that never reads -------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_client_that_never_reads_is_bounded_then_dropped(
        events: list[dict[str, Any]]) -> Generator[Any, Any, None]:
    settings = Settings(max_rate=0)
    running = Running(settings)
    yield running.start()
    try:
        lord = yield running.connect("Lord")
        speaker = yield running.connect("Arya")
        stuck = yield running.connect("Stuck")
        stuck.transport.pauseProducing()  # it reads nothing from now on
        held = running.factory.made[-1]
        assert held.session.name == "Stuck"
        transport = held.transport
        send = held.send
        most = [0]

        def measured(data: bytes) -> None:
            send(data)
            buffered = len(transport.dataBuffer) + transport._tempDataLen  # type: ignore
            most[0] = max(most[0], buffered)

        held.session.send = measured
        line = "x" * 1000
        sent = 0  # lines
        while not lord.count("Stuck has left the realm"):
            assert sent < 64_000, "the stuck client was never dropped"
            speaker.say(*[f"{sent + i} {line}" for i in range(500)])
            sent += 500
            # Let the Lord, who reads, keep up: it proves the game goes on.
            yield lord.wait_for(f"Arya: {sent - 1} ")
        # The transport's buffer, our cap, and a last flush of held lines.
        bound = 64 * 1024 + settings.max_queue + (HOLD + 1) * 1024
        assert settings.max_queue < most[0] <= bound  # the cap was reached, and held
        assert held.session not in running.server.sessions
        dropped = [formatEvent(e) for e in events if "stopped reading" in formatEvent(e)]
        assert len(dropped) == 1 and "Stuck" in dropped[0]
        # The others are undisturbed.
        speaker.say("Still with us, my Lord?")
        yield lord.wait_for("Arya: Still with us, my Lord?")
        assert not lord.errors() and not speaker.errors()
    finally:
        yield running.stop()


# -- a reader that falls behind, then catches up -------------------------------

@pytest_twisted.inlineCallbacks
def test_lines_keep_their_order_while_a_reader_falls_behind_and_catches_up(
        ) -> Generator[Any, Any, None]:
    """Held lines go straight to an idle socket, and queue behind a backlog.

    While anything is queued, lines must queue too, even when the kernel
    has room again: written at once they would overtake the queue.
    """
    running = Running(Settings(max_rate=0, max_queue=1 << 24))
    yield running.start()
    try:
        reader = yield running.connect("Reader")
        held = running.factory.made[-1]
        transport: Any = held.transport

        def queued() -> int:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

        reader.transport.pauseProducing()  # it reads nothing for now
        # Small kernel buffers on both sides, so the backlog comes soon.
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client_socket = reader.transport.getHandle()
        client_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent = 0

        def line(flush: bool = True) -> None:
            nonlocal sent
            held.send(b"*** line %d %s\r\n" % (sent, b"x" * 200))
            sent += 1
            if flush:
                held.flush()  # as the outbox does once the reactor comes round

        line()
        assert queued() == 0  # an idle socket took it at once
        while queued() == 0:  # until the kernel's buffers are full
            assert sent < 100_000, "the kernel never pushed back"
            line()
        # The reader takes a chunk: the kernel has room again, but lines
        # are still queued, so the next ones must wait behind them.
        reader.dataReceived(client_socket.recv(1 << 16))
        for _ in range(20):
            line()
        assert queued() > 0
        reader.transport.resumeProducing()
        yield reader.wait_for(f"*** line {sent - 1} ")
        numbers = [int(text.split()[2]) for text in reader.lines if text.startswith("*** line ")]
        assert numbers == list(range(sent))
        # The backlog is gone: lines go straight out again.
        assert queued() == 0
        line()
        assert queued() == 0
        # Lines held and left to the reactor go out on its next turn: till
        # then the link holds them, written neither to the socket nor to
        # Twisted's queue (where they could overtake or be overtaken) ...
        line(flush=False)
        line(flush=False)
        assert [text.split()[2] for text in held._held] == [b"%d" % (sent - 2),
                                                            b"%d" % (sent - 1)]
        assert queued() == 0
        # ... and the outbox sends them, with no flush() from us.
        yield reader.wait_for(f"*** line {sent - 1} ")
        assert not held._held
        numbers = [int(text.split()[2]) for text in reader.lines if text.startswith("*** line ")]
        assert numbers == list(range(sent))
        assert not reader.errors()
    finally:
        yield running.stop()


# -- a flood -------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_flood_is_refused_and_the_game_goes_on() -> Generator[Any, Any, None]:
    running = Running(Settings(size=3, max_rate=5))
    yield running.start()
    try:
        lord = yield running.connect("Lord")
        flooder = yield running.connect("Arya")
        bran = yield running.connect("Bran")
        yield bran.wait_for("[New Event]")
        total = 300
        flooder.say(*[f"spam {i}" for i in range(total)])

        def relayed() -> int:
            return bran.count("Arya: spam")

        yield flooder.until(lambda: len(flooder.errors()) + relayed() == total,
                            "every flood line relayed or refused")
        assert relayed() <= 12  # a burst of 10, and what the clock gave back meanwhile
        assert all("too fast" in line for line in flooder.errors())
        assert lord.count("Arya: spam") == relayed()
        # The game goes on for the others: a decision, an answer, the next event.
        lord.say("1")
        yield bran.wait_for("Lord: 1")
        bran.say("As you command")
        yield lord.wait_for("Bran: As you command")
        assert not lord.errors() and not bran.errors()
    finally:
        yield running.stop()


# -- a password brute force ----------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_password_brute_force_is_closed_after_three(
        events: list[dict[str, Any]]) -> Generator[Any, Any, None]:
    running = Running(Settings(), checker=memory_checker(SECRET))
    yield running.start()
    try:
        # One guess at a time, waiting for each answer.
        patient = yield running.connect()
        for n, guess in enumerate(["winter", "summer", "Longclaw"], 1):
            patient.say("Lord")
            yield patient.wait_for("must prove it", n)
            patient.say(guess)
            yield patient.until(lambda n=n: len(patient.errors()) == n, f"{n} refusals")
        reason = yield bounded(patient.lost, "the server to close")
        assert isinstance(reason, error.ConnectionDone)
        assert "last time" in patient.lines[-1]
        # The address must now wait: the next password is held for 1 s
        # before it is checked; the real Lord's gets in then.
        lord = yield running.connect()
        lord.say("Lord", SECRET)
        yield lord.wait_for("Lord has entered the realm")
        held = [n for n, line in enumerate(lord.lines) if "yours is checked in 1 s" in line]
        entered = [n for n, line in enumerate(lord.lines) if "Lord has entered" in line]
        assert held and held[0] < entered[0], lord.lines  # held, then checked
        assert not lord.errors()
        assert not any(SECRET in formatEvent(e) or "Longclaw" in formatEvent(e)
                       for e in events)
    finally:
        yield running.stop()


# -- twistd in a subprocess: SIGTERM, TLS ---------------------------------------

class Twistd(protocol.ProcessProtocol):
    """`twistd -n realm ...` as a child; finds the port it listens on."""

    def __init__(self) -> None:
        self.output = b""
        self.port: defer.Deferred[int] = defer.Deferred()
        self.ended: defer.Deferred[BaseException] = defer.Deferred()  # fires with why

    def outReceived(self, data: bytes) -> None:
        self.output += data
        found = re.search(rb"starting on (\d+)", self.output)
        if found and not self.port.called:
            self.port.callback(int(found.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not self.port.called:
            self.port.errback(AssertionError(self.output.decode(errors="replace")))
        self.ended.callback(reason.value)

    @classmethod
    @defer.inlineCallbacks
    def start(cls, cwd: Path, *args: str) -> Generator[Any, Any, tuple[Twistd, int]]:
        child = cls()
        argv = [TWISTD, "-n", "--pidfile=", "realm", *args]
        reactor.spawnProcess(child, TWISTD, argv, env=dict(os.environ), path=str(cwd))
        try:
            port = yield bounded(child.port, "twistd to listen")
        except BaseException:
            child.kill()
            raise
        return child, port

    def kill(self) -> None:
        if not self.ended.called:
            try:
                self.transport.signalProcess("KILL")  # type: ignore[union-attr]
            except error.ProcessExitedAlready:
                pass


@pytest_twisted.inlineCallbacks
def test_sigterm_with_a_game_in_progress(tmp_path: Path) -> Generator[Any, Any, None]:
    child, port = yield Twistd.start(tmp_path, "--listen", "tcp:0:interface=127.0.0.1",
                                     "--size", "3")
    members: list[Client] = []
    try:
        lord = yield connect(port, "Lord", clients=members)
        arya = yield connect(port, "Arya", clients=members)
        yield connect(port, "Bran", clients=members)
        for member in members:
            yield member.wait_for("[New Event]")
        lord.say("1")
        yield arya.wait_for("Lord: 1")
        child.transport.signalProcess("TERM")
        for member in members:
            reason = yield bounded(member.lost, "the server to close the connection")
            assert isinstance(reason, error.ConnectionDone), reason
            assert "*** The server is shutting down. Farewell!" in member.lines
        ended = yield bounded(child.ended, "twistd to exit")
        assert isinstance(ended, error.ProcessDone), child.output.decode()
        output = child.output.decode()
        assert "Traceback" not in output
    finally:
        child.kill()
        yield bounded(child.ended, "twistd to end")
        for member in members:
            if not member.lost.called:
                member.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.inlineCallbacks
def test_tls_end_to_end(tmp_path: Path) -> Generator[Any, Any, None]:
    server_pem, roots = make_certificate(tmp_path / "good")
    _, strangers = make_certificate(tmp_path / "other")
    child, port = yield Twistd.start(
        tmp_path, "--listen", "ssl:0:privateKey=good/server.pem:interface=127.0.0.1",
        "--auth", f"memory:lord:{SECRET}", "--size", "2")
    try:
        @defer.inlineCallbacks
        def connect(trust: Path) -> Generator[Any, Any, Client]:
            client = Client()
            endpoint = clientFromString(reactor, f"tls:127.0.0.1:{port}:trustRoots={trust}")
            yield bounded(endpoint.connect(protocol.Factory.forProtocol(lambda: client)),
                          "a TLS connection")
            return client

        lord = yield connect(roots)
        yield lord.wait_for("What is your name?")
        lord.say("Lord")
        yield lord.wait_for("password")
        lord.say(SECRET)
        yield lord.wait_for("Lord has entered the realm (1/2)")
        arya = yield connect(roots)
        arya.say("Arya")
        yield arya.wait_for("Welcome to the Game of Thrones")
        lord.say("Who goes there?")
        yield arya.wait_for("Lord: Who goes there?")
        assert lord.transport.getPeerCertificate() is not None  # type: ignore
        # A client that trusts another certificate refuses this server.
        wary = Client()
        endpoint = clientFromString(reactor, f"tls:127.0.0.1:{port}:trustRoots={strangers}")
        yield bounded(endpoint.connect(protocol.Factory.forProtocol(lambda: wary)),
                      "a TCP connection")
        reason = yield bounded(wary.lost, "the handshake to fail")
        assert not isinstance(reason, error.ConnectionDone) and not wary.lines
        lord.say("--leave")
        yield bounded(lord.lost, "the Lord to leave")
        yield bounded(arya.lost, "the realm to end")
        child.transport.signalProcess("TERM")
        ended = yield bounded(child.ended, "twistd to exit")
        assert isinstance(ended, error.ProcessDone)
        assert SECRET.encode() not in child.output
    finally:
        child.kill()
        yield bounded(child.ended, "twistd to end")


@pytest.mark.skipif(not (Path(sys.executable).parent / "realm-client").exists(),
                    reason="realm-client is not installed")
@pytest_twisted.inlineCallbacks
def test_realm_client_over_tls(tmp_path: Path) -> Generator[Any, Any, None]:
    server_pem, roots = make_certificate(tmp_path)
    child, port = yield Twistd.start(
        tmp_path, "--listen", f"ssl:0:privateKey={server_pem.name}:interface=127.0.0.1",
        "--auth", f"memory:lord:{SECRET}")
    try:
        out: list[bytes] = []
        done: defer.Deferred[Any] = defer.Deferred()

        class Collect(protocol.ProcessProtocol):
            def connectionMade(self) -> None:
                self.transport.write(b"Hear me!\n")  # type: ignore[union-attr]
                self.transport.closeStdin()  # type: ignore[union-attr]

            def outReceived(self, data: bytes) -> None:
                out.append(data)

            errReceived = outReceived

            def processEnded(self, reason: Failure) -> None:
                done.callback(reason.value)

        client = str(Path(sys.executable).parent / "realm-client")
        env = dict(os.environ, REALM_PASSWORD=SECRET)
        process = reactor.spawnProcess(
            Collect(), client,
            [client, "--lord", "--connect", f"tls:127.0.0.1:{port}:trustRoots={roots}"],
            env=env, path=str(tmp_path))
        try:
            reason = yield bounded(done, "realm-client to finish")
        finally:
            if not done.called:
                process.signalProcess("KILL")
        text = b"".join(out).decode(errors="replace")
        assert isinstance(reason, error.ProcessDone), text
        assert "Lord has entered the realm" in text
        assert SECRET not in text
    finally:
        child.kill()
        yield bounded(child.ended, "twistd to end")
