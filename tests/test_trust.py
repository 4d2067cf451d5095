"""Trust, without sockets: the Lord's password, flood control, idle limits,
per-address and per-server limits.

Each connection is a real `StreamLink` on an in-memory transport; time
is the test's `task.Clock`.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import Transport, memory_checker
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.logger import formatEvent
from twisted.python.failure import Failure

from realm.protocol import Outbox, StreamLink
from realm.server import RealmServer
from realm.tap import Options, Shutdown, makeService, settings_from

SECRET = "Dragonglass-7"


class Link:
    """One client connection to `server`, driven by the test."""

    def __init__(self, server: RealmServer, host: str = "10.0.0.1") -> None:
        self.proto = StreamLink(server, Outbox(server.clock))
        self.transport = Transport(host)
        self.transport.protocol = self.proto
        self.proto.makeConnection(self.transport)
        self.seen: list[str] = []  # what `checked` has read

    def send(self, *lines: str) -> None:
        self.proto.dataReceived(b"".join(line.encode() + b"\n" for line in lines))

    def lines(self) -> list[str]:
        """The lines received since the last call."""
        data = self.transport.value().decode()
        self.transport.clear()
        return data.split("\r\n")[:-1]

    @property
    def closed(self) -> bool:
        return self.transport.closed


def join(server: RealmServer, *names: str) -> list[Link]:
    links = []
    for name in names:
        link = Link(server)
        link.send(name)
        if name.lower().startswith("lord") and server.checker is not None:
            link.send(SECRET)
        links.append(link)
    for link in links:
        link.lines()
    return links


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("*** Error: ")]


# -- who may be Lord ---------------------------------------------------------

def test_auth_option_reaches_the_server() -> None:
    config = Options()
    config.parseOptions(["--auth", f"memory:lord:{SECRET}", "--listen", "tcp:0",
                         "--chronicle", "none"])  # no realm.sqlite where the tests run
    top = makeService(config)
    shutdown = next(s for s in top if isinstance(s, Shutdown))
    assert shutdown.server.checker is config["credCheckers"][0]


def test_without_auth_anyone_may_be_lord(server: Any) -> None:
    link = Link(server())
    link.lines()
    link.send("Lord")
    assert "*** Lord has entered the realm (1/5)" in link.lines()


@pytest.mark.parametrize("how", ["memory", "file"])
def test_right_password_makes_the_lord(server: Any, tmp_path: Any, how: str) -> None:
    if how == "memory":
        checker = memory_checker(SECRET)
    else:
        path = tmp_path / "lords"
        path.write_text(f"# the realm's Lord\nlord:{SECRET}\n")
        config = Options()
        config.parseOptions(["--auth", f"file:{path}"])
        checker = config["credCheckers"][0]
    link = Link(server(checker=checker))
    link.lines()
    link.send("lord@north")
    asked = link.lines()
    assert len(asked) == 1 and asked[0].startswith("*** ")
    assert "password" in asked[0] and not errors(asked)
    link.send(SECRET)
    assert "*** Lord has entered the realm (1/5)" in link.lines()


@pytest.mark.parametrize("wrong", ["", " ", SECRET.lower(), SECRET + " ", "x" * 1024])
def test_wrong_or_missing_password_gives_no_role(server: Any, wrong: str) -> None:
    realm_server = server(checker=memory_checker(SECRET))
    link = Link(realm_server)
    link.lines()
    link.send("Lord", wrong)
    lines = link.lines()
    assert len(errors(lines)) == 1 and not link.closed
    assert not realm_server.realms
    # The connection may try again, under a name or as Lord.
    link.send("Arya")
    assert "*** Arya has entered the realm (1/5)" in link.lines()
    assert realm_server.realms["westeros"].lord is None


def test_a_password_is_not_needed_but_by_the_lord(server: Any) -> None:
    link = Link(server(checker=memory_checker(SECRET)))
    link.lines()
    link.send("Lordling")
    assert "*** Lordling has entered the realm (1/5)" in link.lines()


def test_second_try_may_succeed(server: Any) -> None:
    link = Link(server(checker=memory_checker(SECRET)))
    link.send("Lord", "nope", "Lord", SECRET)
    lines = link.lines()
    assert len(errors(lines)) == 1
    assert lines[-2:][0] == "*** Lord has entered the realm (1/5)"


def test_third_failure_closes(server: Any) -> None:
    realm_server = server(checker=memory_checker(SECRET))
    link = Link(realm_server)
    link.lines()
    # Pipelined: the fourth try, right as it is, must never be heard.
    link.send("Lord", "a", "Lord", "b", "Lord", "c", "Lord", SECRET)
    lines = link.lines()
    assert len(errors(lines)) == 3
    assert "last time" in lines[-1]
    assert link.closed
    assert not realm_server.realms and not realm_server.sessions


def test_failures_close_per_connection_and_back_off_per_address(
        server: Any, clock: task.Clock, events: list[dict[str, Any]]) -> None:
    realm_server = server(checker=memory_checker(SECRET))
    first, second = Link(realm_server), Link(realm_server)
    first.send("Lord", "a", "Lord", "b")
    second.send("Lord", "c")  # the address's third wrong password
    assert not first.closed and not second.closed  # two strikes each at most
    second.lines()
    # The address must now wait: its next password is held, then checked.
    second.send("Lord", SECRET, "--who")
    assert second.lines() == [
        "*** This realm's Lord must prove it: send the Lord's password.",
        "*** Too many wrong passwords for the Lord lately: yours is checked in 1 s."]
    assert any("Holding a Lord's password" in formatEvent(e) for e in events)
    clock.advance(0.9)
    assert second.lines() == []
    clock.advance(0.1)
    lines = second.lines()  # in, and the line sent meanwhile handled after
    assert lines[0] == "*** Lord has entered the realm (1/5)"
    assert lines[-1].startswith("*** In the realm")


def test_held_passwords_are_logged_once_a_minute(
        server: Any, clock: task.Clock, events: list[dict[str, Any]]) -> None:
    """Passwords sent and hung up on while held: each next one in line is
    held in turn, and a line each would let one client fill the disk."""
    realm_server = server(checker=memory_checker(SECRET))
    for guess in "abc":  # the address must now wait
        Link(realm_server).send("Lord", guess)
    for i in range(20):
        link = Link(realm_server)
        link.send("Lord", f"held{i}")
        link.proto.connectionLost(Failure(ConnectionDone()))
    said = [formatEvent(e) for e in events if "Holding a Lord's password" in formatEvent(e)]
    assert len(said) == 1
    clock.advance(60)
    said = [formatEvent(e) for e in events if "Holding a Lord's password" in formatEvent(e)]
    assert len(said) == 2 and said[1].startswith("19 such lines since the last, the last: ")


def test_guesses_held_are_counted_and_the_wait_grows(
        server: Any, clock: task.Clock) -> None:
    realm_server = server(checker=memory_checker(SECRET))
    first, second = Link(realm_server), Link(realm_server)
    first.send("Lord", "a", "Lord", "b", "Lord", "c")  # closed at the third
    second.send("Lord", "d", "Lord", "e")
    assert second.lines()[-1].endswith("yours is checked in 1 s.")
    clock.advance(1)  # "d" checked: wrong, and the wait doubles for "e"
    lines = second.lines()
    assert lines[0].startswith("*** Error: Wrong password")
    assert lines[-1].endswith("yours is checked in 2 s.")
    held = [call for call in clock.getDelayedCalls() if call.getTime() == clock.seconds() + 2]
    assert len(held) == 1  # "e", to be checked
    second.proto.connectionLost(Failure(ConnectionDone()))  # gone while it waits
    assert not held[0].active()  # never checked, nothing kept for it


def checked(links: list[Link]) -> int:
    """How many of `links` have had their password refused so far."""
    return sum(any("Wrong password" in line for line in link.seen) for link in links)


def test_passwords_sent_at_once_are_checked_one_after_another(
        server: Any, clock: task.Clock) -> None:
    """Sixty connections from one address, a password each, at once: each
    waits what the one before set (1 s, 2, 4...), not one wait for all."""
    realm_server = server(checker=memory_checker(SECRET))
    links = [Link(realm_server) for _ in range(60)]
    for i, link in enumerate(links):
        link.send("Lord", f"guess{i}")
    for t, wanted in ((0, 3), (0.99, 3), (1, 4), (3, 5), (7, 6), (15, 7)):
        clock.advance(t - clock.seconds())
        for link in links:
            link.seen += link.lines()
        assert checked(links) == wanted, t
    links[7].proto.connectionLost(Failure(ConnectionDone()))  # gone while it waits its turn
    clock.advance(16)
    for link in links:
        link.seen += link.lines()
    assert checked(links) == 8  # the next after the gone one, after 16 s


def test_passwords_whose_connections_went_leave_the_line(
        server: Any, clock: task.Clock) -> None:
    """Hundreds of connections that send a password and hang up while it
    waits its turn: the line never stalls, and the real Lord gets in."""
    realm_server = server(checker=memory_checker(SECRET))
    for guess in range(4):  # the free ones, and one that sets a wait
        clock.advance(60)
        Link(realm_server).send("Lord", f"guess{guess}")
    held = Link(realm_server)
    held.send("Lord", "held")  # held: the others queue behind it
    assert held.lines()[-1].endswith("yours is checked in 2 s.")
    for i in range(300):
        gone = Link(realm_server)
        gone.send("Lord", f"gone{i}")
        gone.proto.connectionLost(Failure(ConnectionDone()))
    lord = Link(realm_server)
    lord.send("Lord", SECRET)
    for _ in range(30):
        clock.advance(60)
    assert "*** Lord has entered the realm (1/5)" in lord.lines()


def test_a_long_line_of_passwords_answered_at_once_is_answered_whole(
        server: Any, clock: task.Clock) -> None:
    """Four hundred right passwords from one address behind a held one: each
    is checked at once when its turn comes (a checker in memory), and every
    one is answered, none nested inside the last."""
    realm_server = server(checker=memory_checker(SECRET), max_per_address=0)
    for guess in range(3):
        Link(realm_server).send("Lord", f"guess{guess}")
    links = [Link(realm_server) for _ in range(400)]
    for i, link in enumerate(links):
        link.send(f"Lord@realm{i}", SECRET)
    clock.advance(1)  # the held one is checked; the others follow, each at once
    entered = ["*** Lord has entered the realm (1/5)" in link.lines() for link in links]
    assert all(entered), f"{entered.count(False)} of {len(links)} never answered"


def test_a_right_password_clears_the_count_before_the_next_is_checked(
        server: Any, clock: task.Clock) -> None:
    """The wrong password after the Lord's right one counts from a clean
    slate, not before the slate is wiped (which would lose it)."""
    realm_server = server(checker=memory_checker(SECRET))
    for guess in range(3):
        Link(realm_server).send("Lord", f"guess{guess}")
    lord, late = Link(realm_server), Link(realm_server)
    lord.send("Lord", SECRET)  # held 1 s
    late.send("Lord@north", "wrong")  # waits its turn behind the Lord's
    clock.advance(1)
    assert "*** Lord has entered the realm (1/5)" in lord.lines()
    assert late.lines()[-1].startswith("*** Error: Wrong password")
    for guess in range(2):  # two more: three since the right one
        Link(realm_server).send("Lord@north", f"again{guess}")
    assert wait_of(realm_server, "10.0.0.1") == 1


def test_a_password_waiting_its_turn_is_not_timed_out(server: Any, clock: task.Clock) -> None:
    """The login timeout does not count the wait behind the address's other
    passwords, nor the one after."""
    realm_server = server(checker=memory_checker(SECRET), login_timeout=5)
    for guess in range(7):  # the free ones, then waits each let pass: 16 s to wait now
        clock.advance(20)
        Link(realm_server).send("Lord", f"guess{guess}")
    held = Link(realm_server)
    held.send("Lord", "held")
    assert held.lines()[-1].endswith("yours is checked in 16 s.")
    lord = Link(realm_server)
    lord.send("Lord", SECRET)
    assert lord.lines()[-1] == ("*** Passwords from your address are checked one at a time: "
                                "yours comes after 1 other.")
    clock.advance(10)  # past the login timeout, waiting behind the held one
    assert not lord.closed and lord.lines() == []
    clock.advance(6)  # the held one is checked: the Lord's turn, and its own wait
    assert lord.lines()[-1].endswith("yours is checked in 32 s.")
    clock.advance(32)
    assert "*** Lord has entered the realm (1/5)" in lord.lines() and not lord.closed


def test_the_accounts_wait_is_one_password_after_another(
        server: Any, clock: task.Clock) -> None:
    """Wrong passwords from many addresses: once the account waits, the
    ones held the same time are looked at again after it, one by one."""
    realm_server = server(checker=memory_checker(SECRET))
    links = [Link(realm_server, f"10.0.{i // 200}.{i % 200}") for i in range(40)]
    for i, link in enumerate(links):
        link.send("Lord", f"guess{i}")
        link.seen = link.lines()
    assert checked(links) == 30  # the account's free ones
    clock.advance(0.5)
    for link in links:
        link.seen += link.lines()
    assert checked(links) == 31  # not all ten that were held 0.5 s


def test_the_login_timeout_does_not_count_the_servers_wait(
        server: Any, clock: task.Clock) -> None:
    """A password held for 1 s on a server that gives 0.5 s to join: the
    wait is the server's, and the Lord gets in, not timed out."""
    realm_server = server(checker=memory_checker(SECRET), login_timeout=0.5)
    for guess in "abc":  # three wrong from the address, each quickly
        Link(realm_server).send("Lord", guess)
    lord = Link(realm_server)
    lord.send("Lord", SECRET)
    assert lord.lines()[-1].endswith("yours is checked in 1 s.")
    clock.advance(1)
    assert "*** Lord has entered the realm (1/5)" in lord.lines()
    assert not lord.closed


