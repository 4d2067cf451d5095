"""A cluster's failures, with real processes and a real Redis: a process
killed (`kill -9`), Redis stopped and started again, a process stopped
(SIGTERM).  Each test has a Redis and three `twistd realm --cluster`
processes of its own; none of them may write a traceback or log at error
level (checked when the test's services stop, and where it matters, in
the test).

4. `test_a_killed_process`: within 10 s its members are gone from realms
   run elsewhere (its Lord's realm ends as for a lost connection), the
   members of realms it ran are told the game is over and disconnected,
   and those realms start again on a live process.
4b. `test_a_join_that_needs_a_killed_process_is_refused_at_once`.
5. `test_redis_stopped_and_started_again`: what needs Redis is refused
   as unreachable, a realm on one process plays on, and joins work again
   within 10 s of Redis's return, without a restart.
5b. `test_redis_restarted_while_a_realms_process_stands_still`: a realm
   nobody has written back yet is not started afresh elsewhere.
5c. `test_redis_that_loses_its_data_with_every_connection_open`: no
    realm started twice, no live process taken for dead.
5d. `test_redis_that_stands_still_then_answers_again`: a Redis that hangs
   with its connections open is let go and reached again, no traceback.
5e. `test_a_redis_that_refuses_client_reply`: realm says what it needs.
5f. `test_drain_waits_for_a_realm_whose_members_are_elsewhere`.
6. `test_a_process_stopped_with_sigterm`: its members told, its realms
   ended for everyone, its members gone from realms run elsewhere, exit 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest_twisted
from realm_procs import unix_ask
from twisted.internet import reactor

from realm import leases, wire
from realm.testing import LineClient, eventually, hang_up, join, join_soon, refused

if TYPE_CHECKING:
    from services import RealmProc, Services

pytest_plugins = ["services"]

#: The contract's bound for a dead process's members and realms.
DEAD_WITHIN = 10.0


def now() -> float:
    return reactor.seconds()  # type: ignore[attr-defined,no-any-return]


def line(template: wire.Line, **fields: object) -> str:
    return template.notice(**fields).decode("utf-8").rstrip("\r\n")


async def two_realms(p0: RealmProc, p1: RealmProc,
                     p2: RealmProc) -> tuple[list[LineClient], list[LineClient]]:
    """`north`, run by p0, with a member on each process; `south`, run by
    p1, with a member on each process, its Lord on p2."""
    north = [await join(p0.port, "Arya", "north"), await join(p1.port, "Bran", "north"),
             await join(p2.port, "Cersei", "north")]
    south = [await join(p1.port, "Davos", "south"), await join(p0.port, "Eddard", "south"),
             await join(p2.port, "Lord", "south")]
    for member in north:
        await member.wait_for("Cersei has entered the realm (3/5)")
    for member in south:
        await member.wait_for("Lord has entered the realm (3/5)")
    return north, south


def game_over(text: str, realm: str) -> bool:
    """A `***` line that the game in `realm` is over: its owner is gone, or
    it can no longer be reached from here."""
    return any(t.match(text) == {"realm": realm} for t in (wire.REALM_GONE, wire.CUT_OFF))


@pytest_twisted.ensureDeferred
async def test_a_killed_process(services: Services) -> None:
    redis = services.redis()
    p0, p1, p2 = services.realms(3, redis)
    # north: run by p0, the process to be killed, with members elsewhere.
    north = [await join(p0.port, "Arya", "north"), await join(p1.port, "Bran", "north"),
             await join(p2.port, "Cersei", "north")]
    # south: run by p1; its Lord (first among p0's members) and Eddard on p0.
    south = [await join(p1.port, "Davos", "south"), await join(p0.port, "Lord", "south"),
             await join(p0.port, "Eddard", "south"), await join(p2.port, "Gendry", "south")]
    # west: run by p2, one member on p0.
    west = [await join(p2.port, "Hodor", "west"), await join(p0.port, "Ilyn", "west"),
            await join(p1.port, "Jon", "west")]
    for realm, last in ((north, "Cersei"), (south, "Gendry"), (west, "Jon")):
        for member in realm:
            await member.wait_for(f"{last} has entered the realm ({len(realm)}/5)")
    killed = now()
    p0.kill()
    # North ran on p0: its members elsewhere are told, and disconnected.
    for member in north[1:]:
        await member.wait_for(lambda text: game_over(text, "north"))
        await member.closed()
    # South loses its Lord as to a lost connection: the game is over for all.
    for member in (south[0], south[3]):
        await member.wait_for(wire.LORD_LEFT.matches)
        await member.closed()
    # West lets Ilyn go as a lost connection, and plays on.
    hodor, _, jon = west
    for member in (hodor, jon):
        await member.wait_for(line(wire.DEPARTED, name="Ilyn", gone=wire.LEFT_WHY, n=2, size=5))
    assert now() - killed <= DEAD_WITHIN
    hodor.say("Hodor")
    await jon.wait_for("Hodor: Hodor")
    # North can be started again, on a live process, at once.
    again = await join(p1.port, "Bran", "north")
    assert again.lines[-2:] == [line(wire.ENTERED, name="Bran", n=1, size=5),
                                line(wire.WAITING, missing=4, among=wire.LORD_AMONG)]
    joined = await join(p2.port, "Cersei", "north")
    await again.wait_for("Cersei has entered the realm (2/5)")
    await hang_up(again, joined, hodor, jon)


@pytest_twisted.ensureDeferred
async def test_a_join_that_needs_a_killed_process_is_refused_at_once(services: Services) -> None:
    """Redis does not answer a `PUBLISH`: before asking a realm's owner, a
    process asks Redis whether the owner listens, and a player joining a
    realm whose owner was just killed is told at once, not after `ttl`."""
    redis = services.redis()
    p0, p1 = services.realms(2, redis)
    arya, bran = await join(p0.port, "Arya", "north"), await join(p1.port, "Bran", "north")
    await arya.wait_for("Bran has entered the realm (2/5)")
    p0.kill()
    asked = now()
    _, why = await refused(p1.port, "Cersei@north")
    assert why == line(wire.UNREACHABLE, realm="north"), why
    assert now() - asked < 4.0  # an owner's answer is waited for 5 s
    await bran.wait_for(lambda text: game_over(text, "north"))
    await bran.closed()
    # Once its lease has lapsed with its heartbeat, north starts again here.
    cersei, _ = await join_soon(p1.port, "Cersei", "north")
    assert cersei.lines[-2] == line(wire.ENTERED, name="Cersei", n=1, size=5)
    await hang_up(cersei)


@pytest_twisted.ensureDeferred
async def test_redis_stopped_and_started_again(services: Services) -> None:
    redis = services.redis()
    procs = services.realms(3, redis)
    p0, p1, p2 = procs
    names = ["Arya", "Bran", "Cersei", "Davos", "Lord"]
    home = [await join(p0.port, name, "home") for name in names]  # all on p0
    for member in home:
        await member.wait_for(wire.is_event)
    split = [await join(p0.port, "Arya", "split"), await join(p1.port, "Bran", "split")]

    redis.stop()
    await eventually(lambda: all(p.logged("Lost Redis") for p in procs),
                     "every process to see Redis gone")
    # Why, once: not a line a try (two a second).
    await eventually(lambda: all(p.logged(f"Cannot reach Redis at {redis.url}") for p in procs),
                     "every process to say why it cannot reach Redis")
    # Joins that need Redis: a new realm, a realm run elsewhere.
    for port, want in ((p1.port, "Cersei@fresh"), (p2.port, "Cersei@split"),
                       (p0.port, "Cersei@fresh")):
        _, why = await refused(port, want)
        assert why == line(wire.UNREACHABLE, realm=want.split("@")[1]), why
    # Lines between p0 and p1 could be lost now: Bran is let go, and told.
    await split[1].wait_for(line(wire.CUT_OFF, realm="split"))
    await split[1].closed()
    await split[0].wait_for(line(wire.DEPARTED, name="Bran", gone=wire.LEFT_WHY, n=1, size=5))
    # A realm whose members are all on one process plays on: a decision,
    # the answers, the next event.
    lord = home[-1]
    lord.say("Hold the gate")
    for member in home[:-1]:
        await member.wait_for("Lord: Hold the gate")
        member.say("Aye")
    for member in home:
        await member.wait_for(wire.is_event, count=2)

    redis.start()  # empty, on the same port
    fresh, took = await join_soon(p1.port, "Cersei", "fresh")
    assert took <= 10.0, took
    # A realm run elsewhere is found again (p0 wrote its leases back).
    davos, took = await join_soon(p2.port, "Davos", "split")
    assert took <= 10.0, took
    await split[0].wait_for("Davos has entered the realm (2/5)")
    incomer, _ = await join_soon(p1.port, "Eddard", "fresh")
    await fresh.wait_for("Eddard has entered the realm (2/5)")
    # p0 and p1 let each other go while Redis was away; the one told so says so.
    await eventually(lambda: p0.logged("let this one go") or p1.logged("let this one go"),
                     "p0 or p1 to log that the other let it go")
    # The game at home went through it all.
    lord.say("The gate held")
    for member in home[:-1]:
        await member.wait_for("Lord: The gate held")
    for proc in procs:
        assert not proc.problems(), (proc.name, proc.problems())
        said = [line for line in proc.out if "Cannot reach Redis" in line]
        assert len(said) == 1 and not proc.logged("Scheduling retry"), proc.out
    await hang_up(fresh, davos, incomer, split[0], *home)


@pytest_twisted.ensureDeferred
async def test_redis_restarted_while_a_realms_process_stands_still(services: Services) -> None:
    redis = services.redis()
    p0, p1 = services.realms(2, redis)
    home = [await join(p0.port, name, "home") for name in ("Arya", "Bran", "Lord")]
    p0.pause()  # it cannot write its lease back when Redis returns
    redis.stop()
    redis.start()
    await eventually(lambda: sum(" is reachable" in text for text in p1.out) == 2,
                     "p1 to reach Redis again")
    # p1 finds no lease for home: it must not start a realm of that name.
    _, why = await refused(p1.port, "Davos@home")
    assert why == line(wire.UNREACHABLE, realm="home"), why
    p0.resume()
    davos, took = await join_soon(p1.port, "Davos", "home")
    assert took <= 10.0, took
    for member in home:  # the realm p0 runs, not a new one
        await member.wait_for("Davos has entered the realm (4/5)")
    home[2].say("Welcome")
    await davos.wait_for("Lord: Welcome")
    assert not any(wire.REALM_MOVED.match(text) for m in home for text in m.lines)
    await hang_up(davos, *home)


@pytest_twisted.ensureDeferred
async def test_redis_that_loses_its_data_with_every_connection_open(services: Services) -> None:
    """FLUSHALL (or a failover to an empty replica): no process lost Redis,
    so none reconnects, and the next join may come before any heartbeat.
    A realm in play is not started again elsewhere (no second Lord), and
    no live process is taken for dead."""
    redis = services.redis()
    p0, p1 = services.realms(2, redis)
    keep = [await join(p0.port, "Arya", "keep"), await join(p0.port, "Lord", "keep")]
    shared = [await join(p0.port, "Bran", "shared"), await join(p1.port, "Mia", "shared")]
    await shared[0].wait_for("Mia has entered the realm (2/5)")
    redis.command("FLUSHALL")
    second, why = await refused(p1.port, "Lord@keep")  # before p0 writes its lease back, or after
    assert wire.refusal(why) in ("unreachable", "lord_taken"), why
    davos, took = await join_soon(p1.port, "Davos", "shared")  # once written back
    assert took <= 10.0, took
    for member in shared:  # Mia too: her process was not let go
        await member.wait_for("Davos has entered the realm (3/5)")
    keep[1].say("We hold")
    await keep[0].wait_for("Lord: We hold")
    told = [text for member in [*keep, *shared] for text in member.lines]
    assert not any(game_over(text, "shared") or wire.REALM_MOVED.match(text) for text in told)
    for proc in (p0, p1):
        assert not proc.logged("is gone") and not proc.problems(), (proc.name, proc.out[-5:])
    # Each process's connections per address are written back too (the
    # cluster-wide --max-per-address counted from 0 again before).
    await eventually(lambda: redis.command("HGET", leases.addrs(p0.node), "127.0.0.1") == b"3",
                     "p0 to write back its 3 connections from 127.0.0.1", 10)
    await hang_up(second, davos, *keep, *shared)


@pytest_twisted.ensureDeferred
async def test_redis_that_stands_still_then_answers_again(services: Services) -> None:
    """A Redis that answers nothing but keeps its connections open (SIGSTOP):
    the process lets it go, tries again with new connections that get no
    answer either, and is back when it answers, with no traceback."""
    redis = services.redis()
    (p0,) = services.realms(1, redis)
    arya = await join(p0.port, "Arya", "home")
    redis.pause()
    try:
        await eventually(lambda: p0.logged("Lost Redis"), "p0 to let Redis go", 10)
        await eventually(lambda: p0.logged("did not answer a new connection"),
                         "a new connection that gets no answer", 10)
        _, why = await refused(p0.port, "Bran@elsewhere")
        assert why == line(wire.UNREACHABLE, realm="elsewhere"), why
    finally:
        redis.resume()
    await eventually(lambda: sum(" is reachable" in text for text in p0.out) == 2,
                     "p0 to reach Redis again", 10)
    bran, _ = await join_soon(p0.port, "Bran", "home")
    await arya.wait_for("Bran has entered the realm (2/5)")
    await hang_up(arya, bran)
    assert p0.problems() == []


@pytest_twisted.ensureDeferred
async def test_a_redis_that_refuses_client_reply(services: Services) -> None:
    """realm publishes with `CLIENT REPLY SKIP`: a Redis that refuses it
    (CLIENT renamed away, or older than 3.2) is named, and treated as out
    of reach, rather than let lines vanish."""
    redis = services.redis("--rename-command", "CLIENT", "")
    (p0,) = services.realms(1, redis, reachable=False)
    await eventually(lambda: p0.logged("realm needs Redis 3.2 or later, with SELECT and "
                                       "CLIENT allowed"), "p0 to say what it needs")
    _, why = await refused(p0.port, "Bran@elsewhere")
    assert why == line(wire.UNREACHABLE, realm="elsewhere"), why
    assert not p0.logged(" is reachable")
    assert p0.problems() == []


@pytest_twisted.ensureDeferred
async def test_drain_waits_for_a_realm_whose_members_are_elsewhere(services: Services) -> None:
    """A drained process exits once its last connection is gone and no realm
    runs on it: a realm it runs for members connected elsewhere plays on."""
    redis = services.redis()
    admin = services.folder / "admin0.sock"
    (p0,) = services.realms(1, redis, "--admin", f"unix:{admin}:mode=600")
    (p1,) = services.realms(1, redis)
    arya = await join(p0.port, "Arya", "dr")  # p0 runs `dr`
    bran, cat = await join(p1.port, "Bran", "dr"), await join(p1.port, "Cat", "dr")
    await arya.wait_for("Cat has entered the realm (3/5)")
    await hang_up(arya)
    await cat.wait_for(lambda text: text.startswith("*** Arya "))
    (answer,) = unix_ask(admin, "drain")
    assert answer.startswith("draining: 0 members left, and 1 realm run here"), answer
    bran.say("Still here")
    await cat.wait_for("Bran: Still here")
    assert p0.proc.popen.poll() is None
    davos, why = await refused(p0.port, "Davos@elsewhere")
    assert wire.DRAINING.match(why) is not None, why
    await hang_up(davos)
    assert p0.proc.popen.poll() is None
    await hang_up(bran, cat)
    assert await p0.exited() == 0
    await eventually(lambda: p0.logged("Drained"), "its last lines to be read")


@pytest_twisted.ensureDeferred
async def test_the_console_says_which_process_runs_a_realm(services: Services) -> None:
    redis = services.redis()
    admin = services.folder / "admin1.sock"
    (p0,) = services.realms(1, redis)
    (p1,) = services.realms(1, redis, "--admin", f"unix:{admin}:mode=600")
    arya = await join(p0.port, "Arya", "far")  # p0 runs `far`
    bran = await join(p1.port, "Bran", "far")
    await arya.wait_for("Bran has entered the realm (2/5)")
    [started] = [text for text in p0.out if "Cluster node " in text]
    node = started.split("Cluster node ")[1].split()[0]
    for command in ("who far", "end FAR"):
        assert unix_ask(admin, command) == [
            f"error: realm {command.split()[1]!r} runs on process {node}, not on this one"]
    assert unix_ask(admin, "who near") == ["error: no realm 'near' runs on this process"]
    bran.say("Still here")  # `end` ended nothing
    await arya.wait_for("Bran: Still here")
    await hang_up(arya, bran)


@pytest_twisted.ensureDeferred
async def test_a_process_stopped_with_sigterm(services: Services) -> None:
    redis = services.redis()
    p0, p1, p2 = services.realms(3, redis)
    north, south = await two_realms(p0, p1, p2)
    p0.terminate()
    arya, bran, cersei = north
    davos, eddard, lord = south
    shutting_down = line(wire.SHUTTING_DOWN)
    # Its own members are told, and disconnected.
    for member in (arya, eddard):
        await member.wait_for(shutting_down)
        await member.closed()
    # North, which it ran, ends for its members elsewhere too: their own
    # server goes on, the realm's is gone.
    for member in (bran, cersei):
        await member.wait_for(line(wire.REALM_GONE, realm="north"))
        await member.closed()
        assert shutting_down not in member.lines, member.lines
    # Eddard leaves south, which p1 runs.
    for member in (davos, lord):
        await member.wait_for(line(wire.DEPARTED, name="Eddard", gone=wire.LEFT_WHY, n=2, size=5))
    assert await p0.exited() == 0
    assert not p0.problems(), p0.problems()
    # South plays on; north starts again elsewhere.
    lord.say("Onwards")
    await davos.wait_for("Lord: Onwards")
    again = await join(p2.port, "Arya", "north")
    await hang_up(again, davos, lord)
