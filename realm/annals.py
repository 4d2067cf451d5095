"""The chronicle on the web port: `/chronicle` and `/chronicle.json`.

- `GET /chronicle`: an HTML page of the best reigns (by score, of those
  won or fallen) and the latest, each with a chart of its holdings over its events.  The chart
  is SVG drawn here, inline in the page: no script, nothing from another
  origin, so the page's strict Content-Security-Policy holds.  Every
  text from the chronicle is escaped.
- `GET /chronicle.json`: `{"reigns": [...]}`, newest first (at most
  `?limit=N`, 50 by default, 1000 at most; one realm with `?realm=NAME`),
  each reign as `as_json` gives it.

A chronicle that cannot be read answers 503, saying so.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from realm import wire
from realm.chronicle import MAX_LIMIT, unread
from realm.quiet import Quiet
from realm.recording import Recorder
from realm.records import ReignRecord
from realm.routes import Request, Response
from realm.scenes import HOLDINGS

log = Logger()

HTML = "text/html; charset=utf-8"
JSON = "application/json"
SHOWN = 8  # reigns in each list of the page
#: Each holding's colour in the charts (SVG presentation attributes).
COLOURS = {"Gold": "#e8bb55", "Food": "#9be28a", "Men": "#7fb3ff", "Favour": "#e58fd6"}
WIDTH, HEIGHT, PAD = 320, 110, 6
SCALE = 22  # room on the right for the scale's 0, 50 and 100
MIN_DOT_STEP = 8  # pixels between events for each to have its dot


def routes(chronicle: Recorder, quiet: Quiet, clock: IReactorTime) -> dict[str, Any]:
    """The routes to add to the web site; a failed read is logged through
    `quiet` (one line a minute: a reader may ask as often as it likes)."""
    def unreadable(failure: Failure) -> Response:
        why = unread(failure)
        if why is not None:
            quiet.log(clock, "chronicle_web", log.warn,
                      "The chronicle could not be read for the web: {why}", why=why)
        return Response.text(503, "The chronicle cannot be read just now; try again later.",
                             ("Retry-After", "1"))

    return {"/chronicle": lambda request: page(chronicle, unreadable),
            "/chronicle.json": lambda request: as_json_route(chronicle, request, unreadable)}


Unreadable = Callable[[Failure], Response]


def page(chronicle: Recorder, unreadable: Unreadable) -> Deferred[Response]:
    if not chronicle.keeps:
        return succeed(_page(f"<p class='empty'>{html.escape(wire.CHRONICLE_OFF())}</p>"))
    read = gatherResults([chronicle.best(SHOWN), chronicle.latest(None, SHOWN)],
                         consumeErrors=True)

    def render(found: list[list[ReignRecord]]) -> Response:
        best, latest = found
        return _page("<p class='lead'>Every reign that has ended: the best of those won or "
                     "fallen, and the latest. Each chart shows the realm's holdings after "
                     "each event.</p>" + _legend() + "<h2>The best reigns</h2>"
                     + _reigns(best, "No reign has been won or fallen yet.")
                     + "<h2>The latest reigns</h2>" + _reigns(latest))

    return read.addCallbacks(render, unreadable)


def _page(content: str) -> Response:
    body = "".join([_HEAD, "<h1>The chronicle of realm</h1>", content,
                    "<p class='foot'><a href='/'>Back to the game</a> · "
                    "<a href='/chronicle.json'>as JSON</a></p></main></body></html>"])
    return Response(200, body.encode("utf-8"), HTML)


def as_json(record: ReignRecord) -> dict[str, Any]:
    """A reign for `GET /chronicle.json`: counts, ISO 8601 UTC times, and
    each event's holdings for its chart."""
    return {
        "id": record.id,
        "realm": record.realm,
        "outcome": record.outcome,
        "events": len(record.events),
        "score": record.score,
        "started": _iso(record.started),
        "ended": _iso(record.ended),
        "members": list(record.members),
        "holdings": [dict(event.holdings) for event in record.events],
    }