def wait_of(realm_server: RealmServer, address: str) -> float:
    """How long `address` must wait, as this process counts (at once)."""
    waits: list[float] = []
    realm_server.guesses.wait(address).addCallback(waits.append)
    (wait,) = waits
    return wait


def test_the_wait_grows_with_each_wrong_password(server: Any, clock: task.Clock) -> None:
    realm_server = server(checker=memory_checker(SECRET))
    waits = []
    for guess in range(6):
        link = Link(realm_server)
        link.send("Lord", f"guess{guess}")
        waits.append(wait_of(realm_server, "10.0.0.1"))
        clock.advance(waits[-1])
    assert waits == [0, 0, 1, 2, 4, 8]
    # Another address is not held up by this one's guesses.
    assert wait_of(realm_server, "10.0.0.2") == 0
    # Success clears the address.
    link = Link(realm_server)
    link.send("Lord", SECRET)
    assert wait_of(realm_server, "10.0.0.1") == 0


class Slow:
    """A checker that answers when the test says."""
    credentialInterfaces = InMemoryUsernamePasswordDatabaseDontUse.credentialInterfaces

    def __init__(self) -> None:
        self.pending: list[tuple[Deferred[bytes], Any]] = []

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.pending.append((d, credentials))
        return d


def test_a_wrong_password_from_a_slow_checker_leaves_the_login_timeout(
        server: Any, clock: task.Clock) -> None:
    """A checker that answers later: the connection is back to naming
    after a wrong password, and still has to join in time."""
    checker = Slow()
    link = Link(server(checker=checker, login_timeout=10))
    link.send("Lord", "wrong")
    for _ in range(2):  # the memory checker's bytes, then its str
        checker.pending.pop()[0].errback(UnauthorizedLogin())
    assert link.lines()[-1].startswith("*** Error: Wrong password")
    clock.advance(10)
    assert link.closed and "in time" in link.lines()[-1]


