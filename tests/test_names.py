"""Name rules: what a join line may say, and how names are stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realm.names import JoinError, normalise, parse_join


@pytest.mark.parametrize(("line", "expected"), [
    ("ramsey", ("Ramsey", "westeros")),
    ("LORD", ("Lord", "westeros")),
    ("lord", ("Lord", "westeros")),
    ("mcDonald", ("Mcdonald", "westeros")),
    ("  arya  ", ("Arya", "westeros")),
    ("arya@North", ("Arya", "north")),
    ("arya @ north ", ("Arya", "north")),
    ("a", ("A", "westeros")),
    ("Grey-Worm_2", ("Grey-worm_2", "westeros")),
    ("x" * 20, ("X" + "x" * 19, "westeros")),
])
def test_good_join_lines(line: str, expected: tuple[str, str]) -> None:
    assert parse_join(line, "westeros") == expected


@pytest.mark.parametrize("line", [
    "",
    "   ",
    "x" * 21,
    "1arya",
    "_arya",
    "-arya",
    "ar ya",
    "ar:ya",
    "Lord: hi",
    "Ærya",
    "arya@",
    "arya@1north",
    "arya@no rth",
    "arya@" + "n" * 21,
    "@north",
    "arya@north@south",
])
def test_bad_join_lines_say_why(line: str) -> None:
    with pytest.raises(JoinError) as caught:
        parse_join(line, "westeros")
    assert str(caught.value)  # the reason the client is told


def test_a_bad_name_is_named_in_the_reason() -> None:
    with pytest.raises(JoinError, match="'1arya' is not a valid name"):
        parse_join("1arya", "westeros")
    with pytest.raises(JoinError, match="not a valid realm name"):
        parse_join("arya@no rth", "westeros")


_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,19}", fullmatch=True)


@given(_NAMES)
def test_any_valid_name_is_stored_capitalised(name: str) -> None:
    stored, realm = parse_join(name, "westeros")
    assert stored == name[0].upper() + name[1:].lower()
    assert realm == "westeros"
    assert normalise(stored) == stored  # idempotent


@given(_NAMES, _NAMES)
def test_realms_are_case_insensitive(name: str, realm: str) -> None:
    assert parse_join(f"{name}@{realm}", "x")[1] == realm.lower()
    assert parse_join(f"{name}@{realm.upper()}", "x")[1] == realm.lower()


def test_every_name_in_the_bots_pool_survives_the_servers_capitalisation() -> None:
    """A bot knows itself by its name: the server must store it as written."""
    from realm import lore

    for name in lore.NAMES:
        assert parse_join(name, "westeros") == (name, "westeros"), name
    assert len(set(lore.NAMES)) == len(lore.NAMES)


@pytest.mark.parametrize("name", ["Lord_", "L0rd", "lord-", "LORD2", "l0rd_", "Lord1", "L0rd45"])
def test_names_that_would_read_as_the_lord_are_refused(name: str) -> None:
    with pytest.raises(JoinError, match="would read as the Lord"):
        parse_join(name, "westeros")


@pytest.mark.parametrize("name", ["Lordly", "Lorde", "Warlord", "Lords"])
def test_names_that_only_begin_like_lord_are_fine(name: str) -> None:
    assert parse_join(name, "westeros")[0] == name.capitalize()