def _iso(when: float) -> str:
    moment = datetime.fromtimestamp(when, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _shown(when: float) -> str:
    """`when` as a person reads it: `7 Dec 2026, 10:31 UTC`."""
    moment = datetime.fromtimestamp(when, UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def as_json_route(chronicle: Recorder, request: Request,
                  unreadable: Unreadable) -> Deferred[Response] | Response:
    query = parse_qs(urlsplit(request.target).query)
    text = query.get("limit", ["50"])[0]
    # int() would take " 7", "+7", "1_0" and other scripts' digits too.
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
        return Response.text(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    limit = int(text)
    realm = (query.get("realm", [""])[0] or None)
    read = chronicle.latest(realm.lower() if realm else None, limit)

    def render(reigns: list[ReignRecord]) -> Response:
        body = json.dumps({"reigns": [as_json(r) for r in reigns]}, ensure_ascii=False)
        return Response(200, body.encode("utf-8"), JSON)

    return read.addCallbacks(render, unreadable)


_HEAD = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
         "<meta name='viewport' content='width=device-width, initial-scale=1'>"
         "<title>The chronicle — realm</title><link rel='stylesheet' href='/style.css'>"
         "<link rel='icon' href='/favicon.svg' type='image/svg+xml'></head>"
         "<body class='chronicle'><main class='annals'>")


def _legend() -> str:
    keys = "".join(f"<span><svg width='12' height='12' aria-hidden='true'><rect width='12' "
                   f"height='12' fill='{COLOURS[name]}'/></svg> {name}</span>"
                   for name in HOLDINGS)
    return f"<p class='legend'>{keys}</p>"


def _reigns(reigns: list[ReignRecord], none: str = "No reign has ended yet.") -> str:
    if not reigns:
        return f"<p class='empty'>{none}</p>"
    return "<ol class='reigns'>" + "".join(_reign(r) for r in reigns) + "</ol>"


def _reign(reign: ReignRecord) -> str:
    members = ", ".join(html.escape(m) for m in reign.members)
    return (f"<li class='reign' data-realm='reign' data-outcome='{html.escape(reign.outcome)}'>"
            f"<h3>{html.escape(reign.realm)} <span class='outcome'>"
            f"{html.escape(reign.outcome)}</span> <span class='score'>score {reign.score}"
            f"</span></h3><p class='facts'>{wire.counted(len(reign.events), 'event')} · ended "
            f"<time datetime='{_iso(reign.ended)}'>{_shown(reign.ended)}</time> · {members}"
            f"</p>{chart(reign)}</li>")


def chart(reign: ReignRecord) -> str:
    """An SVG line chart of the reign's holdings, one point an event, on a
    scale of 0 to 100; its label says where each holding ended."""
    events = reign.events
    title = f"Holdings of {reign.realm} over {wire.counted(len(events), 'event')}"
    if events:
        last = events[-1].holdings
        title += ", at the end " + ", ".join(f"{name} {last.get(name, 0)}" for name in HOLDINGS)
    frame = (f"<rect x='0' y='0' width='{WIDTH}' height='{HEIGHT}' fill='#15120d' "
             f"stroke='#3a2f14'/>")
    if not events:  # the frame, saying so: every reign shown has its chart
        return _svg(title, frame + f"<text x='{WIDTH / 2:g}' y='{HEIGHT / 2:g}' "
                    "text-anchor='middle' dominant-baseline='middle' fill='#b5a67a'>"
                    "No event was seen through</text>")
    n = len(events)
    step = (WIDTH - PAD - SCALE) / max(n - 1, 1)

    def y(value: int) -> float:
        return PAD + (HEIGHT - 2 * PAD) * (1 - value / 100)

    frame += "".join(
        f"<line x1='{PAD}' x2='{WIDTH - SCALE}' y1='{y(v):g}' y2='{y(v):g}' stroke='#3a2f14' "
        f"stroke-dasharray='3 3'/><text x='{WIDTH - SCALE + 3}' y='{y(v):g}' font-size='9' "
        f"fill='#b5a67a' dominant-baseline='middle'>{v}</text>" for v in (0, 50, 100))

    # A dot at each event while they stand apart (and for a reign of one
    # event, whose line alone would have no length to draw).
    dots = step >= MIN_DOT_STEP or n == 1
    lines = []
    for name in HOLDINGS:
        xy = [(PAD + i * step, y(e.holdings.get(name, 0))) for i, e in enumerate(events)]
        colour = COLOURS[name]
        points = " ".join(f"{x:.1f},{v:.1f}" for x, v in xy)
        lines.append(f"<polyline points='{points}' fill='none' stroke='{colour}' "
                     f"stroke-width='2'><title>{name}</title></polyline>")
        if dots:
            lines.extend(f"<circle cx='{x:.1f}' cy='{v:.1f}' r='2.5' fill='{colour}'/>"
                         for x, v in xy)
    return _svg(title, frame + "".join(lines))


def _svg(title: str, drawn: str) -> str:
    return (f"<svg class='chart' data-realm='chart' viewBox='0 0 {WIDTH} {HEIGHT}' "
            f"width='{WIDTH}' height='{HEIGHT}' role='img' aria-label='{html.escape(title)}'>"
            f"{drawn}</svg>")