def test_lines_sent_while_checking_wait_their_turn(server: Any) -> None:
    """A checker that answers later: the lines after the password wait."""
    checker = Slow()
    realm_server = server(checker=checker)
    lord, arya = Link(realm_server), Link(realm_server)
    arya.send("Arya")
    arya.lines()
    lord.send("Lord", SECRET, "hello", "--who")
    assert "hello" not in "".join(arya.lines())
    d, credentials = checker.pending.pop()
    assert credentials.password == SECRET.encode()
    d.callback(b"lord")
    assert arya.lines()[-1] == "Lord: hello"
    assert lord.lines()[-1].startswith("*** In the realm 'westeros' (2/5)")
    # A wrong answer, later, lets the waiting lines be names again.
    other = Link(realm_server)
    other.send("Lord@dorne", "bad", "Oberyn@dorne")
    d, _ = checker.pending.pop()
    d.errback(UnauthorizedLogin())
    # (the str retry for memory: checkers asks once more)
    d, _ = checker.pending.pop()
    d.errback(UnauthorizedLogin())
    assert "*** Oberyn has entered the realm (1/5)" in other.lines()


def test_passwords_never_reach_the_logs(
        server: Any, clock: task.Clock, events: list[dict[str, Any]], tmp_path: Any) -> None:
    path = tmp_path / "lords"
    path.write_text(f"lord:{SECRET}\n")
    for checker in (memory_checker(SECRET), None):
        if checker is None:
            config = Options()
            config.parseOptions(["--auth", f"file:{path}"])
            checker = config["credCheckers"][0]
        realm_server = server(checker=checker)
        guesses = [SECRET[:-1], SECRET.upper(), SECRET + "!"]
        brute = Link(realm_server)
        for guess in guesses:
            brute.send("Lord", guess)
        assert brute.closed
        clock.advance(300)  # the address's wait after three wrong passwords
        lord = Link(realm_server)
        lord.send("Lord", SECRET, "--leave")
        assert lord.closed
        # Passwords refused as lines, or sent where a name belongs.
        for data in (f"Lord\n{SECRET}\x01\n", f"Lord\n\xff{SECRET}\n",
                     f"{SECRET}!\n", f"Lord\nwrong\n{SECRET}!\n"):
            Link(realm_server).proto.dataReceived(data.encode("latin-1"))
        Link(realm_server).proto.dataReceived(b"Lord\n\xff" + SECRET.encode() + b"\n")
    assert events
    for event in events:
        text = formatEvent(event) + repr(event)
        if event.get("log_failure") is not None:
            text += event["log_failure"].getTraceback()
        for secret in [SECRET, SECRET[:-1], SECRET.upper(), SECRET + "!"]:
            assert secret not in text


