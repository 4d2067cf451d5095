"""realm.relay without Redis: what one reactor turn's ops become as
messages, what happens to them when Redis cannot be reached, and chat
between two members of one process whose realm runs on another.  The
cluster tests (test_cluster*.py) carry them through a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure

from realm import leases, logs
from realm.redis import RedisLink, RedisURL, Unreachable
from realm.relay import Neighbours, Relay, RemoteSeat, Tables, decode
from realm.server import Player
from realm.testing import FakeMember, eventually


class Published:
    """A `publish` that keeps what it is given, or fails while `down`."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.down = False

    def __call__(self, channel: bytes, payload: bytes) -> None:
        if self.down:
            raise Unreachable("Redis at redis://127.0.0.1:1/0 cannot be reached")
        self.messages.append((channel, payload))


def relay() -> tuple[Relay, Clock, Published]:
    clock, published = Clock(), Published()
    return Relay(clock, "me", published), clock, published


def test_one_message_per_process_per_turn() -> None:
    r, clock, published = relay()
    line = b"Arya: Winter is coming\r\n"
    r.deliver("b", 1, line)
    r.deliver("b", 2, line)  # the same broadcast: one op for both
    r.send("c", ["line", 7, "Aye"])
    r.deliver("b", 3, b"*** Bran has left the realm (2/5)\r\n")
    assert published.messages == []  # held until the turn ends
    clock.advance(0)
    by_channel = dict(published.messages)
    assert set(by_channel) == {leases.channel("b").encode(), leases.channel("c").encode()}
    assert decode(by_channel[leases.channel("b").encode()]) == ("me", [
        ["send", [1, 2], "Arya: Winter is coming\r\n"],
        ["send", [3], "*** Bran has left the realm (2/5)\r\n"]])
    assert decode(by_channel[leases.channel("c").encode()]) == ("me", [["line", 7, "Aye"]])
    assert r.relayed == 3
    clock.advance(1)
    assert len(published.messages) == 2  # nothing more was held


@pytest_twisted.ensureDeferred
async def test_what_the_next_turn_brings_joins_the_message() -> None:
    """On the real reactor: an op sent in the turn after the first (a
    second answer read a moment later) leaves in the same message."""
    published = Published()
    r = Relay(reactor, "me", published)  # type: ignore[arg-type]
    r.send("b", ["line", 1, "first"])
    reactor.callLater(0, r.send, "b", ["line", 2, "second"])  # type: ignore[attr-defined]
    await eventually(lambda: published.messages, "the message")
    assert [decode(payload)[1] for _, payload in published.messages] == [
        [["line", 1, "first"], ["line", 2, "second"]]]


@pytest.mark.parametrize("payload", [
    b"null", b"5", b'"x"', b"[]", b'["node"]', b'["node", [5]]', b'["node", [[]]]',
    b'["node", [[["x"]]]]', b'["node", {}]', b'[1, []]', b"\xff", b"{", b"[" * 2000])
def test_a_message_not_realms_is_refused_whole(payload: bytes) -> None:
    """Anyone who can reach Redis may publish on a process's channel: what
    is not a realm message raises ValueError, which the cluster logs and
    ignores (anything else would drop its subscription, and every member
    shared with another process with it)."""
    with pytest.raises(ValueError):
        decode(payload)


def test_lines_for_an_unreachable_redis_are_dropped_not_kept() -> None:
    r, clock, published = relay()
    published.down = True
    r.send("b", ["line", 1, "lost"])
    clock.advance(0)  # logged, not raised: the cluster has let "b" go
    published.down = False
    r.send("b", ["line", 1, "heard"])
    clock.advance(0)
    assert [decode(payload)[1] for _, payload in published.messages] == [[["line", 1, "heard"]]]


def test_publishing_while_redis_is_out_of_reach_says_so() -> None:
    link = RedisLink(Clock(), RedisURL("127.0.0.1", 1), "realm:to:me",
                     lambda message: None, lambda: None, lambda: None)
    with pytest.raises(Unreachable, match="cannot be reached"):
        link.publish(leases.channel("b").encode(), b"[]")


def test_failed_tries_to_reach_redis_are_told_once_a_minute_until_it_is_back(
        events: list[dict[str, Any]]) -> None:
    clock = Clock()
    link = RedisLink(clock, RedisURL("127.0.0.1", 1), "realm:to:me",
                     lambda message: None, lambda: None, lambda: None)

    def told() -> list[str]:
        return [formatEvent(e) for e in events if "Redis at" in formatEvent(e)]

    for _ in range(70):  # a try a second for 70 s
        link._try_failed(Failure(ConnectionRefusedError("Connection refused")))
        clock.advance(1)
    link._try_failed(Failure(CancelledError()))  # the service stopping: nothing to tell
    assert told() == [
        "Cannot reach Redis at redis://127.0.0.1:1/0: Connection refused; trying again every "
        "second or so (1 try failed since the last such line)",
        "Cannot reach Redis at redis://127.0.0.1:1/0: Connection refused; trying again every "
        "second or so (60 tries failed since the last such line)"]
    link._commands, link._subscribed = object(), object()  # type: ignore[assignment]
    link._maybe_up()  # back: the next outage is told at once
    link._try_failed(Failure(ConnectionRefusedError("Connection refused")))
    assert told()[-1].endswith("(1 try failed since the last such line)")
    assert len(told()) == 4  # with "is reachable"


