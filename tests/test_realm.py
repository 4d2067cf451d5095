"""One realm's membership and game, and the server's registry of realms,
with fake members and a `task.Clock`: no sockets."""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet import task
from twisted.python.failure import Failure

from realm import wire
from realm.names import JoinError
from realm.realm import Realm, RealmError
from realm.server import RealmServer, Settings
from realm.testing import FakeMember

EVENT = b"*** [New Event] "


class Member(FakeMember):
    """A member as a realm sees it; remembers what it was sent."""

    def events(self) -> int:
        return self.received.count(EVENT)


class Game:
    """A realm, its clock, and what became of it."""

    def __init__(self, size: int = 5, event_wait: float = 30.0) -> None:
        self.clock = task.Clock()
        self.emptied: list[Realm] = []
        self.realm = Realm("westeros", size, self.clock, event_wait,
                           random.Random(1), self.emptied.append)

    def join(self, *names: str) -> list[Member]:
        members = [Member(n) for n in names]
        for m in members:
            self.realm.add(m)
        return members

    def full(self) -> tuple[Member, list[Member]]:
        """Fill the realm: a Lord and size - 1 others; clear their inboxes."""
        others = self.join(*["Arya", "Bran", "Cersei", "Davos", "Edd",
                             "Gilly", "Hodor"][: self.realm.size - 1])
        (lord,) = self.join("Lord")
        for m in [lord, *others]:
            m.take()
        return lord, others


# -- joining -------------------------------------------------------------------
def test_every_member_hears_of_each_join_with_the_count() -> None:
    game = Game()
    arya, bran = game.join("Arya", "Bran")
    entered = [line for line in arya.lines() if "entered" in line]
    assert entered == ["*** Arya has entered the realm (1/5)",
                       "*** Bran has entered the realm (2/5)"]
    assert bran.lines()[0] == "*** Bran has entered the realm (2/5)"
    assert "Arya" not in bran.received.decode()


def test_names_are_unique_case_insensitively() -> None:
    game = Game()
    game.join("Arya")
    with pytest.raises(JoinError, match="taken"):
        game.realm.add(Member("Arya"))
    with pytest.raises(JoinError, match="taken"):
        game.realm.check("ARYA".capitalize())
    assert game.realm.count == "1/5"


def test_one_lord_per_realm() -> None:
    game = Game()
    game.join("Lord")
    with pytest.raises(JoinError, match="already has a Lord"):
        game.realm.add(Member("Lord"))
    assert game.realm.count == "1/5"


def test_the_last_seat_is_kept_for_the_lord() -> None:
    game = Game(size=3)
    game.join("Arya", "Bran")
    with pytest.raises(JoinError, match="kept for its Lord"):
        game.realm.add(Member("Cersei"))
    game.join("Lord")
    assert game.realm.full


def test_a_full_realm_refuses_anyone() -> None:
    game = Game(size=2)
    game.join("Lord", "Arya")
    for name in ("Bran", "Lord"):
        with pytest.raises(JoinError):
            game.realm.add(Member(name))
    assert game.realm.count == "2/2"


def test_a_lord_may_come_first_and_others_fill_every_seat() -> None:
    game = Game(size=3)
    game.join("Lord", "Arya", "Bran")
    assert game.realm.full


# -- the game ------------------------------------------------------------------
def test_when_full_everyone_gets_the_banner_then_the_first_event() -> None:
    game = Game(size=3)
    arya, bran = game.join("Arya", "Bran")
    assert arya.events() == 0
    (lord,) = game.join("Lord")
    for m in (arya, bran, lord):
        lines = m.lines()
        assert lines[-3] == "*** Lord has entered the realm (3/3)"
        assert "Welcome to the Game of Thrones" in lines[-2]
        assert "3/3" in lines[-2] and "--help" in lines[-2]
        assert lines[-1].startswith("*** [New Event] ")
    assert lord.lines()[-1] == arya.lines()[-1]


def test_chat_is_relayed_to_the_others_stamped_with_the_name() -> None:
    game = Game()
    arya, bran, lord = game.join("Arya", "Bran", "Lord")
    for m in (arya, bran, lord):
        m.take()
    game.realm.chat(arya, b"Lord: I am the Lord now")
    assert arya.lines() == []
    assert bran.lines() == ["Arya: Lord: I am the Lord now"]
    assert lord.lines() == ["Arya: Lord: I am the Lord now"]


def test_those_who_heard_a_line_already_are_not_sent_it_again() -> None:
    """realm.relay: members of one process hear each other there first."""
    game = Game()
    lord, (arya, bran, cersei, davos) = game.full()
    game.realm.chat(arya, b"Winter is coming", heard=[bran])
    assert bran.take() == []
    assert lord.take() == cersei.take() == davos.take() == ["Arya: Winter is coming"]
    game.realm.chat(lord, b"1")
    for m in (arya, bran, cersei):
        game.realm.chat(m, b"aye")
    for m in (lord, arya, bran, cersei, davos):
        m.take()
    game.realm.chat(davos, b"aye", heard=[cersei])  # the last answer
    news = cersei.take()
    assert [line.split("]")[0] for line in news] == ["*** [Realm", "*** [New Event"]
    assert lord.take() == ["Davos: aye", *news]


