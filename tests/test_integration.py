"""Real loopback TCP: many clients and many realms at once, whole games.

Each wait is bounded: a `Deferred` with a timeout on the reactor.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from typing import Any

import pytest_twisted
from twisted.internet import defer, endpoints, reactor
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings

TIMEOUT = 10.0
OTHERS = ("Arya", "Bran", "Cersei", "Davos")


class Client(LineOnlyReceiver):
    """A raw client: sends its name at once, keeps every line it gets."""

    delimiter = b"\r\n"
    MAX_LENGTH = 100_000

    def __init__(self, first: str) -> None:
        self.first = first
        self.lines: list[str] = []
        self._waiters: list[tuple[Callable[[str], bool], int, defer.Deferred[None]]] = []
        self.gone: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.say(self.first)  # before the greeting arrives

    def say(self, *lines: str) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(line.encode() + b"\n" for line in lines))

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8"))
        self._check()

    def _check(self) -> None:
        for waiter in list(self._waiters):
            test, n, d = waiter
            if sum(map(test, self.lines)) >= n:
                self._waiters.remove(waiter)
                d.callback(None)

    def connectionLost(self, reason: Failure | None = None) -> None:
        waiters, self._waiters = self._waiters, []
        for _, _, d in waiters:
            d.errback(AssertionError(f"{self.first} lost while waiting; got {self.lines}"))
        self.gone.callback(None)

    def wait_for(self, want: str | Callable[[str], bool], n: int = 1) -> defer.Deferred[None]:
        """Fire once `n` lines received so far contain `want` (or satisfy it)."""
        test = want if callable(want) else (lambda line: want in line)
        d: defer.Deferred[None] = defer.Deferred()
        if self.gone.called:
            d.errback(AssertionError(f"{self.first} is gone; got {self.lines}"))
            return d
        self._waiters.append((test, n, d))
        self._check()
        return d.addTimeout(TIMEOUT, reactor)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait_gone(self) -> defer.Deferred[None]:
        return self.gone.addTimeout(TIMEOUT, reactor)

    def hang_up(self) -> defer.Deferred[None]:
        assert self.transport is not None
        self.transport.loseConnection()
        return self.wait_gone()


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.server = RealmServer(Settings(**settings), reactor, rng=random.Random(5))
        self.port: IListeningPort = reactor.listenTCP(  # type: ignore[attr-defined]
            0, RealmFactory(self.server), interface="127.0.0.1")
        self.clients: list[Client] = []

    @defer.inlineCallbacks
    def connect(self, first: str) -> Generator[Any, Any, Client]:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1",
                                                self.port.getHost().port)
        client = yield endpoints.connectProtocol(endpoint, Client(first))
        self.clients.append(client)
        return client

    @defer.inlineCallbacks
    def close(self) -> Generator[Any, Any, None]:
        for client in self.clients:
            if client.transport is not None and not client.gone.called:
                client.transport.loseConnection()
        yield defer.DeferredList([c.gone for c in self.clients])
        yield self.port.stopListening()


def gather(ds: Any) -> defer.Deferred[list[Any]]:
    return defer.gatherResults(list(ds), consumeErrors=True)


def entered(name: str, count: str) -> str:
    return f"*** {name} has entered the realm ({count})"


@defer.inlineCallbacks
def fill(h: Harness, realm: str) -> Generator[Any, Any, tuple[Client, list[Client]]]:
    """Four others and a Lord in `realm`; returns once all have the event."""
    others = []
    for name in OTHERS:
        client = yield h.connect(f"{name}@{realm}")
        yield client.wait_for(name + " has entered")
        others.append(client)
    lord = yield h.connect(f"lord@{realm}")
    yield gather([c.wait_for("*** [New Event] ") for c in [lord, *others]])
    return lord, others


@pytest_twisted.inlineCallbacks
def test_a_whole_game_over_tcp() -> Generator[Any, Any, None]:
    h = Harness()
    try:
        lord, others = yield fill(h, "westeros")
        for client in (lord, *others):
            assert client.lines[0].startswith("*** ")  # the greeting first
            assert any("Welcome to the Game of Thrones" in line for line in client.lines)
            assert client.count("[New Event]") == 1
        # the Lord decides, everyone answers, the next event follows
        lord.say("1")
        for client in others:
            yield client.wait_for("Lord: 1")
            client.say("aye, my Lord")
        yield gather([c.wait_for("*** [New Event] ", 2)
                                   for c in (lord, *others)])
        assert all(c.count("[New Event]") == 2 for c in (lord, *others))
        assert lord.count("Arya: aye, my Lord") == 1
        # the Lord dismisses Davos, who is told and disconnected
        davos = others.pop()
        lord.say("--dismiss DAVOS")
        yield lord.wait_for("*** You have dismissed Davos, 4/5 left on your team.")
        yield davos.wait_gone()
        assert any("dismissed" in line for line in davos.lines)
        for client in others:
            yield client.wait_for(lambda line: "Davos" in line and "(4/5)" in line)
        # the Lord leaves: everyone is told and every connection closed
        lord.say("--leave")
        for client in (lord, *others):
            yield client.wait_gone()
            assert client.count("The Lord has left the realm") == 1
        assert h.server.realms == {}
        # the realm is free for a new game
        lord, others = yield fill(h, "westeros")
        assert lord.count("[New Event]") == 1
    finally:
        yield h.close()


@pytest_twisted.inlineCallbacks
def test_many_clients_in_many_realms_at_once() -> Generator[Any, Any, None]:
    h = Harness(max_per_address=0)
    realms = [f"realm{i}" for i in range(20)]
    try:
        # everyone connects at once; the Lords come last so seats are kept
        others: dict[str, list[Client]] = {}
        connecting = []
        for realm in realms:
            for name in OTHERS:
                connecting.append(h.connect(f"{name}@{realm}"))
        clients = yield gather(connecting)
        for i, realm in enumerate(realms):
            others[realm] = clients[4 * i:4 * i + 4]
        yield gather(c.wait_for("has entered the realm (4/5)") for c in clients)
        lords = yield gather([h.connect(f"Lord@{realm}") for realm in realms])
        everyone = [*clients, *lords]
        yield gather([c.wait_for("[New Event]") for c in everyone])
        assert len(h.server.realms) == len(realms)
        # a round in every realm at once
        for lord, realm in zip(lords, realms, strict=True):
            lord.say(f"we ride for {realm}")
        for realm in realms:
            for client in others[realm]:
                yield client.wait_for("Lord: we ride for")
                client.say(f"{client.first} says aye")
        yield gather([c.wait_for("[New Event]", 2) for c in everyone])
        for lord, realm in zip(lords, realms, strict=True):
            heard = [line for line in lord.lines if "says aye" in line]
            assert sorted(heard) == sorted(f"{n}: {n}@{realm} says aye" for n in OTHERS)
            assert [line for line in lord.lines if "we ride for" in line] == []
        # every Lord leaves; every realm ends and is discarded
        for lord in lords:
            lord.say("--leave")
        yield gather([c.wait_gone() for c in everyone])
        assert h.server.realms == {}
        assert h.server.sessions == set()
    finally:
        yield h.close()


@pytest_twisted.inlineCallbacks
def test_chat_order_and_bad_lines_over_tcp() -> Generator[Any, Any, None]:
    h = Harness(max_rate=0)
    try:
        arya = yield h.connect("arya@order")
        bran = yield h.connect("bran@order")
        yield arya.wait_for(entered("Bran", "2/5"))
        yield bran.wait_for(entered("Bran", "2/5"))
        assert arya.transport is not None
        packet = b"".join(b"line %d\n" % i for i in range(200))
        packet += b"x" * 3000 + b"\n\xff\xfe\nbell\x07\nafter\r\n"
        for start in range(0, len(packet), 997):  # odd-sized packets
            arya.transport.write(packet[start:start + 997])
        yield bran.wait_for("Arya: after")
        chat = [line for line in bran.lines if line.startswith("Arya: ")]
        assert chat == [f"Arya: line {i}" for i in range(200)] + ["Arya: after"]
        assert sum(line.startswith("*** Error: ") for line in arya.lines) == 3
        yield arya.hang_up()
        yield bran.wait_for(lambda line: "Arya" in line and "(1/5)" in line)
    finally:
        yield h.close()
