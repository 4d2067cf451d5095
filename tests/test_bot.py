"""The bot's brain, without sockets: lines in, replies out."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realm import lore
from realm.bot import Bot, Reply, Temper

EVENT = (
    "*** [New Event] Arya brings word: There is a sudden attack from the "
    "north! What shall we do, my Lord? 1 burning or 2 fleeing?"
)


def make_bot(seed: int = 1, **temper: int) -> Bot:
    return Bot(random.Random(seed), Temper(**temper))


def test_answers_only_the_lord() -> None:
    bot = make_bot()
    assert bot.hear("Arya: eat") is None
    assert bot.hear("*** Lord: eat") is None
    assert bot.hear("*** Arya has entered the realm (2/5)") is None
    assert bot.hear("Lordship: eat") is None
    assert bot.hear("Lord: eat") is not None


def test_known_action_wins_approval_and_says_the_word_back() -> None:
    bot = make_bot()
    reply = bot.hear("Lord: we shall eat tonight")
    assert reply is not None
    assert reply.text in {t.format(word="eat") for t in lore.APPROVAL}
    assert not reply.leaves
    assert bot.loyalty == Temper().loyalty + Temper().approval


@pytest.mark.parametrize(
    ("text", "word"),
    [("EATING all day", "EATING"), ("Eat!", "Eat"), ("go and wed her", "wed"),
     ("time for wedding", "wedding"), ("Let us parley.", "parley")],
)
def test_word_or_ing_form_in_any_case(text: str, word: str) -> None:
    reply = make_bot().hear("Lord: " + text)
    assert reply is not None
    assert reply.text in {t.format(word=word) for t in lore.APPROVAL}


@pytest.mark.parametrize("text", ["great", "eaten", "beat them", "sweating", "hunter", ""])
def test_only_whole_words_count(text: str) -> None:
    bot = make_bot()
    reply = bot.hear("Lord: " + text)
    assert reply is not None
    assert reply.text in lore.DISTASTE
    assert bot.loyalty == Temper().loyalty - Temper().distaste


@pytest.mark.parametrize(("text", "word"), [("1", "burning"), ("2", "fleeing"), (" 2!", "fleeing"),
                                            ("1 - burn them all", "burning"),
                                            ("we FLEE", "FLEE"), ("burning it is", "burning"),
                                            ("Fleeing.", "Fleeing")])
def test_picking_an_offered_option_delights(text: str, word: str) -> None:
    bot = make_bot()
    assert bot.hear(EVENT) is None
    reply = bot.hear("Lord: " + text)
    assert reply is not None
    assert reply.text in {t.format(word=word) for t in lore.DELIGHT}
    assert bot.loyalty == Temper().loyalty + Temper().delight


def test_delight_pleases_more_than_any_other_action() -> None:
    picked, other = make_bot(), make_bot()
    picked.hear(EVENT)
    other.hear(EVENT)
    picked.hear("Lord: 1")
    other.hear("Lord: eat")
    assert picked.loyalty > other.loyalty


@pytest.mark.parametrize("text", ["10", "1.5", "12 ravens", "3"])
def test_numbers_that_are_not_a_pick(text: str) -> None:
    bot = make_bot()
    bot.hear(EVENT)
    reply = bot.hear("Lord: " + text)
    assert reply is not None and reply.text in lore.DISTASTE


def test_numbers_before_any_event_are_unheard_of() -> None:
    reply = make_bot().hear("Lord: 1")
    assert reply is not None and reply.text in lore.DISTASTE


def test_the_last_event_sets_the_options() -> None:
    bot = make_bot()
    bot.hear(EVENT)
    bot.hear("*** [New Event] A raven: Dragons! 1 hide or 2 praying?")
    assert bot.options == ("hide", "praying")
    reply = bot.hear("Lord: pray")
    assert reply is not None and reply.text in {t.format(word="pray") for t in lore.DELIGHT}
    reply = bot.hear("Lord: burn")
    assert reply is not None and reply.text in {t.format(word="burn") for t in lore.APPROVAL}


def test_loyalty_is_capped() -> None:
    bot = make_bot(loyalty=2, most=3)
    for _ in range(5):
        bot.hear("Lord: eat")
    assert bot.loyalty == 3


def test_at_zero_the_bot_deserts_and_then_falls_silent() -> None:
    bot = make_bot(loyalty=2)
    first = bot.hear("Lord: dance")
    assert first is not None and not first.leaves
    last = bot.hear("Lord: dance again")
    assert last is not None and last.leaves
    assert last.text in lore.DESERTION
    assert bot.hear("Lord: eat") is None


def test_same_seed_same_words() -> None:
    lines = ["Lord: eat", "Lord: what", EVENT, "Lord: 2", "Lord: ride"]
    assert [make_bot(7).hear(x) for x in lines] == [make_bot(7).hear(x) for x in lines]


def test_replies_vary_between_bots() -> None:
    texts = {make_bot(seed).hear("Lord: eat") for seed in range(30)}
    assert len(texts) > 1


@pytest.mark.parametrize("temper", [{"loyalty": 0}, {"loyalty": 5, "most": 4},
                                    {"delight": 1, "approval": 1}, {"distaste": 0}])
def test_nonsense_temper_is_refused(temper: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Temper(**temper)


@given(st.lists(st.text(max_size=40), max_size=30), st.integers(0, 2**32))
def test_at_most_one_reply_per_lord_line(texts: list[str], seed: int) -> None:
    bot = make_bot(seed)
    for text in texts:
        reply = bot.hear("Lord: " + text)
        assert reply is None or isinstance(reply, Reply)
        assert 0 <= bot.loyalty <= bot.temper.most
        if reply is None:
            assert bot.deserted


@pytest.mark.parametrize("seed", range(20))
def test_reads_the_options_of_the_servers_events(seed: int) -> None:
    from realm.events import draw_event

    bot = make_bot(seed)
    bot.hear("*** " + draw_event(random.Random(seed), ["Arya", "Bran"]))
    assert len(bot.options) == 2
    reply = bot.hear("Lord: 2")
    assert reply is not None
    assert reply.text in {t.format(word=bot.options[1]) for t in lore.DELIGHT}
