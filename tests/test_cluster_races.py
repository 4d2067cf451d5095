"""Races of the cluster, made to happen on purpose: several cluster nodes in
this process (each a `RealmServer` and its `Cluster`, as `twistd realm
--cluster` makes them), on a real `redis-server`, with players on real
loopback sockets.  Holding one of a node's Redis connections unread
(`pauseProducing` on its socket) or having Redis drop it (`CLIENT KILL`)
puts the race's two events in the order that used to go wrong.

- `test_a_member_gone_while_redis_places_it_is_not_seated`: no ghost in
  a realm run here.
- `test_a_member_timed_out_while_redis_places_it_is_not_kept`: nor when
  the connection is only closing as the seat comes.
- `test_a_member_gone_while_the_owner_seats_it_leaves_again`: no ghost in
  a realm run elsewhere.
- `test_one_connection_to_redis_lost`: a node that loses one of its two
  connections lets its cross-process members go, and once back tells the
  other side, which lets go of its side too; then all works again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.python.failure import Failure

from realm import wire
from realm.cluster import Cluster
from realm.names import JoinError
from realm.protocol import RealmFactory
from realm.redis import parse_url
from realm.server import RealmServer, Settings
from realm.session import Session
from realm.testing import (
    WAIT,
    LineClient,
    MemoryNet,
    bounded,
    connect,
    eventually,
    hang_up,
    join,
)

if TYPE_CHECKING:
    from services import RedisServer, Services

pytest_plugins = ["services"]


class Node:
    """One cluster node in this process, listening on a loopback port."""

    def __init__(self, url: str) -> None:
        self.server = RealmServer(Settings(), reactor)  # type: ignore[arg-type]
        self.cluster = Cluster(self.server, reactor, parse_url(url))
        self.server.cluster = self.cluster
        self.factory = RealmFactory(self.server)
        self.listening: Any = None

    async def start(self) -> None:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.listening = await endpoint.listen(self.factory)
        self.cluster.start()
        await eventually(lambda: self.cluster.redis.up, "Redis to be reachable")

    @property
    def port(self) -> int:
        return int(self.listening.getHost().port)

    def connection(self, which: str) -> Any:
        """The transport of this node's Redis connection `which`."""
        redis = self.cluster.redis
        proto = redis._commands if which == "commands" else redis._subscribed
        assert proto is not None
        return proto.transport

    async def stop(self) -> None:
        if self.listening is not None:
            await self.listening.stopListening()
        await bounded(self.server.shutdown(grace=WAIT), "the node to shut down")


async def nodes(redis: RedisServer, n: int) -> list[Node]:
    started: list[Node] = []
    try:
        for _ in range(n):
            started.append(Node(redis.url))
            await started[-1].start()
    except BaseException:
        with contextlib.suppress(Exception):  # what failed first is what the test says
            await stop(*started)  # else they would retry Redis from later tests
        raise
    return started


async def stop(*started: Node) -> None:
    """Stop every node, whatever the others do; then say what went wrong."""
    failed: list[BaseException] = []
    for node in started:
        try:
            await node.stop()
        except Exception as error:
            failed.append(error)
    if failed:
        raise failed[0]


async def unnamed(node: Node) -> tuple[Session, LineClient]:
    """A new connection to `node`, greeted, and its session, named Arya."""
    before = set(node.server.sessions)
    client = await connect(node.port)
    await client.wait_for("What is your name?")
    (session,) = set(node.server.sessions) - before
    assert isinstance(session, Session)
    session.name, session.prefix = "Arya", b"Arya: "
    return session, client


def outcome(d: Any) -> list[Any]:
    result: list[Any] = []
    d.addBoth(result.append)
    return result


@pytest_twisted.ensureDeferred
async def test_a_member_gone_while_redis_places_it_is_not_seated(services: Services) -> None:
    (a,) = await nodes(services.redis(), 1)
    try:
        session, client = await unnamed(a)
        commands = a.connection("commands")
        commands.pauseProducing()  # Redis's answer to PLACE waits unread
        result = outcome(a.server.join(session, "ghost"))
        await eventually(lambda: "ghost" in a.cluster._placing, "PLACE to be sent")
        await hang_up(client)
        await eventually(lambda: session not in a.server.sessions, "the session to go")
        commands.resumeProducing()
        await eventually(lambda: bool(result), "the join's outcome")
        assert isinstance(result[0], Failure) and result[0].check(JoinError), result
        assert "ghost" not in a.server.realms
    finally:
        await stop(a)


