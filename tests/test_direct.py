"""realm._direct, the one module that reads Twisted's private state: it
finds the attributes it reads, and without them every line goes through
`write()` and still arrives, in order (real loopback sockets)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import abstract, reactor

from realm import _direct
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings
from realm.testing import LineClient, bounded, connect, hang_up


def test_this_twisted_shows_its_queue() -> None:
    assert _direct.AVAILABLE  # if this fails, Twisted renamed what _direct reads


def test_a_twisted_without_the_attributes_is_seen() -> None:
    class Renamed(abstract.FileDescriptor):
        def __init__(self, reactor: Any = None) -> None:
            super().__init__(reactor)
            del self._tempDataLen  # as if Twisted had renamed it

    class Broken:
        def __init__(self, reactor: Any = None) -> None:
            raise TypeError("another constructor")

    assert _direct._has_queue_state(abstract.FileDescriptor)
    assert not _direct._has_queue_state(Renamed)
    assert not _direct._has_queue_state(Broken)


@pytest.mark.parametrize("available", [True, False])
@pytest_twisted.ensureDeferred
async def test_lines_arrive_in_order_either_way(available: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_direct, "AVAILABLE", available)
    server = RealmServer(Settings(max_rate=0), reactor, rng=random.Random(1))  # type: ignore[arg-type]
    port = reactor.listenTCP(0, RealmFactory(server), interface="127.0.0.1")  # type: ignore[attr-defined]
    clients: list[LineClient] = []
    try:
        number = port.getHost().port
        arya = await connect(number, "arya")
        bran = await connect(number, "bran")
        clients += [arya, bran]
        await bran.wait_for("Bran has entered the realm")
        links = list(server.sessions)
        assert all((link.link._direct is not None) == available  # type: ignore[attr-defined]
                   for link in links)
        arya.say(*[f"line {i}" for i in range(300)])
        await bran.wait_for("Arya: line 299")
        heard = [line for line in bran.lines if line.startswith("Arya: line ")]
        assert heard == [f"Arya: line {i}" for i in range(300)]
    finally:
        await hang_up(*clients)
        await port.stopListening()
        await bounded(server.shutdown(grace=2), "the server to close")
