"""The reign as members see it: `[Realm]` after every event, `[Reign Ended]`
once the chronicle has the reign, a new reign after it, `--chronicle`.

In-memory connections to a real server on a `task.Clock`; the chronicle
is realm.testing's in-memory one, so a test decides when a write commits
(the real databases are tests/test_chronicle.py's, and a real server
killed after an ending is tests/test_twistd.py's).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_chronicle import Hung
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent

from realm import wire
from realm.chronicle import WRITE_WAIT, DatabaseChronicle, NoChronicle
from realm.chronicle_engines import SqliteEngine
from realm.server import RealmServer, Settings
from realm.tap import Shutdown
from realm.testing import FakeChronicle, MemoryConn, MemoryNet


def game(chronicle: FakeChronicle, **settings: Any) -> tuple[MemoryNet, MemoryConn,
                                                              list[MemoryConn]]:
    server = RealmServer(Settings(**settings), task.Clock(), rng=random.Random(3),
                         chronicle=chronicle)
    net = MemoryNet(server)
    lord, others = net.game()
    return net, lord, others


def round_of(lord: MemoryConn, others: list[MemoryConn], decision: str = "1") -> list[str]:
    """The Lord decides, everyone answers; the Lord's lines from it."""
    lord.say(decision)
    for conn in others:
        conn.say("aye")
    return lord.take()


def reports(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("*** [Realm] ")]


def test_every_event_ends_with_what_it_did_to_the_holdings() -> None:
    net, lord, others = game(FakeChronicle())
    lines = round_of(lord, others)
    (report,) = reports(lines)
    text, holdings = wire.read_report(report)  # type: ignore[misc]
    assert text and list(holdings) == ["Gold", "Food", "Men", "Favour"]
    assert all(0 <= value <= 100 for value, _ in holdings.values())
    assert any(change for _, change in holdings.values())
    # Everyone gets it, just before the next event.
    for conn in [lord, *others]:
        seen = lines if conn is lord else conn.take()
        at = seen.index(report)
        assert wire.is_event(seen[at + 1])


def test_a_reign_seen_through_is_won_recorded_and_followed_by_a_new_one() -> None:
    chronicle = FakeChronicle()
    net, lord, others = game(chronicle, reign_length=3)
    seen: list[str] = []
    for _ in range(3):
        seen += round_of(lord, others, "1")
    ended = [line for line in seen if wire.is_reign_ended(line)]
    assert len(ended) == 1
    fields = wire.REIGN_OVER.match(ended[0])
    assert fields is not None and fields["events"] == "3"
    assert fields["outcome"] in ("Won", "Fallen")
    (reign,) = chronicle.reigns
    assert reign.realm == "westeros" and len(reign.events) == 3
    assert reign.outcome == fields["outcome"].lower() and str(reign.score) == fields["score"]
    assert set(reign.members) == {"Lord", "Arya", "Bran", "Cersei", "Davos"}
    assert [e.decision for e in reign.events] == ["1", "1", "1"]
    # The new reign begins at once with its first event.
    at = seen.index(ended[0])
    assert wire.is_event(seen[at + 1])


@pytest.mark.parametrize("chronicle", [FakeChronicle(), NoChronicle()],
                         ids=["commits at once", "none"])
def test_a_chronicle_that_does_not_wait_still_ends_the_reign_after_the_report(
        chronicle: Any) -> None:
    """With `--chronicle none` the reign's end once came before the last
    answer and the `[Realm]` line that led to it."""
    net, lord, others = game(chronicle, reign_length=1)
    lord.say("1")
    for conn in others:
        conn.say("aye")
    for conn in [lord, *others]:
        seen = conn.take()
        assert [kind(line) for line in seen][-4:] == ["answer", "report", "ended", "event"], seen


def kind(line: str) -> str:
    if line.startswith("*** [Realm] "):
        return "report"
    if wire.is_reign_ended(line):
        return "ended"
    if wire.is_event(line):
        return "event"
    return "answer" if line.endswith(": aye") else "other"


def test_the_ending_waits_for_the_chronicle_to_commit() -> None:
    chronicle = FakeChronicle(hold=True)
    net, lord, others = game(chronicle, reign_length=1)
    lines = round_of(lord, others)
    assert reports(lines) and not any(wire.is_reign_ended(line) for line in lines)
    lord.say("Are we done?")  # chat while the chronicle writes: no decision
    assert "Lord: Are we done?" in others[0].take()
    chronicle.commit()
    net.settle()
    lines = lord.take()
    assert wire.is_reign_ended(lines[0]) and wire.is_event(lines[1])


