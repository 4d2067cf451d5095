"""Limits that hold for the whole service, and HAProxy in front of it.

Players come from several loopback addresses (127.0.0.2 looks to realm
like another machine than 127.0.0.3), so one address's connections can
be counted apart from everyone else's.

7. `test_limits_count_every_process`: `--max-per-address` counts an
   address's connections on every process; `--max-realms` the realms of
   the whole service.
8. `test_a_game_through_haproxy`: three processes behind the shipped
   `docs/haproxy.cfg` (round robin, PROXY protocol): a whole game through
   its one port, its members on different processes, and the
   per-address limit counting the players' own addresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest_twisted

from realm import leases, wire
from realm.testing import LineClient, connect, eventually, hang_up, join, join_soon, refused

if TYPE_CHECKING:
    from services import RealmProc, RedisServer, Services

pytest_plugins = ["services"]

GREETED = "What is your name?"


async def greeted(port: int, source: str) -> LineClient:
    client = await connect(port, source=source)
    await client.wait_for(lambda line: GREETED in line or wire.is_error(line))
    assert not client.errors(), client.errors()
    return client


async def turned_away(port: int, source: str) -> str:
    """A connection refused as one too many: the refusal (it was closed)."""
    client = await connect(port, source=source)
    await client.closed()
    assert client.errors(), client.lines
    assert GREETED not in " ".join(client.lines), client.lines
    return client.errors()[-1]


def connections(redis: RedisServer, proc: RealmProc) -> dict[str, int]:
    """The connections per address that `proc` has told Redis of."""
    pairs = redis.command("HGETALL", leases.addrs(proc.node)) or []
    return {pairs[i].decode(): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}


@pytest_twisted.ensureDeferred
async def test_limits_count_every_process(services: Services) -> None:
    redis = services.redis()
    p0, p1, p2 = services.realms(3, redis, "--max-per-address", "3", "--max-realms", "2")
    # Three connections from one address, one on each process...
    held = [await greeted(p.port, "127.0.0.2") for p in (p0, p1, p2)]
    # ...and a fourth is one too many, wherever it lands.
    for proc in (p0, p1, p2):
        why = await turned_away(proc.port, "127.0.0.2")
        assert why == wire.TOO_MANY_CONNECTIONS.notice(limit=3).decode().rstrip(), why
    # Another address is not counted with it.
    other = await greeted(p1.port, "127.0.0.3")
    # One closes: a new connection is welcome, on another process.
    await hang_up(held.pop(1))
    await eventually(lambda: connections(redis, p1).get("127.0.0.2", 0) == 0,
                     "p1 to count the connection gone")
    held.append(await greeted(p2.port, "127.0.0.2"))
    why = await turned_away(p0.port, "127.0.0.2")
    assert wire.refusal(why) == "too_many_connections", why
    await hang_up(other, *held)

    # Two realms in the whole service, started on two processes.
    one = await join(p0.port, "Arya", "one", source="127.0.0.4")
    two = await join(p1.port, "Bran", "two", source="127.0.0.5")
    for proc in (p2, p0):
        _, why = await refused(proc.port, "Cersei@three", source="127.0.0.6")
        assert why == wire.TOO_MANY_REALMS.notice(limit=2).decode().rstrip(), why
    # A realm in play can still be joined, from a process that runs neither.
    cersei = await join(p2.port, "Cersei", "one", source="127.0.0.6")
    await one.wait_for("Cersei has entered the realm (2/5)")
    # Once a realm ends, a new one may start.
    two.say("--leave")
    await two.closed()
    three, _ = await join_soon(p2.port, "Davos", "three", source="127.0.0.7")
    await hang_up(one, cersei, three)


@pytest_twisted.ensureDeferred
async def test_a_game_through_haproxy(services: Services) -> None:
    redis = services.redis()
    procs = services.realms(3, redis, "--max-per-address", "2",
                            listen="haproxy:tcp:0:interface=127.0.0.1")
    proxy = services.haproxy(procs)
    names = ["Arya", "Bran", "Cersei", "Davos", "Lord"]
    # One address a player, none of them HAProxy's own (127.0.0.1).
    members = [await join(proxy.port, name, "kingslanding", source=f"127.0.0.{10 + i}")
               for i, name in enumerate(names)]
    for member in members:
        await member.wait_for(wire.is_event)
    # Round robin put them on every process, each seeing the players' addresses.
    seen = {proc.name: connections(redis, proc) for proc in procs}
    assert all(seen.values()), seen
    assert sorted(a for counts in seen.values() for a in counts) == [
        f"127.0.0.{10 + i}" for i in range(5)], seen
    lord = members[-1]
    lord.say("To the Wall")
    for member in members[:-1]:
        await member.wait_for("Lord: To the Wall")
        member.say("Aye")
    for member in members:
        await member.wait_for(wire.is_event, count=2)
    members[0].say("--who")
    await members[0].wait_for("(5/5): Arya, Bran, Cersei, Davos, Lord")
    lord.say("--leave")
    for member in members:
        await member.wait_for(wire.lord_left)
        await member.closed()

    # --max-per-address 2 counts the player's address, not HAProxy's: the
    # third connection from 127.0.0.9 is refused though each of the three
    # went to a different process (round robin), and 127.0.0.8 is not.
    await eventually(lambda: not any(connections(redis, p) for p in procs),
                     "every process to count its connections gone")
    two = [await greeted(proxy.port, "127.0.0.9") for _ in range(2)]
    why = await turned_away(proxy.port, "127.0.0.9")
    assert wire.refusal(why) == "too_many_connections", why
    holding = [p for p in procs if connections(redis, p).get("127.0.0.9")]
    refusing = [p for p in procs if p.logged("Refused a connection from 127.0.0.9")]
    assert len(holding) == 2 and len(refusing) == 1 and refusing[0] not in holding, (
        [p.name for p in holding], [p.name for p in refusing])
    another = await greeted(proxy.port, "127.0.0.8")
    await hang_up(another, *two)
