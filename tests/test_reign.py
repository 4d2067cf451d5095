"""The reign's rules, pure: telling, deciding, settling, ending, scoring."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realm import lore, wire
from realm.records import OUTCOMES, EventRecord
from realm.reign import (
    EVENT_POINTS,
    HOLDINGS,
    LENGTH,
    NARROW,
    SPREAD,
    START,
    WON_BONUS,
    Deck,
    Reign,
    ReignError,
    score,
)
from realm.scenes import STORY, Effect, Option, Scene

OTHERS = ["Arya", "Bran", "Sansa", "Jon"]


def _effect(says: str, **changes: int) -> Effect:
    return Effect(tuple((h, changes[h]) for h in HOLDINGS if h in changes), (says,))


def _option(action: str, says: str, **changes: int) -> Option:
    return Option(action, lore.ING[action], _effect(says, **changes))


#: A scene whose options do known things: fight costs Men, flee costs
#: Favour, parley costs Gold; two of the three are offered.
BATTLE = Scene(("Battle, {other}!", "War!"), (
    _option("fight", "The wall holds, {other}.", Men=-30, Favour=5),
    _option("flee", "We run.", Favour=-30),
    _option("parley", "We pay.", Gold=-30),
))
#: A scene that ruins the granaries whatever is decided.
FAMINE = Scene(("Famine!", "Hunger!"), (
    _option("ration", "Rationed.", Food=-100),
    _option("hunt", "Hunted.", Food=-100, Men=-100),
))


def _reign(seed: int = 1, scenes: tuple[Scene, ...] | None = None,
           length: int = LENGTH) -> Reign:
    rng = random.Random(seed)
    deck = Deck(rng) if scenes is None else Deck(rng, scenes)
    return Reign(rng, deck, length)


def _offered(line: bytes) -> tuple[str, str]:
    options = wire.event_options(line.decode().rstrip("\r\n"))
    assert options is not None, line
    return options


def _play(reign: Reign, decision: str = "1") -> list[bytes]:
    """Play the reign to its end; every line sent."""
    lines = []
    while reign.ending is None:
        lines.append(reign.tell(OTHERS))
        reign.decide(decision)
        settled = reign.settle()
        lines.append(settled.report)
        if settled.ending is not None:
            lines.append(settled.ending.line(NEXT))
    return lines


# -- the deck -----------------------------------------------------------------------
@given(st.integers(0, 2**32), st.integers(1, 5))
def test_the_deck_tells_every_scene_once_before_any_repeats(seed: int, rounds: int) -> None:
    deck = Deck(random.Random(seed))
    n = len(STORY.scenes)
    told = [deck.draw() for _ in range(n * rounds)]
    for k in range(rounds):
        assert len({id(s) for s in told[k * n:(k + 1) * n]}) == n
    assert all(a is not b for a, b in zip(told, told[1:], strict=False))  # not even across rounds


def test_a_deck_of_one_scene_tells_it_again_and_an_empty_one_is_refused() -> None:
    deck = Deck(random.Random(1), [BATTLE])
    assert [deck.draw() for _ in range(3)] == [BATTLE] * 3
    with pytest.raises(ValueError):
        Deck(random.Random(1), [])


def test_one_deck_lives_across_reigns() -> None:
    rng = random.Random(5)
    deck = Deck(rng)
    seen: list[Scene | None] = []
    while len(seen) < len(STORY.scenes):
        reign = Reign(rng, deck, length=3)
        while reign.ending is None and len(seen) < len(STORY.scenes):
            reign.tell(OTHERS)
            seen.append(reign.scene)
            reign.decide("1")
            reign.settle()
    assert len({id(s) for s in seen}) == len(STORY.scenes)


# -- telling --------------------------------------------------------------------------------
def test_fresh_holdings_in_a_small_range() -> None:
    for seed in range(50):
        reign = _reign(seed)
        assert list(reign.holdings) == list(HOLDINGS)
        assert all(START - SPREAD <= v <= START + SPREAD for v in reign.holdings.values())
        assert reign.told == 0 and reign.events == [] and reign.ending is None
    assert len({tuple(_reign(seed).holdings.values()) for seed in range(20)}) > 1


def test_an_event_has_a_herald_a_wording_and_two_of_its_options() -> None:
    for seed in range(100):
        reign = _reign(seed)
        line = reign.tell(OTHERS)
        assert line.startswith(b"*** [New Event] ") and line.endswith(b"\r\n")
        text = line.decode()
        scene = reign.scene
        assert scene is not None
        a, b = _offered(line)
        assert a != b
        assert {a, b} <= {o.offered for o in scene.options}
        assert any(t.format(other=name) in text for t in scene.told for name in OTHERS)
        assert any(text.startswith("*** [New Event] " + h.format(narrator=name) + " ")
                   for h in lore.HERALDS for name in OTHERS)
        assert "{" not in text and "}" not in text
        assert reign.told == 1 and reign.event == line and not reign.decided


def test_strangers_and_courtiers_fill_in_when_no_member_fits() -> None:
    heralds = set()
    for seed in range(50):
        text = _reign(seed, (BATTLE,)).tell([]).decode()
        said = [h for h in lore.HERALDS for s in lore.STRANGERS
                if f"[New Event] {h.format(narrator=s)} " in text
                or f"[New Event] {h.format(narrator=s[0].lower() + s[1:])} " in text]
        assert said, text
        heralds.update(said)
        assert " from A " not in text and " from An " not in text, text  # a raven from a stranger
        assert any(f"Battle, {c}!" in text for c in lore.COURTIERS) or "War!" in text
    assert heralds == set(lore.HERALDS)
    text = _reign(1, (BATTLE,)).tell(["Arya"]).decode()
    assert "Arya" in text


def test_a_courtier_is_not_a_members_name_and_a_sentence_starts_with_a_capital() -> None:
    """With one other member, Tyrion, the one blamed is never Tyrion too
    (`Tyrion reports: ... Tyrion spent the day`), and `the cook` starting
    a sentence is `The cook`."""
    named = Scene(("{other} has drunk the wine.", "{other} ate the cake."), (
        _option("pray", "{other} takes the vows.", Favour=5),
        _option("feast", "{other} sings.", Food=-5),
    ))
    cooks = 0
    for seed in range(200):
        reign = _reign(seed, (named,))
        event = reign.tell(["Tyrion"]).decode()
        told = event.split(": ", 1)[1]
        assert told.count("Tyrion") == 0 and told[:1].isupper(), event
        reign.decide("1")
        report = reign.settle().report.decode().removeprefix("*** [Realm] ")
        assert "Tyrion" not in report and report[:1].isupper(), report
        cooks += told.startswith("The cook")
    assert cooks


def test_the_seeds_tyrion_can_be_the_one_who_strolled() -> None:
    crew = next(s for s in STORY.scenes if s.told[0].startswith("The crew is out of food"))
    lines = {_reign(seed, (crew,)).tell([]) for seed in range(300)}
    assert any(b"out of food because Tyrion strolled all day" in line for line in lines)


@given(st.integers(0, 2**32))
def test_two_reigns_with_different_seeds_read_differently(seed: int) -> None:
    first = _play(_reign(seed, length=4))
    assert first == _play(_reign(seed, length=4))  # seeded: the same seed reads the same
    assert first != _play(_reign(seed + 1, length=4))


# -- deciding and settling ------------------------------------------------------------------
#: Both its options are offered, always.
DUEL = Scene(("Duel, {other}!", "A duel!"), BATTLE.options[:2])
PAIR = ["Arya", "Bran"]


def _settle_and_read(reign: Reign) -> tuple[str, dict[str, tuple[int, int]]]:
    """Settle the event in play, and read its report back."""
    before = dict(reign.holdings)
    settled = reign.settle()
    read = wire.read_report(settled.report.decode().rstrip("\r\n"))
    assert read is not None, settled.report
    said, holdings = read
    assert list(holdings) == list(HOLDINGS)
    for name, (value, change) in holdings.items():
        assert value == reign.holdings[name]
        assert change == value - before[name]
    return said, holdings


def _duel(decision: str) -> tuple[tuple[str, str], str, dict[str, tuple[int, int]]]:
    """A duel decided: (the options offered, what was said, the holdings)."""
    reign = _reign(scenes=(DUEL,))
    offered = _offered(reign.tell(PAIR))
    reign.holdings = dict.fromkeys(HOLDINGS, 50)
    reign.decide(decision)
    said, holdings = _settle_and_read(reign)
    assert reign.events[-1].decision == decision
    return offered, said, holdings


def _did(option: Option, said: str, holdings: dict[str, tuple[int, int]]) -> bool:
    """Whether `option`'s effect is what the report shows."""
    return (said in {s.format(other=name) for s in option.effect.says for name in PAIR}
            and {n: c for n, (_, c) in holdings.items() if c} == dict(option.effect.changes))


