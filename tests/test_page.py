"""The page reads the wire as realm/wire.py writes it.

realm/static/app.js keeps every pattern it reads server lines with in one
block (`NAME`, then `const WIRE = {...}`, one pattern a line).  These tests
take that block from the JS text, compile each pattern with Python's `re`
(they are written to mean the same in both), and run them on lines made
with wire.py's own templates: a wording changed in wire.py and not in the
page fails here.  The page matches lines without their leading `*** `.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from realm import wire

APP = resources.files("realm").joinpath("static", "app.js").read_text()
FLAGS = {"s": re.DOTALL, "g": 0, "i": re.IGNORECASE}
_CONST = re.compile(r"^ *const (\w+) = String\.raw`([^`]*)`;$", re.M)
_ENTRY = re.compile(r"^ *(\w+): (.+),$", re.M)
_NEW = re.compile(r'new RegExp\(String\.raw`([^`]*)`(?:, "([a-z]*)")?\)')


def _compile(value: str, consts: dict[str, str]) -> re.Pattern[str]:
    if value.startswith("/"):  # a regex literal: /source/flags
        source, flags = value[1:].rsplit("/", 1)
    else:
        found = _NEW.fullmatch(value)
        assert found, f"not a pattern app.js's test can read: {value}"
        source, flags = found.group(1), found.group(2) or ""
        source = re.sub(r"\$\{(\w+)\}", lambda m: consts[m.group(1)], source)
    mode = re.ASCII  # JavaScript's \d, \w and \b without the u flag
    for flag in flags:
        mode |= FLAGS[flag]
    return re.compile(source, mode)


def page_patterns() -> dict[str, re.Pattern[str]]:
    """app.js's WIRE block, compiled."""
    consts = dict(_CONST.findall(APP))
    start = APP.index("const WIRE = {")
    block = APP[start:APP.index("\n  };", start)]
    return {name: _compile(value, consts) for name, value in _ENTRY.findall(block)}


PAGE = page_patterns()


def page(name: str) -> re.Pattern[str]:
    return PAGE[name]


def reads(name: str, line: str) -> re.Match[str]:
    """What app.js's `WIRE.name` reads of `line`, which it must."""
    found = page(name).match(line)
    assert found is not None, (f"app.js's WIRE.{name} no longer reads {line!r}: "
                               "make realm/static/app.js agree with realm/wire.py")
    return found


def seen(line: bytes) -> str:
    """A wire-ready line as the page matches it: no `*** `, no CRLF."""
    return line.decode("utf-8").removesuffix("\r\n").removeprefix(wire.NOTICE)


class Sample(dict[str, Any]):
    """Fields for any template: a plausible word for each."""

    def __missing__(self, key: str) -> Any:
        return {"n": 2, "size": 5, "limit": 3, "seconds": 30, "missing": 1,
                "events": 12, "score": 87, "gone": wire.LEFT_WHY}.get(key, "Arya")


def templates() -> list[wire.Line]:
    return [v for v in vars(wire).values() if isinstance(v, wire.Line)]


def sample(template: wire.Line) -> str:
    """A line of `template`, as the page sees it."""
    return seen((template.head + template.text.format_map(Sample())).encode() + wire.CRLF)


# -- names, chat, joining ---------------------------------------------------------

def test_the_name_rule_is_wires() -> None:
    assert dict(_CONST.findall(APP))["NAME"] == wire.NAME_RULE


@pytest.mark.parametrize("line", ["Arya: hello", "Lord: 1", "Bran: a: b", "Lord:  ",
                                  "Mcdonald: <b>x</b>", "Davos: two\nlines"])
def test_chat(line: str) -> None:
    found = reads("chat", line)
    assert (found.group(1), found.group(2)) == wire.chat(line)


@pytest.mark.parametrize("line", ["arya hello", ": x", "1arya: x", "A" * 21 + ": x"])
def test_not_chat(line: str) -> None:
    assert page("chat").match(line) is None and wire.chat(line) is None


def test_entered() -> None:
    for name, n, size in (("Arya", 1, 5), ("Lord", 5, 5), ("Bran-2_x", 12, 40)):
        line = seen(wire.ENTERED.notice(name=name, n=n, size=size))
        fields = wire.ENTERED.match(wire.NOTICE + line)
        assert fields is not None and fields["name"] == wire.entered(wire.NOTICE + line)
        found = reads("entered", line)
        assert found.groups() == (fields["name"], fields["n"], fields["size"])


@pytest.mark.parametrize("why", wire.GONE_WHYS)
def test_departed(why: str) -> None:
    line = seen(wire.DEPARTED.notice(name="Bran", gone=why, n=3, size=5))
    found = reads("departed", line)
    assert found.groups() == ("Bran", why, "3", "5")
    assert page("entered").match(line) is None


def test_departed_is_only_a_departure() -> None:
    """Only the ways of going read as one, as in realm.wire: an `(n/SIZE)`
    line of another kind is not a member gone, whatever order it is tried in."""
    line = seen(wire.ENTERED.notice(name="Bran", n=3, size=5))
    assert page("departed").match(line) is None and wire.DEPARTED.match(line) is None


def test_who_and_dismissed() -> None:
    line = seen(wire.WHO.notice(realm="westeros", n=3, size=5, names="Lord, Arya, Bran"))
    found = reads("who", line)
    assert found.groups() == ("westeros", "3", "5", "Lord, Arya, Bran")
    line = seen(wire.DISMISSED.notice(name="Bran", n=4, size=5))
    found = reads("dismissed", line)
    assert found.groups() == ("Bran", "4", "5")