def test_the_last_to_answer_does_not_bring_the_next_event() -> None:
    """A deserting bot's farewell is its answer, its --leave a moment
    later: it must not be named in the event its answer brings."""
    server = RealmServer(Settings(max_rate=0), task.Clock(), rng=random.Random(7),
                         chronicle=NoChronicle())
    net = MemoryNet(server)
    names = ("Quill", "Rook", "Sable", "Tarn")  # in no scene or herald
    lord, others = net.game(others=names)
    order = random.Random(1)
    for _ in range(60):
        lord.say("1")
        answering = order.sample(range(4), 4)
        for i in answering:
            others[i].say("aye")
        (event,) = [line for line in lord.take() if wire.is_event(line)]
        assert names[answering[-1]] not in event, event
        assert any(name in event for name in names)  # the others still bring news


def test_a_chronicle_that_fails_is_logged_and_the_game_goes_on(
        observe_errors: Any) -> None:
    chronicle = FakeChronicle(hold=True)
    net, lord, others = game(chronicle, reign_length=1)
    round_of(lord, others)
    chronicle.fail("the disk is full")
    net.settle()
    lines = lord.take()
    assert wire.is_reign_ended(lines[0]) and wire.is_event(lines[1])
    logged = [e for e in observe_errors.errors if "could not record" in e["log_format"]]
    assert len(logged) == 1
    observe_errors.errors.clear()  # expected: the error is the point
    assert reports(round_of(lord, others))  # the next reign plays


def test_a_chronicle_that_keeps_failing_is_logged_once_a_minute_and_counted(
        observe_errors: Any, events: list[dict[str, Any]]) -> None:
    chronicle = FakeChronicle(hold=True)
    net, lord, others = game(chronicle, reign_length=1)
    clock = net.server.clock
    for _ in range(5):  # five reigns lost: one line now, the rest counted
        round_of(lord, others)
        chronicle.fail("the disk is full")
        net.settle()
        clock.advance(10)  # type: ignore[attr-defined]
    (first,) = observe_errors.errors
    assert formatEvent(first).startswith(
        "The chronicle could not record a reign of westeros (won, score ")
    assert formatEvent(first).endswith(": the disk is full; the game goes on")
    clock.advance(10)  # type: ignore[attr-defined]  # a minute since the line: the rest
    assert len(observe_errors.errors) == 2
    assert formatEvent(observe_errors.errors[1]).startswith(
        "The chronicle could not record 4 reigns since the last such line, the last of "
        "westeros (won, score ")
    assert net.server.stats.reigns_unrecorded == 5
    observe_errors.errors.clear()  # expected: the errors are the point
    round_of(lord, others)
    chronicle.commit()  # it works again, and the log says so, within its minute
    net.settle()
    clock.advance(60)  # type: ignore[attr-defined]
    assert net.server.stats.reigns_unrecorded == 5 and not observe_errors.errors
    assert any(formatEvent(e) == "The chronicle records reigns again (5 could not be recorded "
               "before)" for e in events)


def test_a_chronicle_back_counts_the_reigns_lost_once(
        observe_errors: Any, events: list[dict[str, Any]]) -> None:
    """The failures held for the minute's count are told by the line that
    says the chronicle is back, not again when the minute is over."""
    chronicle = FakeChronicle(hold=True)
    net, lord, others = game(chronicle, reign_length=1)
    for _ in range(3):  # one line now, two held back
        round_of(lord, others)
        chronicle.fail("the disk is full")
        net.settle()
    observe_errors.errors.clear()  # expected: the errors are the point
    round_of(lord, others)
    chronicle.commit()
    net.settle()
    net.server.clock.advance(60)  # type: ignore[attr-defined]
    net.server.stats.quiet.stop()
    said = [formatEvent(e) for e in events if "chronicle" in formatEvent(e)]
    assert len(said) == 2 and said[0].startswith("The chronicle could not record a reign of")
    assert said[1] == "The chronicle records reigns again (3 could not be recorded before)"


