"""Limits a stranger meets, in memory on a `task.Clock`: a TLS handshake
that never ends, a close that cannot finish, realms one address starts,
refusals counted in the log, and who the next event waits for."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import endpoints, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent
from zope.interface import directlyProvides

from realm import wire
from realm.link import CLOSE_GRACE, HANDSHAKE_TIMEOUT
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings
from realm.testing import LineClient, MemoryNet, hang_up


class Stuck(StringTransport):
    """A transport whose close never finishes (a peer that never reads its
    goodbye, a TLS handshake never done); it says whether it was aborted."""

    def __init__(self, tls: bool = False) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "192.0.2.9", 4000))
        self.aborted = False
        if tls:
            directlyProvides(self, ISSLTransport)

    def loseConnection(self) -> None:
        self.disconnecting = True  # and nothing more: the close waits

    def abortConnection(self) -> None:
        self.aborted = True
        self.protocol.connectionLost(None)  # type: ignore[attr-defined]


def connect(server: RealmServer, transport: Stuck) -> Any:
    link = RealmFactory(server).buildProtocol(None)
    transport.protocol = link  # type: ignore[attr-defined]
    link.makeConnection(transport)
    return link


def test_a_tls_handshake_that_never_ends_is_cut() -> None:
    clock = task.Clock()
    server = RealmServer(Settings(), clock)
    transport = Stuck(tls=True)
    connect(server, transport)
    assert server.sessions
    clock.advance(HANDSHAKE_TIMEOUT - 0.1)
    assert not transport.aborted
    clock.advance(0.1)
    assert transport.aborted and not server.sessions


def test_a_finished_handshake_is_not_cut() -> None:
    clock = task.Clock()
    server = RealmServer(Settings(), clock)
    transport = Stuck(tls=True)
    link = connect(server, transport)
    link.handshakeCompleted()
    clock.advance(HANDSHAKE_TIMEOUT * 2)
    assert not transport.aborted and server.sessions


def test_a_close_that_cannot_finish_is_aborted() -> None:
    clock = task.Clock()
    server = RealmServer(Settings(login_timeout=5), clock)
    transport = Stuck()
    connect(server, transport)
    clock.advance(5)  # the login timeout: a goodbye, then a close that waits
    assert b"You did not give a name in time" in transport.value()
    assert transport.disconnecting and not transport.aborted
    clock.advance(CLOSE_GRACE)
    assert transport.aborted and not server.sessions


def test_one_address_cannot_start_every_realm() -> None:
    net = MemoryNet(RealmServer(Settings(max_realms_per_address=3), task.Clock(),
                                rng=random.Random(1)))
    for n in range(3):
        net.join(f"arya@realm{n}", host="192.0.2.1")
    squatter = net.join("arya@realm3", host="192.0.2.1")
    (refusal,) = [line for line in squatter.take() if wire.is_error(line)]
    assert wire.refusal(refusal) == "address_realms"
    assert "has started 3 realms already;" in refusal
    alone = MemoryNet(RealmServer(Settings(max_realms_per_address=1), task.Clock()))
    alone.join("arya@north", host="192.0.2.3")
    assert any("has started 1 realm already;" in line
               for line in alone.join("arya@south", host="192.0.2.3").take())
    # Joining a realm in play is fine; another address may start realms.
    bran = net.join("bran@realm0", "192.0.2.1")
    assert "*** Bran has entered the realm (2/5)" in bran.take()
    assert not [line for line in net.join("sam@realm9", host="192.0.2.2").take()
                if wire.is_error(line)]
    # A realm that empties gives its starter the room back.
    net.conns[0].say("--leave")
    bran.hang_up()
    net.conns[3].say("arya@realm3")
    assert "*** Arya has entered the realm (1/5)" in net.conns[3].take()


def test_by_default_one_address_starts_as_many_realms_as_it_holds_connections() -> None:
    """The contract's limits only: a load or acceptance tool on one host
    plays in as many realms as `--max-per-address` lets it connect."""
    net = MemoryNet(RealmServer(Settings(), task.Clock(), rng=random.Random(1)))
    for n in range(Settings.max_per_address):
        joined = net.join(f"arya@realm{n}", host="192.0.2.1")
        assert "*** Arya has entered the realm (1/5)" in joined.take()
    (refusal,) = [line for line in net.connect("192.0.2.1").take() if wire.is_error(line)]
    assert wire.refusal(refusal) == "too_many_connections"


def test_refusals_are_logged_once_a_minute_with_a_count(events: list[dict[str, Any]]) -> None:
    """For the whole server, not a connection: a stranger who reconnects,
    or opens many, fills the log no faster; and what was counted is logged
    when its minute is over, or as the server stops."""
    clock = task.Clock()
    net = MemoryNet(RealmServer(Settings(max_rate=0, max_per_address=3), clock))
    arya = net.join("arya")
    del events[:]

    def logged() -> list[str]:
        return [formatEvent(e) for e in events if formatEvent(e).startswith("Refused")]

    arya.send(b"bell\x07\n" * 50)
    assert logged() == ["Refused a line from Arya@westeros (192.0.2.1): control"]
    for _ in range(10):  # new connections: two with a bad name, then eight too many
        conn = net.connect()
        if not conn.lost:
            conn.send(b"1bad name!\n")
    assert logged()[1:] == [
        "Refused a line from 192.0.2.1: bad name",
        "Refused a connection from 192.0.2.1: 3 already"]
    clock.advance(59)
    assert len(logged()) == 3
    clock.advance(1)  # a minute since each first line: the rest, counted
    assert sorted(logged()[3:]) == [
        "Refused 49 lines since the last such line, the last from Arya@westeros "
        "(192.0.2.1): control",
        "Refused 7 connections since the last such line, the last from 192.0.2.1: 3 already",
        "Refused a line from 192.0.2.1: bad name"]
    arya.send(b"bell\x07\n" * 3)  # within the next minute: counted again
    assert len(logged()) == 6
    net.server.shutdown()  # what waits is logged as the server stops
    assert logged()[6:] == ["Refused 3 lines since the last such line, the last from "
                            "Arya@westeros (192.0.2.1): control"]
    clock.advance(120)
    assert len(logged()) == 7  # nothing twice


def test_the_realm_is_told_who_the_next_event_waits_for() -> None:
    clock = task.Clock()
    net = MemoryNet(RealmServer(Settings(event_wait=30), clock, rng=random.Random(1)))
    lord, (arya, bran, cersei, davos) = net.game()
    lord.say("1")
    arya.say("aye")
    bran.say("aye")
    clock.advance(4.9)
    assert not [line for line in lord.take() if "waits for" in line]
    clock.advance(0.1)
    net.settle()
    (awaited,) = [line for line in lord.take() if "waits for" in line]
    assert awaited == "*** The next event waits for Cersei, Davos to answer (at most 25 s more)."
    clock.advance(25)
    net.settle()
    assert any(wire.is_event(line) for line in lord.take())


@pytest_twisted.ensureDeferred
async def test_local_clients_are_counted_by_their_user(tmp_path: Path) -> None:
    """On a `unix:` endpoint each local user is an address of its own
    (SO_PEERCRED), not every local client one `UNIXAddress(None)`."""
    server = RealmServer(Settings(max_per_address=2), reactor)
    path = str(tmp_path / "realm.sock")
    port = await endpoints.UNIXServerEndpoint(reactor, path).listen(RealmFactory(server))
    clients = []
    try:
        for _ in range(3):
            client = LineClient("arya@north" if not clients else None)
            await endpoints.connectProtocol(endpoints.UNIXClientEndpoint(reactor, path), client)
            clients.append(client)
        await clients[2].wait_for(lambda line: wire.refusal(line) == "too_many_connections")
        await clients[0].wait_for("Arya has entered the realm")
        assert {s.address for s in server.sessions} == {f"local uid {os.getuid()}"}
    finally:
        await hang_up(*clients)
        await port.stopListening()
