"""The command table: dispatch, `--help`, "did you mean", who may do what.

No sockets: a fake session stands in for the connection.
"""

from __future__ import annotations

import random

import pytest
from twisted.internet import task

from realm import commands
from realm.realm import Realm, RealmError


class FakeSession:
    """What a command handler uses of a session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = name.encode() + b": "
        self.realm: Realm | None = None
        self.received = b""
        self.closed = False
        self.left = False

    def send(self, data: bytes) -> None:
        self.received += data

    def close(self) -> None:
        self.closed = True

    def leave(self) -> None:
        self.left = True

    def lines(self) -> list[str]:
        return self.received.decode().split("\r\n")[:-1]


@pytest.fixture
def realm() -> Realm:
    return Realm("westeros", 5, task.Clock(), 30.0, random.Random(1), lambda r: None)


def seat(realm: Realm, *names: str) -> list[FakeSession]:
    sessions = []
    for name in names:
        s = FakeSession(name)
        realm.add(s)
        s.realm = realm
        s.received = b""
        sessions.append(s)
    return sessions


def run(session: FakeSession, line: str) -> None:
    commands.run(session, line)  # type: ignore[arg-type]


def test_help_lists_every_command_from_the_table(realm: Realm) -> None:
    (arya,) = seat(realm, "Arya")
    run(arya, "--help")
    lines = arya.lines()
    assert len(lines) > len(commands.COMMANDS)
    assert all(line.startswith("*** ") for line in lines)
    for name in ("--help", "--who", "--dismiss", "--leave"):
        assert any(name in line for line in lines), name
    assert any("--dismiss" in line and "Lord" in line for line in lines)


@pytest.mark.parametrize("line", ["--WHO", "--Who", "--who ", "-- who"])
def test_commands_are_case_insensitive(realm: Realm, line: str) -> None:
    (arya,) = seat(realm, "Arya")
    run(arya, line)
    assert arya.lines() == ["*** In the realm 'westeros' (1/5): Arya"]


def test_who_lists_members_and_count(realm: Realm) -> None:
    lord, arya = seat(realm, "Lord", "Arya")
    run(arya, "--who")
    (line,) = arya.lines()
    assert line.startswith("*** ") and "Lord" in line and "Arya" in line
    assert "2/5" in line


def test_leave_hands_over_to_the_session(realm: Realm) -> None:
    (arya,) = seat(realm, "Arya")
    run(arya, "--leave")
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
        run(arya, typed)
    why = str(caught.value)
    assert f"Did you mean {closest}?" in why
    assert typed.split()[0] in why
    for name in ("--help", "--who", "--dismiss", "--leave"):
        assert name in why


@pytest.mark.parametrize("typed", ["--", "--!!", "--x" * 400])
def test_any_unknown_command_gets_a_suggestion(realm: Realm, typed: str) -> None:
    (arya,) = seat(realm, "Arya")
    with pytest.raises(RealmError, match=r"Did you mean --\w+\?"):
        run(arya, typed)


def test_dismiss_by_the_lord(realm: Realm) -> None:
    lord, arya, bran = seat(realm, "Lord", "Arya", "Bran")
    run(lord, "--dismiss ARYA")
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
        run(lord, line)
    assert realm.count == "2/5" and not arya.closed and not lord.closed
    assert arya.received == b""


def test_only_the_lord_may_dismiss(realm: Realm) -> None:
    lord, arya, bran = seat(realm, "Lord", "Arya", "Bran")
    with pytest.raises(RealmError, match="Only the Lord"):
        run(arya, "--dismiss Bran")
    assert realm.count == "3/5" and not bran.closed