def test_a_chronicle_that_fails_on_and_off_logs_a_line_a_minute(
        observe_errors: Any, events: list[dict[str, Any]]) -> None:
    """Every other reign lost for 20 s: one line for the first loss, and at
    the minute's end one saying how the chronicle is now, with every loss
    since counted."""
    chronicle = FakeChronicle(hold=True)
    net, lord, others = game(chronicle, reign_length=1)
    for n in range(20):
        round_of(lord, others)
        chronicle.fail("the disk is full") if n % 2 == 0 else chronicle.commit()
        net.settle()
        net.server.clock.advance(1)  # type: ignore[attr-defined]
    said = [formatEvent(e) for e in events if "chronicle" in formatEvent(e)]
    assert len(said) == 1, said
    observe_errors.errors.clear()  # expected: the errors are the point
    net.server.clock.advance(60)  # type: ignore[attr-defined]
    said = [formatEvent(e) for e in events if "chronicle" in formatEvent(e)]
    assert said[1:] == ["The chronicle records reigns again (10 could not be recorded "
                        "before)"], said
    assert net.server.stats.reigns_unrecorded == 10


def test_the_chronicles_last_line_of_a_minute_says_how_it_is_now(
        observe_errors: Any, events: list[dict[str, Any]]) -> None:
    """Lost, back, lost three times, back, lost, back, lost twice: the
    minute's last line says it is failing, with the six lost since."""
    chronicle = FakeChronicle(hold=True)
    net, lord, others = game(chronicle, reign_length=1)
    for kept in "nynnnynynn":
        round_of(lord, others)
        chronicle.commit() if kept == "y" else chronicle.fail("the disk is full")
        net.settle()
        net.server.clock.advance(1)  # type: ignore[attr-defined]
    net.server.clock.advance(60)  # type: ignore[attr-defined]
    said = [formatEvent(e) for e in events if "chronicle" in formatEvent(e)]
    assert len(said) == 2 and said[1].startswith(
        "The chronicle could not record 6 reigns since the last such line, the last of "), said
    observe_errors.errors.clear()  # expected: the errors are the point


class Closing(FakeChronicle):
    """A chronicle whose close waits for what it holds, as a real one's does."""

    where = "memory"

    def __init__(self) -> None:
        super().__init__(hold=True)
        self.closing: list[Deferred[None]] = []

    def close(self) -> Deferred[None]:
        self.closing.append(Deferred())
        return self.closing[-1]

    def fail(self, why: str = "the disk is full") -> None:
        super().fail(why)
        for d in self.closing:
            d.callback(None)


def test_a_loss_during_the_stop_is_logged_before_the_exit(
        observe_errors: Any, events: list[dict[str, Any]]) -> None:
    """The reign a stop abandons is lost within the minute of the last
    loss: its line, held for the minute's end, is said as the stop ends."""
    chronicle = Closing()
    net, lord, others = game(chronicle, reign_length=1)
    round_of(lord, others)
    chronicle.fail("the disk is full")  # said at once: its minute begins
    net.settle()
    stopping = Shutdown(net.server).stopService()
    net.settle()  # every connection closes: the Lord's reign is abandoned
    chronicle.fail("the disk is full")
    assert stopping.called
    said = [formatEvent(e) for e in events if "chronicle" in formatEvent(e)]
    assert said[-1].startswith("The chronicle could not record a reign of westeros "
                               "(abandoned"), said
    observe_errors.errors.clear()  # expected: the errors are the point


def test_a_chronicle_that_never_answers_is_given_up_on(observe_errors: Any) -> None:
    clock = task.Clock()
    chronicle = DatabaseChronicle(Hung(), SqliteEngine(":memory:"),  # type: ignore[arg-type]
                                  "sqlite:x", clock)
    server = RealmServer(Settings(reign_length=1), clock, rng=random.Random(3),
                         chronicle=chronicle)
    net = MemoryNet(server)
    lord, others = net.game()
    round_of(lord, others)
    clock.advance(WRITE_WAIT - 0.1)
    assert not any(wire.is_reign_ended(line) for line in lord.take())
    clock.advance(0.1)
    net.settle()
    lines = lord.take()
    assert wire.is_reign_ended(lines[0]) and wire.is_event(lines[1])
    (logged,) = observe_errors.errors
    assert formatEvent(logged).endswith(
        f"cannot record a reign in the chronicle sqlite:x: no answer in {WRITE_WAIT:g} s (the "
        "write may still land); the game goes on")
    observe_errors.errors.clear()  # expected: the error is the point


