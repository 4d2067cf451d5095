"""Real loopback TCP: many clients and many realms at once, whole games.

Each wait is bounded: a `Deferred` with a timeout on the reactor.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import pytest_twisted
from twisted.internet import defer, endpoints, reactor
from twisted.internet.interfaces import IListeningPort

from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings
from realm.testing import LineClient, bounded

OTHERS = ("Arya", "Bran", "Cersei", "Davos")


class Client(LineClient):
    """A raw client: sends its name at once, keeps every line it gets."""

    def wait_gone(self) -> defer.Deferred[Any]:
        return bounded(self.lost, f"{self.first} to be disconnected")

    def hang_up(self) -> defer.Deferred[Any]:
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
            if client.transport is not None and not client.lost.called:
                client.transport.loseConnection()
        yield defer.DeferredList([c.lost for c in self.clients])
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
    h = Harness(max_per_address=0, max_realms_per_address=0)
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
        packet += b"x" * 3000 + b"\n\xfe\xfd\nbell\x07\nafter\r\n"
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
