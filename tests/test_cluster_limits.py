"""Limits that hold for the whole service, and HAProxy in front of it.

Players come from several loopback addresses (127.0.0.2 looks to realm
like another machine than 127.0.0.3), so one address's connections can
be counted apart from everyone else's.

7. `test_limits_count_every_process`: `--max-per-address` counts an
   address's connections on every process; `--max-realms` the realms of
   the whole service.
8. `test_wrong_passwords_count_on_every_process`: an address that has
   guessed wrong on one process waits on the others too;
   `test_the_shared_count_keeps_the_same_rule` (Redis's script waits as
   `realm.guard.Backoff` does), and with Redis gone each process's own
   count still holds (`test_without_redis_a_process_counts_alone`).
9. `test_a_game_through_haproxy`: three processes behind the shipped
   `docs/haproxy.cfg` (round robin, PROXY protocol): a whole game through
   its one port, its members on different processes, and the
   per-address limit counting the players' own addresses;
   `test_the_web_port_through_haproxy`: the same for browsers, on
   `--web haproxy:...`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest_twisted

from realm import guesses, leases, wire
from realm.guard import Backoff
from realm.testing import (
    LineClient,
    connect,
    eventually,
    hang_up,
    join,
    join_soon,
    refused,
)
from realm.testing_web import WebSocketClient, attach

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
        assert why == wire.TOO_MANY_REALMS.notice(realms="2 realms").decode().rstrip(), why
    # A realm in play can still be joined, from a process that runs neither.
    cersei = await join(p2.port, "Cersei", "one", source="127.0.0.6")
    await one.wait_for("Cersei has entered the realm (2/5)")
    # Once a realm ends, a new one may start.
    two.say("--leave")
    await two.closed()
    three, _ = await join_soon(p2.port, "Davos", "three", source="127.0.0.7")
    await hang_up(one, cersei, three)


async def lord_with(port: int, password: str, source: str, realm: str = "winterfell") -> str:
    """Claim the Lord of `realm` with `password` on `port`: "entered", the
    line that refused it, or the one saying it is held before its check."""
    client = await connect(port, f"Lord@{realm}", source=source)
    await client.wait_for(wire.ASK_PASSWORD.matches)
    client.say(password)

    def answer(line: str) -> bool:
        return (wire.is_error(line) or wire.entered(line) is not None
                or wire.PASSWORD_WAIT.match(line) is not None)

    await client.wait_for(answer)
    await hang_up(client)
    return next((line for line in client.lines if answer(line) and not wire.entered(line)),
                "entered")


def kind(answer: str) -> str | None:
    return wire.refusal(answer) if answer != "entered" else answer


@pytest_twisted.ensureDeferred
async def test_wrong_passwords_count_on_every_process(services: Services) -> None:
    redis = services.redis()
    p0, p1 = services.realms(2, redis, "--auth", "memory:lord:Dragonglass-7")
    # Two wrong on one process, the third on the other: the address must now
    # wait (the other process's own count is 1, free).
    answers = [await lord_with(p.port, "guess", "127.0.0.2") for p in (p0, p0, p1)]
    assert [kind(a) for a in answers] == ["wrong_password"] * 3, answers
    counted = "Wrong Lord password from 127.0.0.2 (1 of 3 on this connection; 1 s to wait)"
    await eventually(lambda: p1.logged(counted), "p1 to log the wait it counted")
    # The wait made longer in Redis (1 s could pass before the next try on a
    # busy machine): wherever the address tries, even with the right
    # password, it is held that long before it is checked.
    seconds, _ = redis.command("TIME")
    redis.command("HSET", guesses.key("127.0.0.2"), "until", (int(seconds) + 60) * 1000)
    held = "Holding a Lord's password from 127.0.0.2"
    for proc in (p0, p1):
        answer = await lord_with(proc.port, "Dragonglass-7", "127.0.0.2")
        told = wire.PASSWORD_WAIT.match(answer)
        assert told is not None and 55 <= int(told["seconds"]) <= 60, answer
        await eventually(lambda proc=proc: proc.logged(held),
                         f"{proc.name} to log the password it holds")
    # Another address is not held up by it.
    assert kind(await lord_with(p0.port, "guess", "127.0.0.3")) == "wrong_password"
    # The wait over (its end moved to now, in Redis's clock), the right
    # password is checked, and clears the address everywhere: on the other
    # process, three more wrong guesses are each checked again.
    redis.command("HSET", guesses.key("127.0.0.2"), "until", 0)
    assert await lord_with(p1.port, "Dragonglass-7", "127.0.0.2") == "entered"
    answers = [await lord_with(p0.port, "guess", "127.0.0.2") for _ in range(3)]
    assert [kind(a) for a in answers] == ["wrong_password"] * 3, answers


def test_the_shared_count_keeps_the_same_rule(services: Services) -> None:
    redis = services.redis()
    address, account = guesses.key("127.0.0.2"), guesses.key(guesses.ACCOUNT)
    rules = (guesses.ADDRESS_RULE, guesses.ACCOUNT_RULE)
    args = [x for rule in rules for x in guesses.in_ms(rule)]
    here = [Backoff(*rule) for rule in rules]
    for _ in range(40):  # past both caps
        shared = redis.command("EVAL", guesses.WRONG, 2, address, account, *args)
        assert shared == 1000 * max(b.failed("127.0.0.2", 0.0) for b in here)
        ttl = redis.command("PTTL", address)
        assert shared + 299_000 < ttl <= shared + 300_000  # the wait, then the cap
    assert shared == 300_000  # the address's cap
    assert redis.command("EVAL", guesses.WAIT, 2, address, account) > 299_000
    assert redis.command("EVAL", guesses.WAIT, 2, guesses.key("127.0.0.3"), account) > 59_000


@pytest_twisted.ensureDeferred
async def test_without_redis_a_process_counts_alone(services: Services) -> None:
    redis = services.redis()
    procs = services.realms(2, redis, "--auth", "memory:lord:Dragonglass-7")
    p0, p1 = procs
    # A realm on each process, whose Lord can be claimed there without Redis.
    held = [await join(p0.port, "Arya", "north"), await join(p1.port, "Bran", "south")]
    redis.stop()
    await eventually(lambda: all(p.logged("Lost Redis") for p in procs),
                     "every process to see Redis gone")
    answers = [await lord_with(p0.port, "guess", "127.0.0.2", "north") for _ in range(3)]
    assert [kind(a) for a in answers] == ["wrong_password"] * 3, answers
    counted = "Wrong Lord password from 127.0.0.2 (1 of 3 on this connection; {} s to wait)"
    await eventually(lambda: p0.logged(counted.format(1)), "p0 to count the third")
    # p1 has not seen them: its own count is all it has.
    assert kind(await lord_with(p1.port, "guess", "127.0.0.2", "south")) == "wrong_password"
    await eventually(lambda: p1.logged(counted.format(0)), "p1 to count its first")
    await hang_up(*held)


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
        await member.wait_for(wire.LORD_LEFT.matches)
        await member.closed()

    # --max-per-address 2 counts the player's address, not HAProxy's: the
    # third connection from 127.0.0.9 is refused though each of the three
    # went to a different process (round robin), and 127.0.0.8 is not.
    await eventually(lambda: not any(connections(redis, p) for p in procs),
                     "every process to count its connections gone")
    two = [await greeted(proxy.port, "127.0.0.9") for _ in range(2)]
    why = await turned_away(proxy.port, "127.0.0.9")
    assert wire.refusal(why) == "too_many_connections", why
    # The refusal reached the player; its log line may reach us a little later.
    refused = "Refused a connection from 127.0.0.9"
    await eventually(lambda: any(p.logged(refused) for p in procs), "the refusal's log line")
    holding = [p for p in procs if connections(redis, p).get("127.0.0.9")]
    refusing = [p for p in procs if p.logged(refused)]
    assert len(holding) == 2 and len(refusing) == 1 and refusing[0] not in holding, (
        [p.name for p in holding], [p.name for p in refusing])
    another = await greeted(proxy.port, "127.0.0.8")
    await hang_up(another, *two)


@pytest_twisted.ensureDeferred
async def test_the_web_port_through_haproxy(services: Services) -> None:
    redis = services.redis()
    procs = services.realms(3, redis, "--web", "haproxy:tcp:0:interface=127.0.0.1")
    proxy = services.haproxy(procs, "the web client")
    names = ["Arya", "Bran", "Lord"]
    browsers = []
    for i, name in enumerate(names):  # one address a browser, none HAProxy's
        browser = WebSocketClient(f"127.0.0.1:{proxy.port}", origin=None)
        await attach(proxy.port, browser, source=f"127.0.0.{20 + i}")
        await browser.line("What is your name")
        browser.say(f"{name}@braavos")
        browsers.append(browser)
    for browser in browsers:  # (the three joins race: any order)
        try:
            await browser.line(r"has entered the realm \(3/5\)")
        except AssertionError as e:
            raise AssertionError(f"{e}; every browser heard: "
                                 f"{[b.messages for b in browsers]}") from None
    # Round robin put one on each process, and each saw its browser's address.
    seen = {proc.name: connections(redis, proc) for proc in procs}
    assert sorted(seen.values(), key=str) == [
        {f"127.0.0.{20 + i}": 1} for i in range(3)], seen
    browsers[-1].say("--leave")
    for browser in browsers:
        await browser.line("The Lord has left the realm")
