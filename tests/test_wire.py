"""The wire's words: every template formats a line that reads back as
itself, refusals are told apart by their template, and the reign's lines
round-trip.  (The web page's patterns are checked against these in
tests/test_page.py.)"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realm import wire

#: A value for each kind of field a template names.
SAMPLES = {
    "name": "Arya", "realm": "winterfell", "n": 3, "size": 5, "limit": 16, "missing": 2,
    "realms": "1 realm", "events": 7, "score": 143, "seconds": 4, "bytes": 2000,
    "outcome": "Fallen", "event_s": "events", "holdings": "Gold 45 \u00b7 Food 50",
    "then": ". A new reign begins with Gold 45 \u00b7 Food 50.", "gone": "has left the realm",
}


def fields_of(template: wire.Line) -> dict[str, object]:
    names = [f for _, f, _, _ in string.Formatter().parse(template.text) if f]
    return {name: SAMPLES.get(name, f"some {name}") for name in names}


#: Every template a client may need to read back (the help rows are for
#: people: their padded, adjacent fields do not read back).
TEMPLATES = sorted((t for t in wire._LINES.values() if t is not wire.HELP_ROW),
                   key=lambda t: t.key)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_template_reads_back_as_itself(template: wire.Line) -> None:
    fields = fields_of(template)
    line = template.notice(**fields).decode("utf-8")
    assert line.endswith("\r\n") and line.count("\r\n") == 1
    line = line[:-2]
    assert line.startswith(wire.ERROR if template.is_error else wire.NOTICE)
    read = template.match(line)
    assert read is not None  # with its fields, and the parts of some (`then`'s holdings)
    assert set(read) - set(fields) <= {"holdings"}
    assert {k: read[k] for k in fields} == {k: str(v) for k, v in fields.items()}
    assert wire.kind(line) is template or wire.kind(line).match(line) is not None  # type: ignore[union-attr]


def test_refusals_are_told_apart_by_their_template() -> None:
    assert wire.refusal(wire.NAME_TAKEN.notice(name="Arya", realm="north").decode()[:-2]) \
        == "name_taken"
    assert wire.refusal(wire.LORD_TAKEN.notice(realm="north").decode()[:-2]) == "lord_taken"
    assert wire.refusal(wire.UNREACHABLE.notice(realm="north").decode()[:-2]) == "unreachable"
    assert wire.refusal("*** Error: something new") == "error"
    assert wire.refusal("*** Arya has entered the realm (1/5)") is None
    # A line that only mentions a refusal's words is not that refusal.
    assert wire.refusal("*** Error: The name Arya is taken, they say") != "name_taken"


def test_recognisers() -> None:
    assert wire.entered("*** Grey-worm has entered the realm (2/5)") == "Grey-worm"
    assert wire.entered("Arya: *** Bran has entered the realm (2/5)") is None
    assert wire.LORD_LEFT.matches("*** The Lord has left the realm. The game is over.")
    assert not wire.LORD_LEFT.matches("Arya: The Lord has left the realm. The game is over.")
    assert wire.departed("*** Davos has been dismissed by the Lord (4/5)") == "Davos"
    assert wire.who("*** In the realm 'x' (2/5): Lord, Arya") == ["Lord", "Arya"]
    assert wire.chat("Lord: we ride") == ("Lord", "we ride")
    assert wire.chat("*** Lord: we ride") is None
    assert wire.realm_over(wire.REALM_GONE.notice(realm="x").decode()[:-2])
    event = wire.NOTICE + wire.event_text("Arya reports: Winter is coming.", "burning", "fleeing")
    assert wire.is_event(event) and wire.event_options(event) == ("burning", "fleeing")
    assert wire.event_options("*** [New Event] no options here") is None


HOLDINGS = st.dictionaries(st.sampled_from(["Gold", "Food", "Men", "Favour"]),
                           st.integers(0, 100), min_size=1)


@given(HOLDINGS, st.data(), st.text(alphabet=string.ascii_letters + " .,!'", min_size=1,
                                    max_size=60).map(str.strip).filter(bool))
def test_a_realm_report_reads_back(values: dict[str, int], data: st.DataObject,
                                   text: str) -> None:
    changes = {name: data.draw(st.integers(-30, 30)) for name in values}
    line = wire.report(text, values, changes).decode()[:-2]
    assert re.fullmatch(r"\*\*\* \[Realm\] .+", line)
    said, read = wire.read_report(line)  # type: ignore[misc]
    assert said == text
    assert read == {name: (values[name], changes[name]) for name in values}


def test_a_report_with_the_contracts_example() -> None:
    line = ("*** [Realm] The wall holds. Gold 45 (-5) \u00b7 Food 50 \u00b7 Men 62 (+12) "
            "\u00b7 Favour 55")
    assert wire.read_report(line) == ("The wall holds.", {
        "Gold": (45, -5), "Food": (50, 0), "Men": (62, 12), "Favour": (55, 0)})