def test_a_confused_court_makes_the_realm_fall() -> None:
    chronicle = FakeChronicle()
    net, lord, others = game(chronicle, reign_length=50)
    for _ in range(40):
        lines = round_of(lord, others, "we shall see")
        ended = [line for line in lines if wire.is_reign_ended(line)]
        if ended:
            break
    else:
        raise AssertionError("the realm never fell")
    fields = wire.REIGN_OVER.match(ended[0])
    assert fields is not None and fields["outcome"] == "Fallen"
    (reign,) = chronicle.reigns
    assert reign.outcome == "fallen" and min(reign.events[-1].holdings.values()) == 0


def test_the_lord_leaving_abandons_the_reign() -> None:
    chronicle = FakeChronicle()
    net, lord, others = game(chronicle)
    round_of(lord, others)
    lord.say("--leave")
    (reign,) = chronicle.reigns
    assert reign.outcome == "abandoned" and len(reign.events) == 1


def test_a_reign_left_before_its_first_decision_is_recorded_too() -> None:
    """Every reign that ends is in the chronicle: one the Lord leaves at its
    first event is abandoned, with no event seen through."""
    chronicle = FakeChronicle()
    net, lord, others = game(chronicle)
    lord.say("--leave")
    (reign,) = chronicle.reigns
    assert reign.outcome == "abandoned" and reign.events == ()
    assert "Lord" in reign.members and len(reign.members) == 5


def test_the_chronicle_command_lists_the_best_and_this_realms_last() -> None:
    """`--chronicle`: the best reigns of every realm, then the last reigns
    of the asker's realm only, newest first."""
    chronicle = FakeChronicle()
    net, lord, others = game(chronicle, reign_length=1)
    round_of(lord, others)
    round_of(lord, others)
    # Then reigns of another realm on the server, the newest: unfiltered,
    # westeros' last reigns would show them first. Five in all, so every
    # one of them is among the five best.
    essos_lord, essos = net.game("essos")
    for _ in range(3):
        round_of(essos_lord, essos)
    assert [r.realm for r in chronicle.reigns] == ["westeros"] * 2 + ["essos"] * 3
    assert all(r.outcome != "abandoned" for r in chronicle.reigns)  # so all are ranked

    def chronicle_of(conn: MemoryConn) -> tuple[list[tuple[str, int]], str,
                                                 list[tuple[str, int]]]:
        """What `--chronicle` shows `conn`: the best rows, the second
        heading, the last rows (each row as realm and score)."""
        conn.take()
        conn.say("--chronicle")
        lines = conn.take()
        assert lines[0] == "*** The best reigns in the chronicle:"
        at = next(i for i, line in enumerate(lines) if line.startswith("*** The last reigns"))

        def rows(part: list[str]) -> list[tuple[str, int]]:
            found = [wire.CHRONICLE_ROW.match(line) for line in part]
            assert all(found), part
            return [(row["realm"], int(row["score"])) for row in found if row]

        return rows(lines[1:at]), lines[at], rows(lines[at + 1:])

    ranked = sorted(enumerate(chronicle.reigns), key=lambda pair: (-pair[1].score, -pair[0]))
    best = [(r.realm, r.score) for _, r in ranked]  # highest first, ties newest first
    best_shown, heading, last = chronicle_of(others[0])
    assert best_shown == best  # of every realm
    assert heading == "*** The last reigns of 'westeros':"
    assert last == [("westeros", r.score) for r in reversed(chronicle.reigns)
                    if r.realm == "westeros"]
    # Asked in essos, the same best, and essos' last five, newest first.
    essos_best, heading, last = chronicle_of(essos[0])
    assert essos_best == best_shown
    assert heading == "*** The last reigns of 'essos':"
    assert last == [("essos", r.score) for r in reversed(chronicle.reigns)
                    if r.realm == "essos"]


def test_the_chronicle_command_says_so_when_the_server_keeps_none() -> None:
    """`--chronicle none`: no list that stays "none yet" forever."""
    net, lord, others = game(NoChronicle(), reign_length=1)
    round_of(lord, others)
    others[0].take()
    others[0].say("--chronicle")
    assert others[0].take() == ["*** This server keeps no chronicle: reigns here are not "
                                "recorded."]


