"""Reading the Lord's line: options by number or word, actions by word."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realm import lore
from realm.decisions import (
    choice,
    forms,
    ing,
    named,
    named_action,
    number,
    picked,
    plain,
    read,
)

OFFERED = ("fight", "flee")


@pytest.mark.parametrize(("text", "index"), [
    ("1", 0), ("2", 1), ("2!", 1), (" 2", 1), ("1 - burn them", 0), ("1.", 0),
    ("2, and quickly", 1),
])
def test_an_option_by_number(text: str, index: int) -> None:
    assert number(text) == index
    assert choice(text, OFFERED) == index


@pytest.mark.parametrize("text", ["10", "1.5", "12 ravens", "3", "0", "", "one", "2,5"])
def test_numbers_that_are_not_a_pick(text: str) -> None:
    assert number(text) is None
    assert choice(text, OFFERED) is None


@pytest.mark.parametrize(("text", "index"), [
    ("fight", 0), ("we go fighting", 0), ("FLEE!", 1), ("Fleeing.", 1),
    ("then flee, and fight later", 1),  # the first offered word counts
    ("burn it all, then fight", 0),  # an action not offered is passed over
])
def test_an_option_by_word_in_either_form_and_any_case(text: str, index: int) -> None:
    assert choice(text, OFFERED) == index
    assert choice(text, ("fighting", "fleeing")) == index  # options as an event offers them


@pytest.mark.parametrize("text", ["fighter", "fights", "reflee", "burn them", "", "hmm"])
def test_no_offered_word_no_choice(text: str) -> None:
    assert choice(text, OFFERED) is None


def test_picked_says_the_word_back_as_written() -> None:
    assert picked("we go FIGHTING", OFFERED) == (0, "FIGHTING")
    assert picked("2", ("burning", "fleeing")) == (1, "fleeing")
    assert picked("1", ()) is None  # no event yet: nothing to pick


def test_an_offered_word_that_is_no_action_is_taken_as_it_stands() -> None:
    assert choice("dancing it is", ("dancing", "sleeping")) == 0
    assert choice("we dance", ("dancing", "sleeping")) is None


@pytest.mark.parametrize(("text", "action"), [
    ("we shall eat tonight", "eat"), ("EATING all day", "eat"), ("Eat!", "eat"),
    ("time for wedding", "wed"), ("Let us parley.", "parley"), ("pay them", "pay"),
    ("bribing is beneath us", "bribe"), ("ration, then feast", "ration"),
])
def test_an_action_named(text: str, action: str) -> None:
    assert named_action(text) == action


@pytest.mark.parametrize("text", ["great", "eaten", "beat them", "sweating", "hunter", "",
                                  "1", "What?"])
def test_only_whole_words_of_actions_count(text: str) -> None:
    assert named_action(text) is None
    assert named(text) is None


def test_named_gives_the_word_as_spoken_and_its_action() -> None:
    assert named("Let us go WEDDING") == ("WEDDING", "wed")


def test_every_action_is_known_in_both_forms() -> None:
    table = forms(lore.ACTIONS)
    for action in lore.ACTIONS:
        assert table[action] == action
        assert table[ing(action)] == action
        assert plain(ing(action).upper()) == action
        assert named_action(f"I say {ing(action).capitalize()}!") == action


@given(st.text(max_size=60))
def test_any_text_reads_as_an_option_or_none(text: str) -> None:
    assert choice(text, OFFERED) in (None, 0, 1)
    found = named_action(text)
    assert found is None or found in lore.ACTIONS


WORDS = st.lists(st.sampled_from([*lore.ACTIONS, *lore.ING.values(), "1", "2", "10", "the",
                                  "dancing", "FIGHT", "-", "!", " ", "--fight", "x-fight",
                                  "Flee-", "-", "\u212adrink", "\u0130", "\ud800", "dr\u00efnk",
                                  "\t"]), max_size=8)
#: Any text, lone surrogates too (a line decoded with `surrogateescape`).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)


@pytest.mark.parametrize(("text", "read_as"), [
    ("--fight them", (0, None)),  # a word starts at its first letter
    ("x-fight, then FLEEING", (1, None)),  # `x-fight` is one word, and no action
    ("\u212adrink, \u0130 say", (None, "drink")),  # `\u212a` lowers to `k`, but is no letter
    ("we dr\u00efnk and burn", (None, "burn")),
    ("\ud800ride now", (None, "ride")),  # a lone surrogate is no letter either
    ("Riding-- burning", (None, "burn")),
])
def test_what_one_pass_makes_of_odd_words(text: str, read_as: tuple[int | None, str | None]
                                          ) -> None:
    index = choice(text, OFFERED)
    assert read(text, OFFERED) == read_as == (index, None if index is not None
                                              else named_action(text))


@given(st.one_of(WORDS.map("".join), WORDS.map(" ".join), ANY_TEXT),
       st.sampled_from([OFFERED, ("burning", "fleeing"), ("dancing", "eat"), ("pay",),
                        ("Drink", "x-fight")]))
def test_one_pass_reads_as_the_two_readers_do(text: str, options: tuple[str, ...]) -> None:
    index = choice(text, options)
    assert read(text, options) == (index, named_action(text) if index is None else None)
