"""A test kit for realm, as `treq.testing` is for treq: fakes and clients
that tests (realm's own, and anyone's driving realm) share.

- `FakeMember`: a member as a realm sees it, remembering what it was sent.
- `MemoryNet`: clients of a `RealmServer` over in-memory transports, the
  real `StreamLink` on each; connections close as a reactor would, after
  the call that asked for it.
- `LineClient`: a raw client over real loopback sockets that keeps every
  line it receives and waits for lines with a bound.
- `connect(port, first)`: a `LineClient` on a loopback port (from a
  chosen loopback address if need be).
- `join`, `refused`, `join_soon`, `hang_up`: a player joined (its entry
  seen), one refused (the refusal), one joined once the service can
  place it, players gone.
- `bounded(d, what)`: `d`, failing with what it waited for if it has not
  fired within `WAIT` seconds.
- `eventually(condition, what)`: until `condition()` holds (the server's
  side of things, which no client hears change), polled through the
  reactor every 10 ms, with a bound.

`realm.testing_web` has the web port's clients (a WebSocket client that
can send what a browser never would, raw HTTP bytes).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from realm import wire
from realm.protocol import RealmFactory, StreamLink
from realm.records import ReignRecord
from realm.server import RealmServer

WAIT = 10.0  # the longest any one expectation may take, in seconds
#: What every line from the server looks like: a notice, or stamped chat.
SHAPE = re.compile(rf"\*\*\* |{wire.NAME_RULE}: ")


def lines_of(data: bytes) -> list[str]:
    """CRLF lines, without their line ends."""
    assert data == b"" or data.endswith(b"\r\n"), data
    return data.decode("utf-8").split("\r\n")[:-1]


class FakeMember:
    """A member as a realm (or a command) sees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = name.encode() + b": "
        self.received = b""
        self.closed = False
        self.left = False

    def send(self, data: bytes) -> None:
        assert not self.closed, f"{self.name} was sent {data!r} after close"
        self.received += data

    def close(self) -> None:
        self.closed = True

    def leave(self) -> None:
        self.left = True

    def lines(self) -> list[str]:
        return lines_of(self.received)

    def take(self) -> list[str]:
        """Every line since the last take."""
        lines = self.lines()
        self.received = b""
        return lines


class FakeChronicle:
    """A chronicle in memory: what the realm recorded, and, with `hold`,
    commits that wait until the test says (`commit()` or `fail()`)."""

    keeps = True

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.reigns: list[ReignRecord] = []
        self.waiting: list[tuple[ReignRecord, defer.Deferred[int]]] = []

    def record(self, reign: ReignRecord) -> defer.Deferred[int]:
        d: defer.Deferred[int] = defer.Deferred()
        self.waiting.append((reign, d))
        if not self.hold:
            self.commit()
        return d

    def commit(self) -> None:
        waiting, self.waiting = self.waiting, []
        for reign, d in waiting:
            self.reigns.append(reign)
            d.callback(len(self.reigns))

    def fail(self, why: str = "the disk is full") -> None:
        waiting, self.waiting = self.waiting, []
        for _, d in waiting:
            d.errback(RuntimeError(why))

    def best(self, limit: int = 5) -> defer.Deferred[list[ReignRecord]]:
        played = [(i, r) for i, r in enumerate(self.reigns) if r.outcome != "abandoned"]
        ranked = sorted(played, key=lambda pair: (-pair[1].score, -pair[0]))  # as realm.chronicle
        return defer.succeed([r for _, r in ranked[:limit]])

    def latest(self, realm: str | None = None,
               limit: int = 5) -> defer.Deferred[list[ReignRecord]]:
        found = [r for r in reversed(self.reigns) if realm is None or r.realm == realm]
        return defer.succeed(found[:limit])