def test_the_holdings_are_told_before_every_decision() -> None:
    """The welcome says what the first reign begins with, a `[Reign Ended]`
    line what the next one begins with: each is what that reign's first
    `[Realm]` line counts its changes from.  A member who joins a game in
    play is told what the realm holds now."""
    server = RealmServer(Settings(reign_length=2), task.Clock(), rng=random.Random(3),
                         chronicle=FakeChronicle())
    net = MemoryNet(server)
    others = [net.join(name) for name in ("Arya", "Bran", "Cersei", "Davos")]
    lord = net.join("Lord")
    seen = lord.take()
    for _ in range(5):
        seen += round_of(lord, others)
    told = now = None  # what the reign begins with; what the realm holds
    checked = 0
    for line in seen:
        report = wire.read_report(line)
        if report is not None:
            now = {name: value for name, (value, _) in report[1].items()}
            if told is not None:
                assert {name: value - change
                        for name, (value, change) in report[1].items()} == told
                checked += 1
        told = wire.holdings_now(line) or (None if report else told)
        now = wire.holdings_now(line) or now
    assert checked >= 3  # the first reign, and the two or more after it
    others.pop().say("--leave")
    eddard = net.join("Eddard")
    (welcome,) = [line for line in eddard.take() if wire.WELCOME.matches(line)]
    assert wire.holdings_now(welcome) == now


def test_a_reigns_members_are_those_there_as_its_events_are_told() -> None:
    """Passers-by who come and go while an event waits are not kept: a
    long-lived realm's record (and the chronicle's pages) stays its size
    times its events, not everyone who ever looked in."""
    chronicle = FakeChronicle()
    net, lord, (arya, bran, cersei, davos) = game(chronicle)
    for member in (cersei, davos):
        member.say("--leave")
    for n in range(50):  # the realm is 3/5: each passer makes it 4/5, and goes
        net.join(f"Passer{n}").say("--leave")
    eddard, jon = net.join("Eddard"), net.join("Jon")  # full again, and they stay
    round_of(lord, [arya, bran, eddard, jon])  # the next event is told with them there
    lord.say("--leave")
    (reign,) = chronicle.reigns
    assert set(reign.members) == {"Lord", "Arya", "Bran", "Cersei", "Davos", "Eddard", "Jon"}


def test_a_newcomer_while_a_reign_is_recorded_is_told_the_next_reigns_holdings() -> None:
    """Between a reign's end and its commit the next reign has not begun,
    but what it holds is known: a newcomer's welcome says that, as the
    `[Reign Ended]` line that follows does, not the fallen reign's last."""
    chronicle = FakeChronicle(hold=True)
    net, lord, (arya, bran, cersei, davos) = game(chronicle, reign_length=1)
    round_of(lord, [arya, bran, cersei])  # Davos has yet to answer
    davos.say("--leave")  # the last awaited: the reign ends, its record waits
    assert chronicle.waiting
    eddard = net.join("Eddard")
    (welcome,) = [line for line in eddard.take() if wire.WELCOME.matches(line)]
    chronicle.commit()
    (ended,) = [line for line in eddard.take() if wire.is_reign_ended(line)]
    assert wire.holdings_now(welcome) == wire.holdings_now(ended) is not None


def test_a_newcomer_to_a_decided_event_sees_the_decision() -> None:
    """The event in play was decided before a seat emptied: the newcomer
    gets it with the Lord's deciding line after it, as the others saw it,
    so a bot among them takes the Lord's next line for talk."""
    net, lord, (arya, bran, cersei, davos) = game(FakeChronicle())
    lord.say("2")
    davos.say("--leave")
    eddard = net.join("Eddard")
    seen = eddard.take()
    at = next(i for i, line in enumerate(seen) if wire.is_event(line))
    assert seen[at + 1] == "Lord: 2"
    assert not [line for line in lord.take() if "full again:" in line]


def test_a_newcomer_who_answers_the_reigns_last_event_is_in_its_record() -> None:
    chronicle = FakeChronicle()
    net, lord, (arya, bran, cersei, davos) = game(chronicle, reign_length=1)
    lord.say("1")
    davos.say("--leave")
    eddard = net.join("Eddard")
    for conn in (arya, bran, cersei, eddard):
        conn.say("aye")
    (reign,) = chronicle.reigns
    assert "Eddard" in reign.members