@pytest.mark.parametrize(("decision", "picked"), [("1", 0), ("2!", 1), ("1 - burn them", 0),
                                                  (" 2", 1)])
def test_an_option_by_number(decision: str, picked: int) -> None:
    offered, said, holdings = _duel(decision)
    option = next(o for o in DUEL.options if o.offered == offered[picked])
    assert _did(option, said, holdings)


@pytest.mark.parametrize("decision", ["we go FIGHTING", "fight", "Fight!", "then fight, then flee",
                                      "burn them, fight them"])
def test_an_option_by_word(decision: str) -> None:
    _, said, holdings = _duel(decision)
    assert _did(DUEL.options[0], said, holdings)
    assert holdings["Men"] == (20, -30) and holdings["Favour"] == (55, 5)


def test_the_outcome_names_the_same_other_as_the_event() -> None:
    scene = Scene(("Duel, {other}!", "Another duel, {other}!"), DUEL.options)
    for seed in range(20):
        reign = _reign(seed, (scene,))
        line = reign.tell(PAIR).decode()
        other = line.split(", ")[-1].split("!")[0]
        assert other in PAIR
        reign.decide("fight")
        assert _settle_and_read(reign)[0] == f"The wall holds, {other}."


def _told_with(reign: Reign, a: str, b: str) -> None:
    """Tell events until the offered options are `a` and `b`, in any order."""
    for _ in range(200):
        reign.tell(OTHERS)
        offered = reign.offered
        assert offered is not None
        if {offered[0].action, offered[1].action} == {a, b}:
            return
        reign.holdings = dict.fromkeys(HOLDINGS, 50)
        reign.decide("1")
        reign.settle()
    raise AssertionError("never offered")