@pytest_twisted.ensureDeferred
async def test_a_member_timed_out_while_redis_places_it_is_not_kept(services: Services) -> None:
    """The login timeout fires while Redis places the realm: the connection
    is closing, not yet gone, when the seat comes, and gives it back."""
    (a,) = await nodes(services.redis(), 1)
    try:
        net = MemoryNet(a.server)  # a closed link goes when the test says (`settle`)
        conn = net.connect()
        (session,) = a.server.sessions
        commands = a.connection("commands")
        commands.pauseProducing()  # Redis's answer to PLACE waits unread
        session._join("Arya", "ghost")
        await eventually(lambda: "ghost" in a.cluster._placing, "PLACE to be sent")
        session.expired()
        commands.resumeProducing()
        await eventually(lambda: "ghost" not in a.cluster._placing, "PLACE's answer")
        net.settle()
        assert conn.lost and "ghost" not in a.server.realms
    finally:
        await stop(a)


@pytest_twisted.ensureDeferred
async def test_a_member_gone_while_the_owner_seats_it_leaves_again(services: Services) -> None:
    a, b = await nodes(services.redis(), 2)
    try:
        bran = await join(a.port, "Bran", "north")
        session, client = await unnamed(b)
        channel = b.connection("channel")
        channel.pauseProducing()  # the owner's "joined" waits unread at b
        result = outcome(b.server.join(session, "north"))
        await bran.wait_for("Arya has entered the realm (2/5)")
        await hang_up(client)
        await eventually(lambda: session not in b.server.sessions, "the session to go")
        channel.resumeProducing()
        await bran.wait_for(wire.DEPARTED.notice(name="Arya", gone=wire.LEFT_WHY, n=1, size=5)
                            .decode().rstrip())
        assert list(a.server.realms["north"].members) == ["bran"]
        await eventually(lambda: bool(result), "the join's outcome")
        assert isinstance(result[0], Failure) and result[0].check(JoinError), result
        assert not b.cluster.seated
        await hang_up(bran)
    finally:
        await stop(a, b)


@pytest.mark.parametrize("which", ["channel", "commands"])
@pytest_twisted.ensureDeferred
async def test_one_connection_to_redis_lost(services: Services, which: str) -> None:
    redis = services.redis()
    a, b = await nodes(redis, 2)
    try:
        # north: run by a, Bran on b.  south: run by b, Davos on a.
        arya, bran = await join(a.port, "Arya", "north"), await join(b.port, "Bran", "north")
        cersei, davos = await join(b.port, "Cersei", "south"), await join(a.port, "Davos", "south")
        for member in (arya, bran, cersei, davos):
            await member.wait_for("(2/5)")
        host = b.connection(which).getHost()
        assert redis.command("CLIENT", "KILL", "ADDR", f"{host.host}:{host.port}") == 1  # killed
        # b lets go of what it shared with a at once...
        await bran.wait_for(wire.CUT_OFF.notice(realm="north").decode().rstrip())
        await cersei.wait_for("Davos has left the realm (1/5)")
        # ...and a, which still reaches Redis, lets go of its side too.
        await davos.wait_for(wire.CUT_OFF.notice(realm="south").decode().rstrip())
        await arya.wait_for("Bran has left the realm (1/5)")
        for member in (bran, davos):
            await member.closed()
        assert not a.cluster.peers() and not b.cluster.peers()
        # Both connections are back: across processes again.
        await eventually(lambda: b.cluster.redis.up, "b to reach Redis again")
        again = await join(b.port, "Bran", "north")
        await arya.wait_for("Bran has entered the realm (2/5)")
        again.say("Back")
        await arya.wait_for("Bran: Back")
        await hang_up(arya, again, cersei)
    finally:
        await stop(a, b)