class MemoryConn:
    """One client connection: bytes in, the server's lines out."""

    def __init__(self, net: MemoryNet, transport: StringTransport) -> None:
        self.net = net
        self.transport = transport
        self.link: StreamLink = net.factory.buildProtocol(None)
        self.lost = False
        transport.protocol = self.link  # type: ignore[attr-defined]
        self.link.makeConnection(transport)

    def send(self, data: bytes) -> None:
        assert not self.lost
        self.link.dataReceived(data)
        self.net.settle()

    def say(self, *lines: str) -> None:
        self.send(b"".join(line.encode() + b"\r\n" for line in lines))

    def take(self) -> list[str]:
        """Every line received since the last take, without its CRLF."""
        self.net.flush()
        data = self.transport.value()
        self.transport.clear()
        lines = lines_of(data)
        for line in lines:
            assert SHAPE.match(line), line
        return lines

    @property
    def closed(self) -> bool:
        return self.lost or bool(self.transport.disconnecting)

    def hang_up(self) -> None:
        self.transport.loseConnection()
        self.lost = True
        self.link.connectionLost(Failure(ConnectionDone()))
        self.net.settle()


class MemoryNet:
    """Clients of one server over `StringTransport`s."""

    def __init__(self, server: RealmServer) -> None:
        self.server = server
        self.factory = RealmFactory(server)
        self.conns: list[MemoryConn] = []

    def connect(self, host: str = "192.0.2.1") -> MemoryConn:
        from twisted.internet.address import IPv4Address

        conn = MemoryConn(self, StringTransport(peerAddress=IPv4Address("TCP", host, 40000)))
        self.conns.append(conn)
        self.settle()
        return conn

    def flush(self) -> None:
        self.factory.outbox.flush()

    def settle(self) -> None:
        """Close the connections the server has closed, as a reactor would."""
        self.flush()
        for conn in self.conns:
            if conn.transport.disconnecting and not conn.lost:
                conn.lost = True
                conn.link.connectionLost(Failure(ConnectionDone()))

    def join(self, line: str, host: str = "192.0.2.1") -> MemoryConn:
        conn = self.connect(host)
        conn.say(line)
        return conn

    def game(self, realm: str = "",
             others: tuple[str, ...] = ("Arya", "Bran", "Cersei", "Davos"),
             ) -> tuple[MemoryConn, list[MemoryConn]]:
        """A full realm (of the default size): the others, then the Lord;
        every inbox emptied."""
        at = f"@{realm}" if realm else ""
        members = [self.join(name + at) for name in others]
        lord = self.join("Lord" + at)
        for conn in [lord, *members]:
            conn.take()
        return lord, members


def bounded(d: defer.Deferred[Any], what: str | Callable[[], str],
            timeout: float = WAIT, clock: IReactorTime | None = None) -> defer.Deferred[Any]:
    """`d`, failing if it has not fired within `timeout` seconds."""
    if clock is None:
        from twisted.internet import reactor as clock  # type: ignore[no-redef]

    def timed_out(result: Any) -> Any:
        if isinstance(result, Failure) and result.check(defer.TimeoutError):
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout:g}s waiting for {said}")
        return result

    assert clock is not None
    return d.addTimeout(timeout, clock).addBoth(timed_out)


#: What `LineClient`s wait for, checked whenever any of them hears anything
#: (a wait may be on another client's lines, or on the server's state).
_WAITERS: list[tuple[Callable[[], bool], defer.Deferred[None]]] = []


class LineClient(protocol.Protocol):
    """A raw client over a real socket: every line it hears, and waits on them.

    `first`, if given, is sent on connecting (before the greeting).
    """

    def __init__(self, first: str | None = None) -> None:
        self.first = first
        self.lines: list[str] = []
        self.buffer = b""
        self.made: defer.Deferred[LineClient] = defer.Deferred()
        self.lost: defer.Deferred[BaseException] = defer.Deferred()  # fires with why

    def connectionMade(self) -> None:
        if self.first is not None:
            self.say(self.first)
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\r\n")
        self.lines.extend(line.decode("utf-8") for line in lines)
        _wake()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.lost.callback(reason.value)  # type: ignore[arg-type]
        _wake()

    def until(self, test: Callable[[], bool], what: str) -> defer.Deferred[None]:
        """Until `test()` holds, checked as any client hears anything."""
        d: defer.Deferred[None] = defer.Deferred()
        if test():
            d.callback(None)
        else:
            _WAITERS.append((test, d))
        return bounded(d, lambda: f"{what}; this client's last lines: "
                              f"{[line[:100] for line in self.lines[-5:]]}")

    def wait_for(self, want: str | Callable[[str], bool], count: int = 1) -> defer.Deferred[None]:
        """Until `count` lines received so far contain `want` (or satisfy it)."""
        test = want if callable(want) else (lambda line: want in line)
        scanned, found = 0, 0

        def enough() -> bool:
            nonlocal scanned, found
            found += sum(map(test, self.lines[scanned:]))
            scanned = len(self.lines)
            return found >= count

        return self.until(enough, repr(want))

    def closed(self) -> defer.Deferred[None]:
        """Until the server has closed this connection."""
        return self.until(lambda: self.lost.called, "the server to close the connection")

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith(wire.ERROR)]

    def say(self, *lines: str) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(line.encode() + b"\n" for line in lines))