def test_a_scene_option_not_offered_does_what_it_does_in_the_scene() -> None:
    reign = _reign(scenes=(BATTLE,), length=1000)
    _told_with(reign, "fight", "flee")
    reign.holdings = dict.fromkeys(HOLDINGS, 50)
    reign.decide("let us parley")
    said, holdings = _settle_and_read(reign)
    assert said == "We pay." and holdings["Gold"] == (20, -30)


def test_another_action_has_its_own_effect() -> None:
    reign = _reign(scenes=(BATTLE,))
    reign.tell(OTHERS)
    reign.holdings = dict.fromkeys(HOLDINGS, 50)
    reign.decide("a great feast tonight")
    said, holdings = _settle_and_read(reign)
    feast = STORY.actions["feast"]
    assert said in feast.says
    assert {n: c for n, (_, c) in holdings.items() if c} == dict(feast.changes)


@pytest.mark.parametrize("decision", ["", "what?", "10", "dance with me", "3"])
def test_no_known_action_confuses_the_court(decision: str) -> None:
    reign = _reign(scenes=(BATTLE,))
    reign.tell(OTHERS)
    reign.holdings = dict.fromkeys(HOLDINGS, 50)
    reign.decide(decision)
    said, holdings = _settle_and_read(reign)
    assert said in STORY.confusion.says
    assert {n: c for n, (_, c) in holdings.items() if c} == dict(STORY.confusion.changes)
    assert holdings["Favour"][0] < 50


def test_holdings_stay_within_bounds_and_the_report_shows_the_real_change() -> None:
    rise = Scene(("Gifts!", "More gifts!"), (
        _option("feast", "Plenty.", Gold=30, Food=30),
        _option("trade", "Plenty.", Gold=30, Food=30),
    ))
    reign = _reign(scenes=(rise,))
    reign.tell(OTHERS)
    reign.holdings = {"Gold": 90, "Food": 100, "Men": 50, "Favour": 50}
    reign.decide("1")
    settled = reign.settle()
    assert settled.report == ("*** [Realm] Plenty. Gold 100 (+10) \u00b7 Food 100 \u00b7 Men 50 "
                              "\u00b7 Favour 50\r\n").encode()
    assert settled.ending is None


