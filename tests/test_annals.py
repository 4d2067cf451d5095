"""`/chronicle` and `/chronicle.json`: the routes against an in-memory
chronicle, and the whole way through a real `twistd realm --web` whose
reigns were written to a real SQLite file."""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest_twisted
from realm_procs import WAIT, Peer, command, running
from twisted.internet import task
from twisted.logger import formatEvent

from realm import annals, wire
from realm.chronicle import NoChronicle
from realm.quiet import Quiet
from realm.records import EventRecord, ReignRecord
from realm.routes import Request, Response
from realm.testing import FakeChronicle


def reign(realm: str, score: int, ended: float, outcome: str = "won",
          members: tuple[str, ...] = ("Lord", "Arya")) -> ReignRecord:
    events = tuple(EventRecord(f"event {i}", "1", {"Gold": 40 + i, "Food": 50 - i,
                                                     "Men": 60, "Favour": 30 + 2 * i})
                   for i in range(4))
    return ReignRecord(realm, members, events, outcome, score, ended - 60, ended)


def get(path: str) -> Request:
    return Request("GET", path, path.partition("?")[0], (), "192.0.2.1", False)


def routes_of(chronicle: Any) -> dict[str, Any]:
    return annals.routes(chronicle, Quiet(), task.Clock())


async def answer(handler: Any, path: str) -> Response:
    result = handler(get(path))
    return await result if hasattr(result, "addCallback") else result  # type: ignore[no-any-return]


@pytest_twisted.ensureDeferred
async def test_the_best_are_won_or_fallen_and_the_page_says_so() -> None:
    """A realm-play quit at once leaves only an abandoned reign: it is among
    the latest, and the best say none was played to its end."""
    chronicle = FakeChronicle()
    chronicle.record(reign("north", 0, 1000.0, "abandoned"))
    page = (await answer(routes_of(chronicle)["/chronicle"], "/chronicle")).body.decode()
    best, latest = page.split("<h2>The latest reigns</h2>")
    assert "No reign has been won or fallen yet." in best and "score 0" not in best
    assert "score 0" in latest and "the best of those won or fallen" in page


@pytest_twisted.ensureDeferred
async def test_the_page_shows_best_and_latest_each_with_its_chart() -> None:
    chronicle = FakeChronicle()
    for r in [reign("north", 300, 1000.0), reign("south", 900, 2000.0, "fallen"),
              reign("north", 500, 3000.0, members=("Lord", "<b>Bran</b>"))]:
        chronicle.record(r)
    response = await answer(routes_of(chronicle)["/chronicle"], "/chronicle")
    assert response.status == 200 and response.content_type.startswith("text/html")
    page = response.body.decode()
    best, latest = page.split("<h2>The latest reigns</h2>")
    assert [m.group(1) for m in re.finditer(r"score (\d+)", best)] == ["900", "500", "300"]
    assert [m.group(1) for m in re.finditer(r"score (\d+)", latest)] == ["500", "900", "300"]
    assert page.count("data-realm='chart'") == 6
    assert page.count("<polyline") == 6 * 4  # a line for each holding
    assert "<b>Bran</b>" not in page and "&lt;b&gt;Bran&lt;/b&gt;" in page
    # When, as a person reads it (and as a machine does, in the markup).
    assert "ended <time datetime='1970-01-01T00:50:00Z'>1 Jan 1970, 00:50 UTC</time>" in page
    assert "<script" not in page and "style=" not in page  # the page's CSP allows neither


def test_a_reign_of_one_event_has_its_dots() -> None:
    """A line through one point has no length to draw: each holding gets
    a dot at each event."""
    one = ReignRecord("north", ("Lord",), (EventRecord("event", "1", {
        "Gold": 40, "Food": 50, "Men": 60, "Favour": 30}),), "fallen", 130, 1.0, 2.0)
    svg = annals.chart(one)
    assert svg.count("<polyline") == 4 and svg.count("<circle") == 4
    assert "cy='64.8'" in svg  # Gold 40: 6 + 98 x (1 - 0.40), where 40 belongs
    # On a scale read from 0 to 100, and said in words for a screen reader.
    assert [t for t in ("'>0</text>", "'>50</text>", "'>100</text>") if t in svg] == [
        "'>0</text>", "'>50</text>", "'>100</text>"]
    assert "over 1 event, at the end Gold 40, Food 50, Men 60, Favour 30'" in svg
    four = reign("north", 1, 1.0)
    long = dataclasses.replace(four, events=four.events * 30)
    assert "<circle" not in annals.chart(long)  # 120 events: too close for dots