async def connect(port: int, first: str | None = None, host: str = "127.0.0.1",
                  source: str | None = None) -> LineClient:
    """A `LineClient` connected to `host:port`, from the loopback address
    `source` if given (127.0.0.2 looks like another machine's)."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    client = LineClient(first)
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=WAIT,
                                  bindAddress=(source, 0) if source else None)
    await bounded(endpoint.connect(protocol.Factory.forProtocol(lambda: client)),
                  f"a connection to {host}:{port}")
    return client


# -- players, as the tests of several processes need them ------------------
async def join(port: int, name: str, realm: str, source: str | None = None) -> LineClient:
    """A player joined as `name@realm` on `port` (its entry seen, no refusal)."""
    client = await connect(port, f"{name}@{realm}", source=source)
    stored = name.capitalize()
    await client.wait_for(lambda line: wire.entered(line) == stored or wire.is_error(line))
    assert not client.errors(), f"{name}@{realm} was refused: {client.errors()}"
    return client


async def refused(port: int, line: str, source: str | None = None) -> tuple[LineClient, str]:
    """A player whose first line `line` is refused: (it, the refusal)."""
    client = await connect(port, line, source=source)
    await client.wait_for(lambda text: wire.is_error(text) or wire.entered(text) is not None)
    assert client.errors(), f"{line} was not refused: {client.lines[-3:]}"
    return client, client.errors()[-1]


async def join_soon(port: int, name: str, realm: str, timeout: float = WAIT,
                    source: str | None = None) -> tuple[LineClient, float]:
    """A player joined as `name@realm` on `port` once the service can place it:
    a refusal that it cannot be reached now is tried again on the same
    connection until `timeout`.  (The player, the seconds it took.)"""
    from twisted.internet import reactor, task

    started = reactor.seconds()  # type: ignore[attr-defined]
    client = await connect(port, source=source)
    stored = name.capitalize()

    def answer(line: str) -> bool:
        return wire.entered(line) == stored or wire.is_error(line)

    for tries in itertools.count(1):
        client.say(f"{name}@{realm}")
        await client.wait_for(answer, count=tries)
        last = [line for line in client.lines if answer(line)][-1]
        took = reactor.seconds() - started  # type: ignore[attr-defined]
        if not wire.is_error(last):
            return client, took
        assert wire.refusal(last) == "unreachable", f"{name}@{realm} was refused: {last}"
        if took > timeout:
            raise AssertionError(f"{name}@{realm} still refused after {timeout:g}s: {last}")
        await task.deferLater(reactor, 0.1)  # type: ignore[arg-type]
    raise AssertionError("unreachable")


async def hang_up(*clients: LineClient) -> None:
    """Close `clients` and wait until each is closed."""
    for client in clients:
        if not client.lost.called:
            client.transport.loseConnection()  # type: ignore[union-attr]
    for client in clients:
        await client.closed()


def _wake() -> None:
    for waiter in list(_WAITERS):
        test, d = waiter
        if d.called:  # timed out
            _WAITERS.remove(waiter)
        elif test():
            _WAITERS.remove(waiter)
            d.callback(None)


def eventually(condition: Callable[[], Any], what: str | Callable[[], str],
               timeout: float = WAIT, every: float = 0.01) -> defer.Deferred[None]:
    """Until `condition()` holds, checked every `every` seconds through the
    reactor (for the server's state, which no client hears change)."""
    d: defer.Deferred[None] = defer.Deferred()

    def check() -> None:
        if condition() and not d.called:
            d.callback(None)

    def stop(result: Any) -> Any:
        if poll.running:  # (not if `condition` raised)
            poll.stop()
        return result

    poll = task.LoopingCall(check)
    poll.start(every)  # (on the global reactor)
    return bounded(d, what, timeout).addBoth(stop)