def test_each_event_is_recorded() -> None:
    reign = _reign()
    line = reign.tell(OTHERS)
    reign.decide("2 - run!")
    reign.settle()
    assert reign.events == [EventRecord(line.decode()[4:-2], "2 - run!", dict(reign.holdings))]
    assert reign.events[0].event.startswith("[New Event] ")
    assert reign.events[0].holdings is not reign.holdings  # a snapshot


# -- in turn, or not at all --------------------------------------------------------------------
def test_each_step_in_its_turn() -> None:
    reign = _reign()
    with pytest.raises(ReignError):
        reign.decide("1")
    with pytest.raises(ReignError):
        reign.settle()
    reign.tell(OTHERS)
    with pytest.raises(ReignError):
        reign.tell(OTHERS)
    with pytest.raises(ReignError):
        reign.settle()
    reign.decide("1")
    assert reign.decided
    with pytest.raises(ReignError):
        reign.decide("2")
    reign.settle()
    assert reign.event is None and not reign.decided
    with pytest.raises(ValueError):
        Reign(random.Random(1), Deck(random.Random(1)), length=0)


def test_nothing_after_the_end() -> None:
    reign = _reign()
    reign.abandon()
    for step in (lambda: reign.tell(OTHERS), reign.abandon):
        with pytest.raises(ReignError):
            step()


# -- endings -----------------------------------------------------------------------------------
#: What the next reign begins with, as the server tells it with an ending.
NEXT = dict.fromkeys(HOLDINGS, 50)


def _ending_fields(line: bytes) -> dict[str, str]:
    fields = wire.REIGN_OVER.match(line.decode().rstrip("\r\n"))
    assert fields is not None, line
    assert wire.holdings_now(line.decode().rstrip("\r\n")) == NEXT
    return fields


def test_a_holding_at_zero_and_the_realm_falls() -> None:
    reign = _reign(scenes=(FAMINE,))
    reign.tell(OTHERS)
    reign.decide("ration")
    settled = reign.settle()
    assert settled.ending is not None and settled.ending is reign.ending
    ending = settled.ending
    assert ending.outcome == "fallen" and ending.events == 1
    fields = _ending_fields(ending.line(NEXT))
    assert fields["outcome"] == "Fallen"
    assert fields["why"] in STORY.fallen["Food"]
    assert int(fields["events"]) == 1 and int(fields["score"]) == ending.score
    assert f"(1 event, score {ending.score})" in ending.line(NEXT).decode()  # not "1 events"
    assert ending.score == EVENT_POINTS + sum(reign.holdings.values())
    assert "Food 0 (-" in settled.report.decode()


def test_the_first_holding_to_fall_is_named() -> None:
    reign = _reign(scenes=(FAMINE,))
    reign.tell(OTHERS)
    reign.decide("hunt")
    ending = reign.settle().ending
    assert ending is not None
    assert _ending_fields(ending.line(NEXT))["why"] in STORY.fallen["Food"]  # Food before Men


@pytest.mark.parametrize(("start", "reasons"), [(70, STORY.won), (45, STORY.narrowly)])
def test_a_reign_seen_through_is_won(start: int, reasons: tuple[str, ...]) -> None:
    """Won; and its reason says how, with a holding nearly spent or not."""
    reign = _reign(scenes=(BATTLE,), length=2)
    endings = []
    for _ in range(2):
        reign.tell(OTHERS)
        reign.holdings = dict.fromkeys(HOLDINGS, start)
        reign.decide("1")
        endings.append(reign.settle().ending)
    assert endings[0] is None
    ending = endings[1]
    assert ending is not None and ending.outcome == "won" and ending.events == 2
    assert (min(reign.holdings.values()) <= NARROW) == (reasons is STORY.narrowly)
    fields = _ending_fields(ending.line(NEXT))
    assert fields["outcome"] == "Won" and fields["why"] in reasons
    assert ending.score == 2 * EVENT_POINTS + sum(reign.holdings.values()) + WON_BONUS


