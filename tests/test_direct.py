"""realm._direct, the one module that reads Twisted's private state: it
finds the attributes it reads, and without them every line goes through
`write()`, and every ready socket through Twisted's own poll, and still
arrives, in order (real loopback sockets)."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import abstract, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from realm import _direct
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings
from realm.testing import LineClient, bounded, connect, hang_up
from tests.conftest import ErrorObserver


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


def test_this_reactor_polls_as_realm_copied() -> None:
    assert _direct._known_poll(reactor)  # if this fails, Twisted changed its epoll reactor


def test_another_reactor_is_left_as_it_is() -> None:
    class Mine(type(reactor)):  # type: ignore[misc]
        pass

    mine = object.__new__(Mine)  # its type is all that is looked at
    for other in (Clock(), mine):
        assert not _direct.plain_dispatch(other)
        assert "doIteration" not in vars(other)


@pytest.fixture(params=["plain", "stock"])
def dispatch(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test's reactor with `plain_dispatch` and without (another
    test's `makeService` may have left it on)."""

    def stock() -> None:
        vars(reactor).pop("doIteration", None)  # Twisted's own, from the class again
        vars(reactor).pop("doPoll", None)

    stock()
    if request.param == "plain":
        assert _direct.plain_dispatch(reactor)
    try:
        yield request.param
    finally:
        stock()


class Reader(abstract.FileDescriptor):
    """One end of a socket pair; `fails`: its read and its close both raise."""

    def __init__(self, fails: bool) -> None:
        super().__init__(reactor)
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.fails = fails
        self.got: Deferred[bytes] = Deferred()

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        data = self.sock.recv(100)
        if self.fails:
            raise ValueError("a read went wrong")
        self.got.callback(data)

    def connectionLost(self, reason: Any) -> None:
        if self.fails:
            raise RuntimeError("a close went wrong too")

    def done(self) -> None:
        reactor.removeReader(self)  # type: ignore[attr-defined]
        self.sock.close()
        self.peer.close()


@pytest_twisted.ensureDeferred
async def test_what_one_socket_raises_is_logged_and_the_others_are_read(
        dispatch: str, observe_errors: ErrorObserver) -> None:
    bad, good = Reader(fails=True), Reader(fails=False)
    try:
        for reader in (bad, good):
            reader.peer.send(b"ready")
            reader.startReading()
        assert await bounded(good.got, "the good socket to be read") == b"ready"
    finally:
        bad.done()
        good.done()
    logged, observe_errors.errors = observe_errors.errors, []  # expected here
    raised = [e.get("log_failure", e.get("failure")) for e in logged]
    assert {type(failure.value) for failure in raised} == {ValueError, RuntimeError}
    ours = [e for e in logged if e.get("log_format", "").startswith("Dispatching an event on")]
    # With plain_dispatch, caught where callWithLogger would have caught it.
    assert len(ours) == (1 if dispatch == "plain" else 0)


class Asking(Reader):
    """A reader that, as it reads, asks `call_soon` for three calls (the
    second raises), and counts the DelayedCalls that made."""

    def __init__(self) -> None:
        super().__init__(fails=False)
        self.order: list[str] = []
        self.timers_made = -1

    def doRead(self) -> None:
        self.sock.recv(100)
        before = len(reactor.getDelayedCalls())  # type: ignore[attr-defined]
        _direct.call_soon(reactor, lambda: self.order.append("soon"))
        _direct.call_soon(reactor, lambda: 1 / 0)
        _direct.call_soon(reactor, lambda: self.got.callback(b"done"))
        self.timers_made = len(reactor.getDelayedCalls()) - before  # type: ignore[attr-defined]
        self.order.append("read")


@pytest_twisted.ensureDeferred
async def test_call_soon_calls_once_the_events_in_hand_are_handled(
        dispatch: str, observe_errors: ErrorObserver) -> None:
    reader = Asking()
    try:
        reader.peer.send(b"ready")
        reader.startReading()
        await bounded(reader.got, "the calls after the read")
    finally:
        reader.done()
    assert reader.order == ["read", "soon"]  # the one that raised did not stop the third
    # Polling plainly, the poll makes them itself: no DelayedCall.
    assert reader.timers_made == (0 if dispatch == "plain" else 3)
    logged, observe_errors.errors = observe_errors.errors, []  # expected here
    assert [type(e["log_failure"].value) for e in logged] == [ZeroDivisionError]
    # Outside a poll's events (here, a test's own code), it is the next turn's.
    before = len(reactor.getDelayedCalls())  # type: ignore[attr-defined]
    called: Deferred[None] = Deferred()
    _direct.call_soon(reactor, lambda: called.callback(None))
    assert len(reactor.getDelayedCalls()) == before + 1  # type: ignore[attr-defined]
    await bounded(called, "a call from outside the poll")


@pytest_twisted.ensureDeferred
async def test_call_soon_can_wait_for_one_more_look_at_the_sockets(dispatch: str) -> None:
    """The relay's batching: what the next poll finds goes with it."""
    order: list[str] = []
    first, second = Reader(fails=False), Reader(fails=False)
    flushed: Deferred[None] = Deferred()
    timers_made = []

    def read_first() -> None:
        first.sock.recv(100)
        order.append("first")
        before = len(reactor.getDelayedCalls())  # type: ignore[attr-defined]
        _direct.call_soon(reactor, lambda: flushed.callback(order.append("flushed")),
                          look_again=True)
        timers_made.append(len(reactor.getDelayedCalls()) - before)  # type: ignore[attr-defined]
        second.peer.send(b"ready")  # the next poll finds it

    first.doRead = read_first  # type: ignore[method-assign]
    second.got.addCallback(lambda _: order.append("second"))
    try:
        second.startReading()
        first.peer.send(b"ready")
        first.startReading()
        await bounded(flushed, "the call after one more look")
    finally:
        first.done()
        second.done()
    assert order == ["first", "second", "flushed"]
    assert timers_made == [0 if dispatch == "plain" else 1]


@pytest.mark.parametrize("available", [True, False])
@pytest_twisted.ensureDeferred
async def test_lines_arrive_in_order_either_way(available: bool, dispatch: str,
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
