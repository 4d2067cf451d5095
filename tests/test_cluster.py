"""Realms spread over three `twistd realm --cluster` processes, one Redis:
the contract's game, as if there were one server.

Three real processes share a real `redis-server` for the whole module
(these tests stop nothing; each plays in realms of its own).  Players
are raw sockets on 127.0.0.1, each connected straight to the process
it names; every wait is bounded.

1. `test_a_game_over_three_processes`: joins and their counts, the
   banner and the first event, chat both ways, the next event, `--who`,
   `--dismiss` across processes, the Lord leaving, the realm free again.
2. `test_names_lord_and_seats_across_processes`: one name, one Lord,
   the capacity and the Lord's seat hold whichever process asks.
3. `test_many_realms_lose_and_reorder_nothing`: 20 realms over the three
   processes, numbered lines: each arrives once, in order, at every
   other member.
4. `test_members_of_one_process_hear_each_other_there`: their chat goes
   straight from one to the other, also while the realm's process stands
   still, and still arrives once and in order.
9. `test_a_realm_on_one_process_costs_redis_nothing_per_line`: Redis's
   own counters do not move with 100 chat lines of such a realm.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import pytest_twisted

from realm import wire
from realm.testing import LineClient, hang_up, join, refused

if TYPE_CHECKING:
    from services import RealmProc, RedisServer, Services

    Cluster = tuple[RedisServer, list[RealmProc]]

pytest_plugins = ["services"]


@pytest.fixture(scope="module")
def cluster(module_services: Services) -> Cluster:
    redis = module_services.redis()
    # Limits off: test 3 opens 60 connections from 127.0.0.1 and sends in bursts.
    procs = module_services.realms(3, redis, "--max-rate", "0", "--max-per-address", "0",
                                   "--max-realms-per-address", "0")
    return redis, procs


def entries(client: LineClient) -> list[str]:
    return [line for line in client.lines if wire.ENTERED.match(line)]


def chats(client: LineClient) -> list[str]:
    return [line for line in client.lines if wire.chat(line)]


@pytest_twisted.ensureDeferred
async def test_a_game_over_three_processes(cluster: Cluster) -> None:
    _, (p0, p1, p2) = cluster
    names = ["Arya", "Bran", "Cersei", "Davos", "Lord"]
    where = [p0, p1, p2, p1, p2]  # Arya starts the realm: p0 runs it
    members: list[LineClient] = []
    for name, proc in zip(names, where, strict=True):
        members.append(await join(proc.port, name.lower(), "winterfell"))
    arya, bran, cersei, davos, lord = members

    # Every member hears its own entry and every later one, counted, in order,
    # then the banner, then the first event.
    for i, member in enumerate(members):
        await member.wait_for(wire.is_event)
        assert entries(member) == [wire.ENTERED.notice(name=n, n=k, size=5).decode().rstrip()
                                   for k, n in enumerate(names[i:], i + 1)]
        after = member.lines[member.lines.index(entries(member)[-1]) + 1:]
        assert wire.WELCOME.match(after[0]), after
        assert wire.is_event(after[1]), after

    # The Lord decides (from p2); each other member answers, from wherever it is.
    lord.say("We ride north at dawn")
    for member in (arya, bran, cersei, davos):
        await member.wait_for("Lord: We ride north at dawn")
    arya.say("Aye, from the realm's own process")
    bran.say("Aye, from p1")
    cersei.say("Lord: a line that only looks like the Lord's")
    davos.say("Aye, from p1 too")
    for member in members:
        await member.wait_for(wire.is_event, count=2)
    said = {"Arya": "Aye, from the realm's own process", "Bran": "Aye, from p1",
            "Cersei": "Lord: a line that only looks like the Lord's", "Davos": "Aye, from p1 too",
            "Lord": "We ride north at dawn"}
    for name, member in zip(names, members, strict=True):
        heard = sorted(chats(member))
        assert heard == sorted(f"{n}: {text}" for n, text in said.items() if n != name), heard
    # The second event comes after the last answer, for everyone.
    for member in members:
        events = [i for i, line in enumerate(member.lines) if wire.is_event(line)]
        answers = [i for i, line in enumerate(member.lines) if wire.chat(line)]
        assert events[1] > max(answers)

    # --who lists every member, wherever connected.
    davos.say("--who")
    await davos.wait_for(lambda line: wire.WHO.match(line) is not None)
    who = wire.WHO.match(next(line for line in davos.lines if wire.WHO.match(line)))
    assert who is not None and who["n"] == "5" and who["size"] == "5"
    assert sorted(who["names"].split(", ")) == names

    # The Lord (p2) dismisses Davos (p1) in a realm p0 runs.
    lord.say("--dismiss davos")
    await lord.wait_for(wire.DISMISSED.notice(name="Davos", n=4, size=5).decode().rstrip())
    await davos.wait_for(wire.DISMISSED_YOU.notice().decode().rstrip())
    await davos.closed()
    gone = wire.DEPARTED.notice(name="Davos", gone=wire.DISMISSED_WHY, n=4, size=5)
    for member in (arya, bran, cersei):
        await member.wait_for(gone.decode().rstrip())
    assert lord.count("Davos has been dismissed") == 0

    # The Lord leaves: the game is over for everyone, every connection closed.
    lord.say("--leave")
    for member in (arya, bran, cersei, lord):
        await member.wait_for(lambda line: wire.LORD_LEFT.matches(line))
        await member.closed()

    # The realm is free again, whichever process is asked.
    again = await join(p1.port, "Cersei", "winterfell")
    assert entries(again) == ["*** Cersei has entered the realm (1/5)"]
    await hang_up(again)


@pytest_twisted.ensureDeferred
async def test_names_lord_and_seats_across_processes(cluster: Cluster) -> None:
    _, (p0, p1, p2) = cluster
    realm = "riverrun"
    seated = [await join(p0.port, "Arya", realm), await join(p1.port, "Bran", realm),
              await join(p2.port, "Cersei", realm), await join(p1.port, "Davos", realm)]
    try:
        # 4/5 without a Lord: the last seat is the Lord's, from any process.
        for proc in (p0, p1, p2):
            _, why = await refused(proc.port, f"Eddard@{realm}")
            assert wire.refusal(why) == "lords_seat", why
        # A taken name, in any case, from a process other than its own.
        for proc, line in ((p1, "ARYA"), (p2, "arya"), (p0, "bRAN")):
            _, why = await refused(proc.port, f"{line}@{realm}")
            assert wire.refusal(why) == "name_taken", why
        # The Lord joins from p2; a second Lord is refused elsewhere.
        seated.append(await join(p2.port, "Lord", realm))
        for proc in (p0, p1):
            _, why = await refused(proc.port, f"lord@{realm}")
            assert wire.refusal(why) == "lord_taken", why
        # Full: refused from every process.
        for proc in (p0, p1, p2):
            client, why = await refused(proc.port, f"Eddard@{realm}")
            assert wire.refusal(why) == "realm_full", why
            # The same connection may try again elsewhere.
            client.say("Eddard@elsewhere")
            await client.wait_for("Eddard has entered the realm (1/5)")
            await hang_up(client)
        for member in seated:
            assert member.count("has entered the realm") == 5 - seated.index(member)
    finally:
        await hang_up(*seated)


@pytest_twisted.ensureDeferred
async def test_many_realms_lose_and_reorder_nothing(cluster: Cluster) -> None:
    _, procs = cluster
    realms, per_realm, lines = 20, 3, 30
    members: dict[str, list[tuple[str, LineClient]]] = {}
    for r in range(realms):
        realm = f"realm{r}"
        members[realm] = []
        for m in range(per_realm):
            name = f"Member{m}"
            client = await join(procs[(r + m) % 3].port, name, realm)
            members[realm].append((name, client))
    try:
        # Wait until each realm is whole, then everyone talks at once.
        for seated in members.values():
            for _, client in seated:
                await client.wait_for(f"({per_realm}/5)")
        for realm, seated in members.items():
            for name, client in seated:
                client.say(*(f"{realm} {name} line {k}" for k in range(lines)))
        for realm, seated in members.items():
            for name, client in seated:
                await client.until(lambda c=client: len(chats(c)) >= (per_realm - 1) * lines,
                                   f"every line for {name}@{realm}")
        for realm, seated in members.items():
            for name, client in seated:
                heard = chats(client)
                assert len(heard) == (per_realm - 1) * lines, (name, realm, len(heard))
                for other, _ in seated:
                    if other != name:
                        theirs = [line for line in heard if line.startswith(f"{other}: ")]
                        assert theirs == [f"{other}: {realm} {other} line {k}"
                                          for k in range(lines)], (name, realm, other)
    finally:
        await hang_up(*(client for seated in members.values() for _, client in seated))


@pytest_twisted.ensureDeferred
async def test_members_of_one_process_hear_each_other_there(cluster: Cluster) -> None:
    _, (p0, p1, _) = cluster
    names = ["Lord", "Arya", "Bran", "Cersei"]
    members = [await join(p0.port, "Lord", "pentos")]  # p0 runs pentos
    members += [await join(p1.port, name, "pentos") for name in names[1:]]
    for member in members:
        await member.wait_for("(4/5)")
    p0.pause()
    try:
        members[1].say("Valar morghulis")
        for member in members[2:]:
            await member.wait_for("Arya: Valar morghulis")
    finally:
        p0.resume()
    lines = 20
    for name, member in zip(names, members, strict=True):
        member.say(*(f"{name} line {k}" for k in range(lines)))
    for name, member in zip(names, members, strict=True):
        due = 3 * lines + (name != "Arya")
        await member.until(lambda m=member, due=due: len(chats(m)) >= due, f"{name}'s lines")
    members[0].say("Done")  # after anything the realm's process sent p1 before
    for member in members[1:]:
        await member.wait_for("Lord: Done")
    try:
        for name, member in zip(names, members, strict=True):
            heard = chats(member)
            for other in names:
                if other != name:
                    assert [line for line in heard if line.startswith(f"{other}: {other} ")] == [
                        f"{other}: {other} line {k}" for k in range(lines)], (name, other)
            assert heard.count("Arya: Valar morghulis") == (name != "Arya"), name
            assert len(heard) == 3 * lines + (name != "Arya") + (name != "Lord"), name
    finally:
        await hang_up(*members)


@pytest_twisted.ensureDeferred
async def test_a_realm_on_one_process_costs_redis_nothing_per_line(cluster: Cluster) -> None:
    redis, (p0, _, _) = cluster
    names = ["Arya", "Bran", "Cersei", "Davos", "Lord"]
    members = [await join(p0.port, name, "dorne") for name in names]
    try:
        for member in members:
            await member.wait_for(wire.is_event)
        before, started = redis.calls(), time.monotonic()
        for k in range(100):  # the non-Lords only: no decision, no event
            members[k % 4].say(f"line {k}")
        for member, due in zip(members, [75, 75, 75, 75, 100], strict=True):
            await member.until(lambda m=member, due=due: len(chats(m)) >= due, "the chat lines")
        after, seconds = redis.calls(), time.monotonic() - started
        grown = {command: n - before.get(command, 0) for command, n in after.items()
                 if n != before.get(command, 0)}
        assert "publish" not in grown, grown
        # Each of the three processes renews its leases once a second: one
        # RENEW script (realm.leases), whose own commands Redis counts too:
        # 11, then HMGET, PEXPIRE and ZADD for each lease renewed, and EXISTS
        # for each peer (2 at most).  A slow run sees more of them: what is
        # allowed grows with the heartbeats seen, not with the lines.
        # `INFO` is this test's.
        scripts = grown.get("evalsha", 0) + grown.get("eval", 0)
        assert scripts <= 3 * (int(seconds) + 2), (grown, seconds)
        heartbeats = scripts * (11 + 2) + 3 * grown.get("hmget", 0)
        others = sum(grown.values()) - grown.get("info", 0) - heartbeats
        assert others < 50, (grown, seconds)  # 100 lines: none a line
    finally:
        await hang_up(*members)