# -- flood control -----------------------------------------------------------

def test_flood_is_refused_line_by_line(server: Any, clock: task.Clock) -> None:
    realm_server = server(max_rate=5, size=3)
    lord, arya, bran = join(realm_server, "Lord", "Arya", "Bran")
    clock.advance(10)  # a full bucket: the join line took a token
    flood = [f"spam {i}" for i in range(50)]
    arya.send(*flood)
    told = arya.lines()
    relayed = [line for line in bran.lines() if line.startswith("Arya: ")]
    assert len(relayed) == 10  # the burst: twice the rate
    assert len(errors(told)) == 40  # every other line refused, none in silence
    assert all("too fast" in line for line in errors(told))
    assert relayed == [f"Arya: spam {i}" for i in range(10)]
    # The others' game goes on, undisturbed.
    lord.send("We ride at dawn")
    bran.send("Aye")
    assert "Lord: We ride at dawn" in bran.lines()
    assert "Bran: Aye" in lord.lines()
    assert not errors(lord.lines() + bran.lines())
    # Tokens come back with time.
    clock.advance(1)
    arya.send("a", "b", "c", "d", "e", "f")
    assert [line for line in bran.lines() if line.startswith("Arya")] == [
        "Arya: a", "Arya: b", "Arya: c", "Arya: d", "Arya: e"]
    assert len(errors(arya.lines())) == 1
    assert not arya.closed