def test_welcome_and_the_password() -> None:
    told = wire.holdings({"Gold": 45, "Food": 50, "Men": 62, "Favour": 55}, {})
    line = seen(wire.WELCOME.notice(n=5, size=5, holdings=told, events=12, event_s="events"))
    found = reads("welcome", line)
    assert found.group(1) == told
    found = reads("welcome", "Welcome to the Game of Thrones! 5/5 are present.")
    assert found.group(1) is None  # another server's: a banner still
    assert wire.holdings_now(wire.NOTICE + line) == {"Gold": 45, "Food": 50, "Men": 62,
                                                     "Favour": 55}
    assert page("askName").match(seen(wire.ASK_NAME.notice()))  # not shown: the form asks
    assert [t.key for t in templates() if page("askName").search(sample(t))] == ["ask_name"]
    assert page("askPassword").match(seen(wire.ASK_PASSWORD.notice()))
    others = [t for t in templates() if t is not wire.ASK_PASSWORD]
    assert not [t for t in others if page("askPassword").search(sample(t))]


def test_errors() -> None:
    errors = [t for t in templates() if t.is_error]
    assert errors and all(page("error").match(sample(t)) for t in errors)
    assert not [t for t in templates() if not t.is_error and page("error").match(sample(t))]


#: The refusals of a line a player sent, which then did not go: after one,
#: the Lord's option buttons that line retired come back.
UNSENT = {wire.TOO_FAST, wire.CONTROL, wire.NOT_UTF8, wire.LINE_TOO_LONG, wire.ONE_LINE,
          wire.WAIT_FOR_ANSWER}


def test_a_refused_line_is_told_apart() -> None:
    assert {t for t in templates() if page("unsent").match(sample(t))} == UNSENT


# -- goodbyes -------------------------------------------------------------------------

#: What the server says just before it closes a session.
PARTING = [wire.FAREWELL, wire.LORD_LEFT, wire.SHUTTING_DOWN, wire.DISMISSED_YOU,
           wire.REALM_ENDED, wire.REALM_GONE, wire.LOGIN_TIMEOUT, wire.IDLE_TIMEOUT,
           wire.LAST_PASSWORD, wire.CUT_OFF, wire.REALM_MOVED, wire.NOT_HTTP]


def test_the_lines_before_a_close() -> None:
    parting = page("parting")
    assert [t.key for t in PARTING if not parting.search(sample(t))] == []
    stay = [t for t in templates() if t not in PARTING]
    assert [t.key for t in stay if parting.search(sample(t))] == []


def test_your_own_farewell() -> None:
    found = reads("farewell", seen(wire.FAREWELL.notice(name="Arya")))
    assert found.group(1) == "Arya"
    assert page("farewell").match(seen(wire.LORD_LEFT.notice())) is None


# -- events and the reign -----------------------------------------------------------------

@pytest.mark.parametrize(("text", "a", "b"), [
    ("Wildlings at the Wall!", "burning", "fleeing"),
    ("A raven: what now? Choose", "forging", "spying"),
    ("The well is dry.", "digging", "praying-hard"),
])
def test_an_event_and_its_options(text: str, a: str, b: str) -> None:
    line = wire.notice(wire.event_text(text, a, b))
    shown = seen(line)
    assert page("event").match(shown) and wire.is_event(line.decode().rstrip())
    found = reads("options", shown)
    options = wire.event_options(line.decode().rstrip())
    assert options is not None
    assert (found.group(2), found.group(4)) == (f"1 {options[0]}", f"2 {options[1]}")
    assert "".join(found.groups()) == shown  # the page keeps every character


REPORTS = [
    ("The wall holds.", {"Gold": 45, "Food": 50, "Men": 62, "Favour": 55},
     {"Gold": -5, "Men": 12}),
    ("Nothing changes", {"Gold": 0, "Food": 100}, {}),
    ("Year 3 of the Long Night: Men 4 fall.", {"Men": 96, "Gold": 7}, {"Men": -4, "Gold": 7}),
]


@pytest.mark.parametrize(("text", "values", "changes"), REPORTS)
def test_a_report_of_the_holdings(text: str, values: dict[str, int],
                                  changes: dict[str, int]) -> None:
    line = wire.report(text, values, changes).decode().removesuffix("\r\n")
    wire_text, wire_holdings = wire.read_report(line) or ("", {})
    found = reads("report", seen(line.encode()))
    assert found.group(1) == wire_text == text
    holdings = {name: (int(value), int(change or 0))
                for name, value, change in page("holding").findall(found.group(2))}
    assert holdings == wire_holdings == {k: (v, changes.get(k, 0)) for k, v in values.items()}


@pytest.mark.parametrize(("outcome", "why", "score", "events"), [
    ("Won", "Twelve events seen through.", 87, 12), ("Fallen", "The gold ran out (0).", -3, 1),
    ("Abandoned", "The Lord has left", 0, 0)])
@pytest.mark.parametrize("then", ["", wire.THEN.format(holdings="Gold 45 \u00b7 Food 50")])
def test_the_end_of_a_reign(outcome: str, why: str, score: int, events: int, then: str) -> None:
    """With what the next reign begins with, or (another server) without."""
    line = seen(wire.REIGN_OVER.notice(outcome=outcome, why=why, events=events,
                                       event_s=wire.noun(events, "event"), score=score,
                                       then=then))
    fields = wire.REIGN_OVER.match(wire.NOTICE + line)
    assert fields is not None and wire.is_reign_ended(wire.NOTICE + line)
    found = reads("reignEnded", line)
    assert found.groups() == (fields["outcome"], fields["why"], fields["events"],
                              fields["score"], fields["holdings"])
    assert page("report").match(line) is None


def test_every_pattern_of_the_page_is_checked() -> None:
    """A pattern added to app.js needs a test here."""
    used = set(re.findall(r'(?:page|reads)\("(\w+)"', Path(__file__).read_text()))
    assert set(PAGE) - used == set()
