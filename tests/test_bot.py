"""The bot's brain, without sockets: lines in, replies out."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realm import bot as bot_module
from realm import lore, wire
from realm.bot import FAVOUR, LEAVE, Bot, NamePool, Reply, Temper
from realm.reign import HOLDINGS, Deck, Reign

EVENT = (
    "*** [New Event] Arya brings word: There is a sudden attack from the "
    "north! What shall we do, my Lord? 1 burning or 2 fleeing?"
)


def replies(templates: tuple[str, ...], word: str) -> set[str]:
    """What a bot may say of `word`: each template, the word first, a capital."""
    return {t.format(word=word[:1].upper() + word[1:]) for t in templates}


def make_bot(seed: int = 1, **temper: int) -> Bot:
    return Bot(random.Random(seed), Temper(**temper))


def test_while_the_realm_waits_to_be_full_the_lord_decides_nothing() -> None:
    """The realm takes no decision while a seat is empty: the bot says so,
    its loyalty unmoved, until an entry fills the realm again."""
    bot = make_bot()
    bot.hear(EVENT)
    bot.hear(wire.DEPARTED.notice(name="Arya", gone=wire.LEFT_WHY, n=4, size=5).decode().rstrip())
    bot.hear(wire.PAUSED.notice().decode().rstrip())
    for text in ("1", "we shall eat", "hmm"):
        reply = bot.hear(f"Lord: {text}")
        assert reply is not None and reply.text in lore.PATIENCE and not reply.leaves
    assert bot.loyalty == Temper().loyalty
    bot.hear(wire.ENTERED.notice(name="Jon", n=4, size=5).decode().rstrip())  # not yet
    assert bot.hear("Lord: 1").text in lore.PATIENCE  # type: ignore[union-attr]
    bot.hear(wire.ENTERED.notice(name="Sam", n=5, size=5).decode().rstrip())
    assert bot.hear("Lord: 1").text in replies(lore.DELIGHT, "burning")  # type: ignore[union-attr]


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
    assert reply.text in replies(lore.APPROVAL, "eat")
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
    assert reply.text in replies(lore.APPROVAL, word)


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
    assert reply.text in replies(lore.DELIGHT, word)
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
    reply = bot.hear("Lord: burn")  # the first event's option: only an action now
    assert reply is not None and reply.text in replies(lore.APPROVAL, "burn")
    bot.hear("*** [New Event] A raven: Dragons again! 1 hide or 2 praying?")
    reply = bot.hear("Lord: pray")
    assert reply is not None and reply.text in replies(lore.DELIGHT, "pray")


def test_only_the_deciding_line_is_cheered() -> None:
    """The Lord's first line after an event decides it; an option or an
    action named after it is talk: a calm answer, loyalty unmoved (else a
    Lord could buy loyalty with "1" after "1").  Idle words still annoy."""
    bot = make_bot()
    bot.hear(EVENT)
    assert bot.hear("Lord: 1").text in replies(lore.DELIGHT, "burning")  # type: ignore[union-attr]
    loyal = bot.loyalty
    for text in ("1", "2", "fleeing!", "we feast"):
        assert bot.hear(f"Lord: {text}").text in lore.DECIDED  # type: ignore[union-attr]
    assert bot.loyalty == loyal
    assert bot.hear("Lord: hmm").text in lore.DISTASTE  # type: ignore[union-attr]
    assert bot.loyalty == loyal - 1
    bot.hear(EVENT)  # the next event: the next line decides again
    assert bot.hear("Lord: 2").text in replies(lore.DELIGHT, "fleeing")  # type: ignore[union-attr]


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
                                    {"delight": 1, "approval": 1}, {"distaste": 0},
                                    {"fortune": -1}, {"low": 60, "high": 60},
                                    {"low": -1}, {"high": 101}, {"steep": 0}])
def test_nonsense_temper_is_refused(temper: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Temper(**temper)


def _report(**values: int | tuple[int, int]) -> str:
    """A `[Realm]` line; a holding is its value, or (value, change)."""
    full = {h: values.get(h, 50) for h in HOLDINGS}
    pairs = {h: v if isinstance(v, tuple) else (v, 0) for h, v in full.items()}
    line = wire.report("It is done.", {h: v for h, (v, _) in pairs.items()},
                       {h: c for h, (_, c) in pairs.items()})
    return line.decode().rstrip("\r\n")


LINES = st.one_of(
    st.text(max_size=40).map(lambda t: "Lord: " + t),
    st.text(max_size=20).map(lambda t: "Arya: " + t),
    st.builds(lambda *v: _report(**dict(zip(HOLDINGS, v, strict=True))),
              *[st.tuples(st.integers(0, 100), st.integers(-30, 30))] * 4),
    st.sampled_from([EVENT, "*** [Reign Ended] Won: hurrah (12 events, score 900)",
                     "*** [Reign Ended] Fallen: no Food left (3 events, score 90)"]))


@given(st.lists(LINES, max_size=40), st.integers(0, 2**32))
def test_at_most_one_reply_per_lord_line(lines: list[str], seed: int) -> None:
    bot = make_bot(seed)
    for line in lines:
        was_deserted = bot.deserted
        reply = bot.hear(line)
        assert reply is None or isinstance(reply, Reply)
        assert 0 <= bot.loyalty <= bot.temper.most
        if line.startswith("Lord: ") and not was_deserted:
            assert reply is not None
        else:
            assert reply is None  # news and others' chat change moods, get no reply
        assert bot.deserted == (bot.loyalty == 0)


@pytest.mark.parametrize("seed", range(20))
def test_reads_the_options_of_the_reigns_events(seed: int) -> None:
    rng = random.Random(seed)
    line = Reign(rng, Deck(rng)).tell(["Arya", "Bran"]).decode().rstrip("\r\n")
    bot = make_bot(seed)
    bot.hear(line)
    assert len(bot.options) == 2
    reply = bot.hear("Lord: 1")
    assert reply is not None
    assert reply.text in replies(lore.DELIGHT, bot.options[0])


@pytest.mark.parametrize("seed", range(20))
def test_reads_the_options_of_the_servers_events(seed: int) -> None:
    from realm.reign import Deck, Reign

    bot = make_bot(seed)
    reign = Reign(random.Random(seed), Deck(random.Random(seed)))
    bot.hear(reign.tell(["Arya", "Bran"]).decode().rstrip("\r\n"))
    assert len(bot.options) == 2
    reply = bot.hear("Lord: 2")
    assert reply is not None
    assert reply.text in replies(lore.DELIGHT, bot.options[1])


# -- the realm's fortunes ----------------------------------------------------------
def test_names_other_modules_import() -> None:
    assert LEAVE == wire.LEAVE == "--leave"
    assert NamePool(random.Random(1)).draw() in lore.NAMES
    assert FAVOUR in HOLDINGS
    assert set(lore.WORRIES) == set(HOLDINGS)
    assert not hasattr(bot_module, "_PICK")  # the one reader is realm.decisions


@pytest.mark.parametrize("line", [
    _report(Food=20), _report(Gold=5), _report(Men=(40, -15)), _report(Favour=(0, -30)),
])
def test_a_failing_realm_costs_loyalty_and_gets_no_reply(line: str) -> None:
    bot = make_bot()
    assert bot.hear(line) is None
    assert bot.loyalty == Temper().loyalty - Temper().fortune


@pytest.mark.parametrize("line", [
    _report(Favour=(55, 5)), _report(Gold=60, Food=70, Men=80, Favour=(90, -3)),
])
def test_a_prospering_realm_earns_loyalty(line: str) -> None:
    bot = make_bot()
    assert bot.hear(line) is None
    assert bot.loyalty == Temper().loyalty + Temper().fortune


@pytest.mark.parametrize("line", [
    _report(), _report(Gold=(40, -14), Favour=(50, 0)), _report(Food=21, Favour=(45, -5)),
    "*** [Realm] not a report at all", "*** [Realm] Odd. Gold many",
])
def test_a_middling_realm_or_a_garbled_line_changes_nothing(line: str) -> None:
    bot = make_bot()
    assert bot.hear(line) is None
    assert bot.loyalty == Temper().loyalty


def test_failing_is_worse_than_prospering_is_good() -> None:
    bot = make_bot()  # low Food, but Favour rose: the failing wins
    bot.hear(_report(Food=10, Favour=(60, 10)))
    assert bot.loyalty == Temper().loyalty - Temper().fortune


def test_news_alone_never_makes_a_bot_desert_but_brings_it_closer() -> None:
    steady, worried = make_bot(loyalty=3), make_bot(loyalty=3)
    for _ in range(10):
        assert worried.hear(_report(Food=(5, -20))) is None
    assert worried.loyalty == 1 and not worried.deserted
    for _ in range(10):
        steady.hear(_report(Favour=(70, 2)))
    assert steady.loyalty == steady.temper.most
    reply = worried.hear("Lord: what?")
    assert reply is not None and reply.leaves
    reply = make_bot(loyalty=3).hear("Lord: what?")
    assert reply is not None and not reply.leaves


def test_a_low_holding_colours_the_reply() -> None:
    for seed in range(20):
        bot = make_bot(seed)
        bot.hear(_report(Gold=30, Food=(8, -12), Men=15))
        reply = bot.hear("Lord: eat")
        assert reply is not None
        head = replies(lore.APPROVAL, "eat")
        assert any(reply.text == f"{h} {w}" for h in head for w in lore.WORRIES["Food"]), reply
    worries = set()
    for seed in range(30):
        bot = make_bot(seed)
        bot.hear(_report(Gold=3))
        reply = bot.hear("Lord: hmm")
        assert reply is not None
        worries.add(next(w for w in lore.WORRIES["Gold"] if reply.text.endswith(" " + w)))
    assert len(worries) > 1  # drawn, not fixed


def test_no_worry_while_the_realm_is_well() -> None:
    bot = make_bot()
    bot.hear(_report(Food=21))
    reply = bot.hear("Lord: eat")
    assert reply is not None and reply.text in replies(lore.APPROVAL, "eat")


def test_a_reign_ended_clears_the_worries_and_moves_loyalty() -> None:
    won, fallen, left = make_bot(), make_bot(), make_bot()
    for bot in (won, fallen, left):
        bot.hear(_report(Food=10))
    assert won.loyalty == Temper().loyalty - 1
    won.hear("*** [Reign Ended] Won: the realm endures (12 events, score 900)")
    fallen.hear("*** [Reign Ended] Fallen: no Food is left (4 events, score 150)")
    left.hear("*** [Reign Ended] Abandoned: the Lord walked away (2 events, score 200)")
    assert won.loyalty == Temper().loyalty - 1 + Temper().delight
    assert fallen.loyalty == Temper().loyalty - 1 - Temper().distaste
    assert left.loyalty == Temper().loyalty - 1
    for bot in (won, fallen, left):
        assert bot.holdings == {}
        reply = bot.hear("Lord: eat")
        assert reply is not None and reply.text in replies(lore.APPROVAL, "eat")
    low = make_bot(loyalty=1)
    low.hear("*** [Reign Ended] Fallen: no Food is left (4 events, score 150)")
    assert low.loyalty == 1 and not low.deserted


def test_a_bot_follows_a_whole_reign() -> None:
    rng = random.Random(3)
    reign = Reign(rng, Deck(rng))
    bot = make_bot(3, loyalty=10, most=20)
    replies = 0
    while reign.ending is None:
        assert bot.hear(reign.tell(["Arya", "Bran"]).decode().rstrip("\r\n")) is None
        reign.decide("1")
        replies += bot.hear("Lord: 1") is not None
        settled = reign.settle()
        assert bot.hear(settled.report.decode().rstrip("\r\n")) is None
        assert bot.holdings == reign.holdings
    assert reign.ending is not None
    after = dict.fromkeys(HOLDINGS, 50)  # the next reign's, as the ending says them
    bot.hear(reign.ending.line(after).decode().rstrip("\r\n"))
    assert replies == reign.told and bot.holdings == after


def test_the_holdings_a_welcome_or_an_ending_tells_colour_the_first_reply() -> None:
    """A reign's first event is answered knowing what the realm holds."""
    for told in (wire.WELCOME.notice(n=5, size=5, holdings="Gold 45 \u00b7 Food 9",
                                     events=12, event_s="events"),
                 wire.REIGN_OVER.notice(outcome="Won", why="hurrah", events=12, event_s="events",
                                        score=900, then=wire.THEN.format(
                                            holdings="Gold 45 \u00b7 Food 9"))):
        bot = make_bot()
        bot.hear(told.decode().rstrip("\r\n"))
        assert bot.holdings == {"Gold": 45, "Food": 9}
        reply = bot.hear("Lord: eat")
        assert reply is not None and any(reply.text.endswith(w) for w in lore.WORRIES["Food"])
