"""realm.quiet: a line a kind a minute, the rest counted, nothing lost."""

from __future__ import annotations

from twisted.internet import task

from realm.quiet import Quiet, since_last


def test_one_line_a_kind_an_interval_and_the_rest_counted() -> None:
    clock, quiet, said = task.Clock(), Quiet(60.0), []
    for n in range(5):
        quiet.tell(clock, "a", lambda k, n=n: said.append(("a", k, n)))
    quiet.tell(clock, "b", lambda k: said.append(("b", k, 0)))
    assert said == [("a", 1, 0), ("b", 1, 0)]  # each kind's first, at once
    clock.advance(59.9)
    assert len(said) == 2
    clock.advance(0.1)  # the other four, told by the last of them
    assert said[2:] == [("a", 4, 4)]
    clock.advance(60)  # none came meanwhile: nothing to say
    assert len(said) == 3
    quiet.tell(clock, "a", lambda k: said.append(("a", k, 9)))  # a minute since: at once
    assert said[3:] == [("a", 1, 9)]


def test_stop_says_what_waits_once() -> None:
    clock, quiet, said = task.Clock(), Quiet(60.0), []
    for _ in range(3):
        quiet.tell(clock, "a", said.append)
    quiet.stop()
    assert said == [1, 2]
    clock.advance(120)
    quiet.stop()
    assert said == [1, 2] and not clock.getDelayedCalls()


def test_since_last() -> None:
    assert since_last(1, "a line", "lines") == "a line"
    assert since_last(3, "a line", "lines") == "3 lines since the last such line, the last"