def test_flood_is_logged_once(
        server: Any, clock: task.Clock, events: list[dict[str, Any]]) -> None:
    realm_server = server(max_rate=1)
    arya, = join(realm_server, "Arya")
    clock.advance(10)
    del events[:]
    arya.send(*["x"] * 100)
    assert len(errors(arya.lines())) == 98
    assert len([e for e in events if "too fast" in formatEvent(e)]) == 1


def test_steady_answers_never_hit_the_limit(server: Any, clock: task.Clock) -> None:
    realm_server = server(size=3)  # the default rate
    lord, arya, bran = join(realm_server, "Lord", "Arya", "Bran")
    for i in range(100):
        lord.send(f"decision {i}")
        arya.send(f"answer {i}")
        bran.send(f"answer {i}")
        clock.advance(0.1)
    assert not errors(lord.lines() + arya.lines() + bran.lines())


def test_rate_zero_is_off(server: Any) -> None:
    arya, bran = join(server(max_rate=0), "Arya", "Bran")
    arya.send(*[f"{i}" for i in range(500)])
    assert not errors(arya.lines())
    assert len(bran.lines()) == 500


# -- idle limits -------------------------------------------------------------

def test_login_timeout(server: Any, clock: task.Clock) -> None:
    link = Link(server(login_timeout=60))
    link.lines()
    clock.advance(59)
    link.send("1bad name")  # lines that do not join do not buy time
    clock.advance(1)
    lines = link.lines()
    assert link.closed
    assert lines[-1].startswith("*** Error: ") and "name in time" in lines[-1]


def test_login_timeout_covers_the_password(server: Any, clock: task.Clock) -> None:
    link = Link(server(checker=memory_checker(SECRET), login_timeout=10))
    link.send("Lord")
    clock.advance(10)
    assert link.closed
    assert "in time" in link.lines()[-1]