def test_a_reign_abandoned_before_its_first_event_was_settled_has_an_empty_chart() -> None:
    """Every reign shown has its chart: one with no event says so in it."""
    none = ReignRecord("north", ("Lord",), (), "abandoned", 160, 1.0, 2.0)
    svg = annals.chart(none)
    assert svg.startswith("<svg class='chart'") and "aria-label='Holdings of north over 0 " \
        "events'" in svg
    assert ">No event was seen through<" in svg and "<polyline" not in svg


@pytest_twisted.ensureDeferred
async def test_the_json_is_newest_first_with_the_contracts_fields() -> None:
    chronicle = FakeChronicle()
    for n in range(5):
        chronicle.record(reign("north" if n % 2 else "south", n, 1000.0 + n))
    route = routes_of(chronicle)["/chronicle.json"]
    body = json.loads((await answer(route, "/chronicle.json")).body)
    assert [r["score"] for r in body["reigns"]] == [4, 3, 2, 1, 0]
    first = body["reigns"][0]
    assert {"realm", "outcome", "events", "score", "started", "ended", "members"} <= set(first)
    assert first["events"] == 4 and first["ended"].endswith("Z")
    north = json.loads((await answer(route, "/chronicle.json?realm=NORTH&limit=1")).body)
    assert [(r["realm"], r["score"]) for r in north["reigns"]] == [("north", 3)]
    assert (await answer(route, "/chronicle.json?limit=0")).status == 400
    assert (await answer(route, "/chronicle.json?limit=x")).status == 400
    for odd in ("1_0", "+1", "%201", "%D9%A3", "1001"):  # as int() would take them, or too many
        assert (await answer(route, f"/chronicle.json?limit={odd}")).status == 400, odd


@pytest_twisted.ensureDeferred
async def test_a_server_that_keeps_no_chronicle_says_so() -> None:
    routes = routes_of(NoChronicle())
    page = (await answer(routes["/chronicle"], "/chronicle")).body.decode()
    assert "This server keeps no chronicle: reigns here are not recorded." in page
    assert "No reign has ended yet" not in page  # as if one might
    body = json.loads((await answer(routes["/chronicle.json"], "/chronicle.json")).body)
    assert body == {"reigns": []}


@pytest_twisted.ensureDeferred
async def test_an_unreadable_chronicle_answers_503_and_is_logged_once_a_minute(
        events: list[dict[str, Any]]) -> None:
    class Broken(FakeChronicle):
        def best(self, limit: int = 5) -> Any:
            from twisted.internet.defer import fail
            return fail(RuntimeError("the disk is gone"))

    clock, quiet = task.Clock(), Quiet()
    routes = annals.routes(Broken(), quiet, clock)
    for _ in range(20):  # a reader may ask as often as it likes: the log is not its to fill
        response = await answer(routes["/chronicle"], "/chronicle")
        assert response.status == 503 and b"cannot be read" in response.body
        assert ("Retry-After", "1") in response.headers
    assert told(events) == ["The chronicle could not be read for the web: the disk is gone"]
    clock.advance(60)
    assert told(events)[1:] == ["19 such lines since the last, the last: The chronicle could "
                                "not be read for the web: the disk is gone"]


def told(events: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(e) for e in events if "could not be read" in formatEvent(e)]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_real_server_shows_its_ended_reigns(tmp_path: Path) -> None:
    chronicle = f"sqlite:{tmp_path / 'realm.sqlite'}"
    with running(command("twistd"), "-n", "--pidfile=", "realm", "--size", "2",
                 "--listen", "tcp:0:interface=127.0.0.1", "--web", "tcp:0:interface=127.0.0.1",
                 "--reign-length", "2", "--chronicle", chronicle, cwd=str(tmp_path)) as server:
        ports = [int(server.expect_re(r"starting on (\d+)").group(1)) for _ in range(2)]
        line, web = ports
        lord, arya = Peer.connect(f"tcp:127.0.0.1:{line}"), Peer.connect(f"tcp:127.0.0.1:{line}")
        arya.send(b"arya@kings\n")
        lord.send(b"lord@kings\n")
        for _ in range(2):
            lord.expect("[New Event]")
            lord.send(b"2\n")
            arya.expect("Lord: 2")
            arya.send(b"aye\n")
        ended = wire.REIGN_OVER.match(lord.expect("[Reign Ended]"))
        assert ended is not None
        status, body = fetch(f"http://127.0.0.1:{web}/chronicle.json")
        assert status == 200
        (only,) = json.loads(body)["reigns"]
        assert (only["realm"], only["events"], str(only["score"])) == (
            "kings", 2, ended["score"])
        assert len(only["holdings"]) == 2 and set(only["members"]) == {"Lord", "Arya"}
        status, page = fetch(f"http://127.0.0.1:{web}/chronicle")
        assert status == 200 and b"data-realm='chart'" in page and b"kings" in page