def test_no_event_without_a_decision() -> None:
    game = Game()
    lord, others = game.full()
    for m in others:
        game.realm.chat(m, b"an answer before any decision")
    game.clock.advance(3600)
    assert [m.events() for m in (lord, *others)] == [0] * 5


def test_no_decision_while_gathering() -> None:
    game = Game()
    lord, arya = game.join("Lord", "Arya")
    game.realm.chat(lord, b"eat")
    game.realm.chat(arya, b"eat!")
    game.clock.advance(3600)
    assert lord.events() == arya.events() == 0


def test_next_event_once_every_other_member_has_answered() -> None:
    game = Game()
    lord, others = game.full()
    game.realm.chat(lord, b"1")
    for m in others[:-1]:
        game.realm.chat(m, b"aye")
        game.realm.chat(m, b"aye again")  # one member answering twice
    assert lord.events() == 0
    game.realm.chat(lord, b"the Lord speaking again decides nothing")
    assert lord.events() == 0
    game.realm.chat(others[-1], b"aye")
    assert [m.events() for m in (lord, *others)] == [1] * 5
    # and the next one needs a new decision
    for m in others:
        game.realm.chat(m, b"more")
    game.clock.advance(3600)
    assert lord.events() == 1


def test_next_event_after_event_wait_when_someone_is_silent() -> None:
    game = Game(event_wait=2.5)
    lord, others = game.full()
    game.realm.chat(lord, b"2")
    game.realm.chat(others[0], b"aye")
    game.clock.advance(2.4)
    assert lord.events() == 0
    game.clock.advance(0.1)
    assert [m.events() for m in (lord, *others)] == [1] * 5
    game.clock.advance(3600)
    assert lord.events() == 1


def test_answers_before_the_wait_cancel_the_timer() -> None:
    game = Game(event_wait=10)
    lord, others = game.full()
    game.realm.chat(lord, b"1")
    for m in others:
        game.realm.chat(m, b"aye")
    assert lord.events() == 1
    game.realm.chat(lord, b"2")
    game.clock.advance(5)
    assert lord.events() == 1  # the first wait's timer did not fire early
    game.clock.advance(5)
    assert lord.events() == 2
    assert game.clock.getDelayedCalls() == []


def test_a_member_who_leaves_no_longer_holds_up_the_game() -> None:
    game = Game()
    lord, others = game.full()
    game.realm.chat(lord, b"1")
    for m in others[:-1]:
        game.realm.chat(m, b"aye")
    game.realm.remove(others[-1])
    assert lord.events() == 1


def test_a_newcomer_to_a_game_in_play_gets_the_banner_and_the_event() -> None:
    game = Game(size=3)
    lord, (arya, bran) = game.full()
    game.realm.remove(bran)
    (cersei,) = game.join("Cersei")
    lines = cersei.lines()
    assert lines[0] == "*** Cersei has entered the realm (3/3)"
    assert "Welcome to the Game of Thrones" in lines[1]
    assert lines[2].startswith("*** [New Event] ")
    assert lord.events() == arya.events() == 0  # no new event for the others
    # The others are reminded of the event the Lord has still to decide.
    (event,) = [line for line in lines if line.startswith("*** [New Event] ")]
    options = wire.event_options(event)
    assert options is not None
    reminder = (f"*** The realm is full again: the event in play awaits the Lord's decision "
                f"(1 {options[0]} or 2 {options[1]}).")
    assert lord.lines()[-1] == arya.lines()[-1] == reminder


def test_a_newcomer_to_a_decided_event_brings_no_reminder() -> None:
    game = Game(size=3)
    lord, (arya, bran) = game.full()
    game.realm.chat(lord, b"1")
    game.realm.remove(bran)
    game.join("Cersei")
    assert not [line for line in lord.lines() + arya.lines() if "full again:" in line]


# -- commands on the realm -----------------------------------------------------
def test_who_lists_the_members_and_the_count() -> None:
    game = Game()
    game.join("Lord", "Arya")
    who = game.realm.who().decode()
    assert "2/5" in who and "Lord" in who and "Arya" in who


def test_the_lord_dismisses_a_member_in_any_case() -> None:
    game = Game()
    lord, others = game.full()
    arya = others[0]
    game.realm.dismiss(lord, "aRYA")
    assert arya.closed
    assert "dismissed" in arya.lines()[-1]
    # The Lord hears the contract's phrase first, and not the others' news.
    assert lord.lines() == [
        "*** You have dismissed Arya, 4/5 left on your team.",
        "*** The Lord's next decision waits until the realm is full again.",
    ]
    for m in others[1:]:
        assert m.lines()[0] == "*** Arya has been dismissed by the Lord (4/5)"
    assert "Arya" not in game.realm.who().decode()