def test_twisteds_own_retry_lines_stay_out_of_the_log() -> None:
    written: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            written.append(text)

        def flush(self) -> None:
            pass

    observe = logs.observer(Out(), "text")  # type: ignore[arg-type]
    retry = {"log_format": "Scheduling retry {attempt} to connect {endpoint} in {delay} "
             "seconds.", "log_namespace": "twisted.application._client_service.ClientService",
             "log_level": LogLevel.info, "log_time": 0.0, "attempt": 1, "endpoint": "e",
             "delay": 1.0}
    observe(retry)
    observe(dict(retry, log_format="Lost Redis at {url}", log_namespace="realm.redis",
                 url="redis://x"))
    assert len(written) == 1 and "Lost Redis at redis://x" in written[0]


def seats(r: Relay, neighbours: Neighbours, *names: str
          ) -> tuple[list[FakeMember], list[RemoteSeat]]:
    """Members of one process seated in realm "north", which "owner" runs."""
    seated: dict[int, tuple[Player, RemoteSeat | None]] = {}
    members = [FakeMember(name) for name in names]
    return members, [RemoteSeat(r, seated, member, "owner", sid, "north", neighbours)
                     for sid, member in enumerate(members, start=1)]


def ops(published: Published) -> list[list[object]]:
    return [op for _, payload in published.messages for op in decode(payload)[1]]


def test_chat_between_members_of_one_process_goes_straight() -> None:
    r, clock, published = relay()
    (arya, bran, cersei), (a, b, c) = seats(r, Neighbours(), "Arya", "Bran", "Cersei")
    a.line(b"Winter is coming", "Winter is coming")
    assert arya.lines() == []
    assert bran.lines() == cersei.lines() == ["Arya: Winter is coming"]  # before any message
    b.line(b"--who", "--who")  # a command: the owner's to answer
    c.line(b"   ", "   ")  # blank: no one hears it
    clock.advance(0)
    assert ops(published) == [["line", 1, "Winter is coming", [2, 3]],
                              ["line", 2, "--who"], ["line", 3, "   "]]
    assert bran.lines() == cersei.lines() == ["Arya: Winter is coming"]


def test_a_shut_seat_neither_hears_nor_speaks_here() -> None:
    r, clock, published = relay()
    (arya, bran), (a, b) = seats(r, Neighbours(), "Arya", "Bran")
    b.shut()  # its member closed by the owner
    a.line(b"Hello", "Hello")
    b.line(b"Anyone?", "Anyone?")
    clock.advance(0)
    assert bran.lines() == [] and arya.lines() == []
    assert ops(published) == [["line", 1, "Hello"]]  # the owner knows Bran has gone


def test_lines_to_a_member_on_its_way_in_keep_going_through_the_owner() -> None:
    """Arya spoke while Bran's join was asked: the owner, which seats Bran
    before it reads Arya's line, sends Bran that line.  Arya's next lines
    must not overtake it: they reach Bran through the owner too."""
    r, clock, published = relay()
    neighbours = Neighbours()
    (arya, cersei), (a, c) = seats(r, neighbours, "Arya", "Cersei")
    neighbours.joining.add(7)
    a.line(b"Who comes?", "Who comes?")
    neighbours.joining.discard(7)  # the owner's answer: Bran is in
    bran = FakeMember("Bran")
    RemoteSeat(r, {}, bran, "owner", 7, "north", neighbours)
    a.line(b"Welcome", "Welcome")
    c.line(b"Aye", "Aye")
    clock.advance(0)
    assert bran.lines() == ["Cersei: Aye"]  # Cersei said nothing while Bran came
    assert cersei.lines() == ["Arya: Who comes?", "Arya: Welcome"]
    assert ops(published) == [["line", 1, "Who comes?", [2]], ["line", 1, "Welcome", [2]],
                              ["line", 2, "Aye", [1, 7]]]


def test_members_of_an_older_owner_hear_each_other_through_it() -> None:
    """An owner of an older release takes no list of who heard a line (it
    said no "near"): its members here hear each other through it, as then."""
    r, clock, published = relay()
    seated: dict[int, tuple[Player, RemoteSeat | None]] = {}
    arya, bran = FakeMember("Arya"), FakeMember("Bran")
    a = RemoteSeat(r, seated, arya, "owner", 1, "north", None)
    RemoteSeat(r, seated, bran, "owner", 2, "north", None)
    a.line(b"Winter is coming", "Winter is coming")
    clock.advance(0)
    assert bran.lines() == []
    assert ops(published) == [["line", 1, "Winter is coming"]]


def test_a_process_keeps_one_table_a_realm_while_it_is_used() -> None:
    tables = Tables()
    north = tables.of("owner", "north")
    assert tables.of("owner", "north") is north
    assert tables.of("owner", "south") is not north
    assert tables.of("other", "north") is not north  # a realm moved: another table
    north.joining.add(1)
    del north
    assert tables.of("owner", "north").joining == set()  # forgotten once unused


def test_a_process_forgets_the_owners_that_are_gone() -> None:
    tables = Tables()
    for owner in "abc":
        tables.near(owner)  # each said "near"
    tables.forget("a")
    assert tables.direct == {"b", "c"}
    tables.forget("x")  # never heard of: nothing to forget
    assert tables.direct == {"b", "c"}
    tables.forget(None)  # Redis lost: every process goes
    assert tables.direct == set()
