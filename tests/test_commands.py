"""The command table: dispatch, `--help`, "did you mean", who may do what.

No sockets: a fake session stands in for the connection.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred, fail
from twisted.logger import formatEvent

from realm import commands, wire
from realm.chronicle import ChronicleError
from realm.realm import Realm, RealmError
from realm.records import ReignRecord
from realm.testing import FakeChronicle, FakeMember


@pytest.fixture
def realm() -> Realm:
    return Realm("westeros", 5, task.Clock(), 30.0, random.Random(1), lambda r: None)


def seat(realm: Realm, *names: str) -> list[FakeMember]:
    members = []
    for name in names:
        m = FakeMember(name)
        realm.add(m)
        m.received = b""
        members.append(m)
    return members


def run(realm: Realm, member: FakeMember, line: str) -> None:
    commands.run(member, realm, line)


def test_help_lists_every_command_from_the_table(realm: Realm) -> None:
    (arya,) = seat(realm, "Arya")
    run(realm, arya, "--help")
    lines = arya.lines()
    assert len(lines) > len(commands.COMMANDS)
    assert all(line.startswith("*** ") for line in lines)
    for name in ("--help", "--who", "--dismiss", "--leave"):
        assert any(name in line for line in lines), name
    assert any("--dismiss" in line and "Lord" in line for line in lines)
    assert lines[-1] == "*** The Lord decides an event by sending 1 or 2, or the option's word."


@pytest.mark.parametrize("line", ["--WHO", "--Who", "--who ", "-- who"])
def test_commands_are_case_insensitive(realm: Realm, line: str) -> None:
    (arya,) = seat(realm, "Arya")
    run(realm, arya, line)
    assert arya.lines() == ["*** In the realm 'westeros' (1/5): Arya"]


def test_who_lists_members_and_count(realm: Realm) -> None:
    lord, arya = seat(realm, "Lord", "Arya")
    run(realm, arya, "--who")
    (line,) = arya.lines()
    assert line.startswith("*** ") and "Lord" in line and "Arya" in line
    assert "2/5" in line


def test_leave_hands_over_to_the_session(realm: Realm) -> None:
    (arya,) = seat(realm, "Arya")
    run(realm, arya, "--leave")
    assert arya.left


@pytest.mark.parametrize(("typed", "closest"), [
    ("--dimiss arya", "--dismiss"),
    ("--dismis", "--dismiss"),
    ("--DISMIS", "--dismiss"),
    ("--hlep", "--help"),
    ("--leav", "--leave"),
    ("--wh", "--who"),
])
def test_unknown_command_names_the_closest_and_the_list(
        realm: Realm, typed: str, closest: str) -> None:
    (arya,) = seat(realm, "Arya")
    with pytest.raises(RealmError) as caught:
        run(realm, arya, typed)
    why = str(caught.value)
    assert f"Did you mean {closest}?" in why
    assert typed.split()[0] in why
    for name in ("--help", "--who", "--dismiss", "--leave"):
        assert name in why


@pytest.mark.parametrize("typed", ["--", "--!!", "--x" * 400])
def test_any_unknown_command_gets_a_suggestion(realm: Realm, typed: str) -> None:
    (arya,) = seat(realm, "Arya")
    with pytest.raises(RealmError, match=r"Did you mean --\w+\?"):
        run(realm, arya, typed)


def test_dismiss_by_the_lord(realm: Realm) -> None:
    lord, arya, bran = seat(realm, "Lord", "Arya", "Bran")
    run(realm, lord, "--dismiss ARYA")
    assert arya.closed
    assert lord.lines()[-1] == "*** You have dismissed Arya, 2/5 left on your team."
    assert "Arya has been dismissed" in bran.lines()[0]


@pytest.mark.parametrize(("line", "why"), [
    ("--dismiss", "Whom"),
    ("--dismiss   ", "Whom"),
    ("--dismiss lord", "yourself"),
    ("--dismiss Nobody", "There is no one in the realm named 'Nobody'."),
])
def test_dismiss_refusals_change_nothing(realm: Realm, line: str, why: str) -> None:
    lord, arya = seat(realm, "Lord", "Arya")
    with pytest.raises(RealmError, match=why):
        run(realm, lord, line)
    assert realm.count == "2/5" and not arya.closed and not lord.closed
    assert arya.received == b""


def test_only_the_lord_may_dismiss(realm: Realm) -> None:
    lord, arya, bran = seat(realm, "Lord", "Arya", "Bran")
    with pytest.raises(RealmError, match="Only the Lord"):
        run(realm, arya, "--dismiss Bran")
    assert realm.count == "3/5" and not bran.closed


class Unreadable(FakeChronicle):
    """A chronicle whose reads fail, as a database that went away."""

    def best(self, limit: int = 5) -> Deferred[list[ReignRecord]]:
        return fail(ChronicleError("cannot read the chronicle sqlite:x: disk I/O error"))


def test_a_chronicle_that_cannot_be_read_is_said_and_logged_in_one_line(
        events: list[dict[str, Any]]) -> None:
    clock = task.Clock()
    realm = Realm("westeros", 5, clock, 30.0, random.Random(1), lambda r: None,
                  chronicle=Unreadable())
    (arya,) = seat(realm, "Arya")
    for _ in range(3):  # asked again and again: one log line a minute
        run(realm, arya, "--chronicle")
    assert arya.lines() == [wire.CHRONICLE_FAILED.notice().decode().rstrip()] * 3
    clock.advance(60)
    logged = [formatEvent(e) for e in events if "Reading the chronicle" in formatEvent(e)]
    said = "Reading the chronicle for --chronicle failed: cannot read the chronicle " \
        "sqlite:x: disk I/O error"
    assert logged == [said, f"2 such lines since the last, the last: {said}"]