@pytest.mark.parametrize(("name", "why"), [
    ("", "Whom"),
    ("Lord", "yourself"),
    ("Nobody", "There is no one in the realm named 'Nobody'."),
    ("nObody", "There is no one in the realm named 'nObody'."),
])
def test_dismiss_refusals(name: str, why: str) -> None:
    game = Game()
    lord, others = game.full()
    with pytest.raises(RealmError, match=why):
        game.realm.dismiss(lord, name)
    assert game.realm.count == "5/5"
    assert not any(m.closed for m in (lord, *others))
    assert lord.lines() == [] and all(m.lines() == [] for m in others)


def test_only_the_lord_may_dismiss() -> None:
    game = Game()
    lord, (arya, bran, *_) = game.full()
    with pytest.raises(RealmError, match="Only the Lord"):
        game.realm.dismiss(arya, "Bran")
    assert not bran.closed and game.realm.count == "5/5"


# -- endings -------------------------------------------------------------------
def test_a_member_leaving_is_announced_with_the_count() -> None:
    game = Game()
    lord, others = game.full()
    game.realm.remove(others[0])
    told = lord.take()
    assert told[0] == "*** Arya has left the realm (4/5)"
    assert others[1].take() == told
    game.realm.remove(others[0])  # twice is harmless
    assert lord.take() == []


def test_the_lord_is_told_when_alone() -> None:
    game = Game(size=3)
    lord, (arya, bran) = game.full()
    game.realm.remove(arya)
    game.realm.remove(bran)
    assert "alone" in lord.lines()[-1]


def test_the_lord_leaving_ends_the_realm_for_everyone() -> None:
    game = Game(event_wait=5)
    lord, others = game.full()
    game.realm.chat(lord, b"1")  # a timer is pending
    game.realm.remove(lord)
    for m in (lord, *others):
        assert "The Lord has left the realm" in m.lines()[-1]
    assert all(m.closed for m in others)
    assert game.emptied == [game.realm]
    assert game.realm.members == {}
    assert game.clock.getDelayedCalls() == []


def test_the_realm_is_emptied_when_its_last_member_goes() -> None:
    game = Game()
    arya, bran = game.join("Arya", "Bran")
    game.realm.remove(arya)
    assert game.emptied == []
    game.realm.remove(bran)
    assert game.emptied == [game.realm]


# -- the server's registry of realms ---------------------------------------------
class Seat(Member):
    """What the server seats: a member with a name set before joining."""

    address = "192.0.2.1"


def join(server: RealmServer, member: Seat, key: str) -> Realm:
    """The realm `server` seats `member` in (its Deferred fires at once)."""
    results: list[Any] = []
    server.join(member, key).addBoth(results.append)  # type: ignore[arg-type]
    (result,) = results
    if isinstance(result, Failure):
        result.raiseException()
    return result.realm  # type: ignore[no-any-return]


def test_realms_are_created_on_first_join_and_discarded_when_empty() -> None:
    server = RealmServer(Settings(), task.Clock(), rng=random.Random(1))
    arya, bran = Seat("Arya"), Seat("Bran")
    north = join(server, arya, "north")
    south = join(server, bran, "south")
    assert north is not south
    assert set(server.realms) == {"north", "south"}
    north.remove(arya)
    south.remove(bran)
    assert server.realms == {}


def test_a_realm_whose_lord_left_is_free_for_a_new_game() -> None:
    server = RealmServer(Settings(size=2), task.Clock(), rng=random.Random(1))
    lord, arya = Seat("Lord"), Seat("Arya")
    old = join(server, lord, "westeros")
    join(server, arya, "westeros")
    old.remove(lord)
    assert server.realms == {}
    new_lord, new_arya = Seat("Lord"), Seat("Arya")
    new = join(server, new_lord, "westeros")
    join(server, new_arya, "westeros")
    assert new is not old and new.full and new_lord.events() == 1


def test_a_long_running_server_holds_only_the_realms_in_play() -> None:
    server = RealmServer(Settings(size=2), task.Clock(), rng=random.Random(1))
    for i in range(300):
        lord, other = Seat("Lord"), Seat(f"Bot{i}")
        realm = join(server, lord, f"realm{i % 7}")
        join(server, other, f"realm{i % 7}")
        realm.remove(other if i % 2 else lord)
        realm.remove(lord)
    assert server.realms == {}


def test_the_realm_limit() -> None:
    server = RealmServer(Settings(max_realms=2), task.Clock())
    join(server, Seat("Arya"), "a")
    join(server, Seat("Arya"), "b")
    with pytest.raises(JoinError, match="limit"):
        join(server, Seat("Arya"), "c")
    join(server, Seat("Bran"), "a")