def test_joining_stops_the_login_timeout(server: Any, clock: task.Clock) -> None:
    link = Link(server(login_timeout=60, idle_timeout=0))
    clock.advance(30)
    link.send("Arya")
    clock.advance(10_000)
    assert not link.closed


def test_idle_member_is_shown_out_and_the_realm_told(
        server: Any, clock: task.Clock) -> None:
    lord, arya, bran = join(server(idle_timeout=100), "Lord", "Arya", "Bran")
    for _ in range(3):
        clock.advance(60)
        lord.send("Speak!")
        bran.send("Aye")
    assert arya.closed
    told = arya.lines()
    assert told[-1].startswith("*** Error: ") and "silent" in told[-1]
    for other in (lord, bran):
        assert any(line.startswith("*** Arya ") and "silent" in line and "(2/5)" in line
                   for line in other.lines())
    assert not lord.closed and not bran.closed


def test_idle_lord_ends_the_realm(server: Any, clock: task.Clock) -> None:
    realm_server = server(idle_timeout=100)
    lord, arya = join(realm_server, "Lord", "Arya")
    clock.advance(50)
    arya.send("Hello?")
    clock.advance(50)
    assert lord.closed and arya.closed
    assert any("silent" in line for line in lord.lines())
    assert any("The Lord has left the realm" in line for line in arya.lines())
    assert not realm_server.realms


def test_timeouts_zero_are_off(server: Any, clock: task.Clock) -> None:
    realm_server = server(login_timeout=0, idle_timeout=0)
    idle = Link(realm_server)
    arya, = join(realm_server, "Arya")
    clock.advance(10 ** 7)
    assert not idle.closed and not arya.closed
    assert not clock.getDelayedCalls()


# -- per-address and per-server limits ---------------------------------------

def test_connections_per_address(server: Any) -> None:
    realm_server = server(max_per_address=2)
    first, second = Link(realm_server, "10.0.0.9"), Link(realm_server, "10.0.0.9")
    third = Link(realm_server, "10.0.0.9")
    lines = third.lines()
    assert third.closed
    assert len(lines) == 1 and lines[0].startswith("*** Error: ")
    assert "Too many connections" in lines[0]
    elsewhere = Link(realm_server, "10.0.0.10")
    assert not elsewhere.closed
    first.transport.loseConnection()
    fourth = Link(realm_server, "10.0.0.9")
    assert not fourth.closed and not second.closed
    assert len(realm_server.sessions) == 3


def test_realms_per_server(server: Any) -> None:
    realm_server = server(max_realms=1)
    join(realm_server, "Arya@north")
    link = Link(realm_server)
    link.lines()
    link.send("Oberyn@dorne")
    lines = link.lines()
    assert len(errors(lines)) == 1 and "limit of 1 realm;" in lines[0]
    assert not link.closed
    link.send("Jon@north")  # a realm in play still takes members
    assert "*** Jon has entered the realm (2/5)" in link.lines()
    assert list(realm_server.realms) == ["north"]


def test_a_discarded_realm_frees_its_place(server: Any) -> None:
    realm_server = server(max_realms=1)
    arya, = join(realm_server, "Arya@north")
    arya.send("--leave")
    link = Link(realm_server)
    link.send("Oberyn@dorne")
    assert "*** Oberyn has entered the realm (1/5)" in link.lines()


def test_limits_come_from_the_options() -> None:
    config = Options()
    config.parseOptions(["--max-rate", "2.5", "--max-per-address", "3", "--max-realms", "4",
                         "--login-timeout", "5", "--idle-timeout", "0"])
    s = settings_from(config)
    assert (s.max_rate, s.max_per_address, s.max_realms, s.login_timeout,
            s.idle_timeout) == (2.5, 3, 4, 5, 0)
    defaults = settings_from(Options())
    assert (defaults.max_rate, defaults.max_per_address, defaults.max_realms,
            defaults.login_timeout, defaults.idle_timeout) == (20, 64, 10000, 60, 900)


def test_nothing_is_heard_after_leaving_in_the_same_packet(server: Any) -> None:
    arya, bran = join(server(), "Arya", "Bran")
    arya.send("--leave", "I am still here", "--who")
    assert arya.closed
    assert not [line for line in bran.lines() if line.startswith("Arya: ")]
    assert not any("In the realm" in line for line in arya.lines())