def test_a_lord_who_leaves_abandons_the_reign() -> None:
    reign = _reign()
    reign.tell(OTHERS)
    reign.decide("1")
    reign.settle()
    reign.tell(OTHERS)  # told, never settled: not counted
    ending = reign.abandon()
    assert ending.outcome == "abandoned" and ending.events == 1 and reign.ending is ending
    fields = _ending_fields(ending.line(NEXT))
    assert fields["outcome"] == "Abandoned" and fields["why"] in STORY.abandoned
    assert ending.score == 10  # its event, not the holdings it was left with
    assert reign.event is None


def test_the_record_of_a_reign() -> None:
    reign = _reign()
    _play(reign)
    ending = reign.ending
    assert ending is not None
    record = reign.record("westeros", ["Lord", "Arya"], 100.0, 200.0, ending)
    assert record.realm == "westeros" and record.members == ("Lord", "Arya")
    assert record.outcome == ending.outcome in OUTCOMES and record.score == ending.score
    assert record.events == tuple(reign.events) and len(record.events) == ending.events
    assert (record.started, record.ended, record.id) == (100.0, 200.0, None)
    other = _reign(2)
    with pytest.raises(ReignError):
        other.record("westeros", [], 0.0, 1.0, ending)


# -- the score ---------------------------------------------------------------------------------
def test_the_score() -> None:
    holdings = {"Gold": 10, "Food": 20, "Men": 30, "Favour": 40}
    assert score(3, holdings, outcome="fallen") == 30 + 100
    assert score(3, holdings, outcome="won") == 30 + 100 + 400
    assert score(3, holdings, outcome="abandoned") == 30  # the holdings are not kept
    assert WON_BONUS == 100 * len(HOLDINGS)


@given(st.integers(1, 50), st.lists(st.integers(1, 100), min_size=4, max_size=4),
       st.lists(st.integers(0, 100), min_size=4, max_size=4), st.integers(0, 3))
def test_a_won_reign_beats_any_other_of_its_length(length: int, won: list[int],
                                                    other: list[int], zero: int) -> None:
    best = score(length, dict(zip(HOLDINGS, won, strict=True)), outcome="won")
    fallen = dict(zip(HOLDINGS, other, strict=True))
    fallen[HOLDINGS[zero]] = 0
    assert best > score(length, fallen, outcome="fallen")
    assert best > score(length - 1, dict(zip(HOLDINGS, other, strict=True)), outcome="fallen")


# -- properties of whole reigns --------------------------------------------------------------
DECISIONS = st.one_of(
    st.sampled_from(["1", "2", "2!", "hmm", ""]),
    st.sampled_from(lore.ACTIONS), st.sampled_from(list(lore.ING.values())),
    st.text(max_size=30))


@settings(max_examples=200)
@given(st.integers(0, 2**32), st.integers(1, 20), st.lists(DECISIONS, min_size=1))
def test_whole_reigns(seed: int, length: int, decisions: list[str]) -> None:
    reign = _reign(seed, length=length)
    settled = None
    while reign.ending is None:
        line = reign.tell(OTHERS[: seed % 5])
        a, b = _offered(line)
        assert a != b  # never the same action twice
        reign.decide(decisions[reign.told % len(decisions)])
        settled = reign.settle()
        assert all(0 <= v <= 100 for v in reign.holdings.values())
        assert reign.told <= length
    assert settled is not None and settled.ending is reign.ending
    ending = reign.ending
    assert ending.events == reign.told == len(reign.events) <= length
    fields = _ending_fields(ending.line(NEXT))
    if ending.outcome == "fallen":
        low = [h for h in HOLDINGS if reign.holdings[h] == 0]
        assert low and any(fields["why"] in STORY.fallen[h] for h in low)
        assert any(h in fields["why"] for h in low)
    else:
        assert ending.outcome == "won" and reign.told == length
        assert all(v > 0 for v in reign.holdings.values())
    assert int(fields["score"]) == ending.score == score(
        ending.events, reign.holdings, ending.outcome)
