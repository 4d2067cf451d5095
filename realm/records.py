"""What the chronicle keeps of a reign: plain, immutable records.

`realm.reign` makes them as a reign goes; `realm.chronicle` stores and
reads them back.  No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

OUTCOMES = ("won", "fallen", "abandoned")


class EventRecord(NamedTuple):
    """One event of a reign: what was told, what the Lord decided, and
    each holding once the event was over.  (A tuple: one is made every
    round of every realm.)"""

    event: str  # the event's text, as sent after `*** `
    decision: str  # the Lord's deciding line
    holdings: dict[str, int]


@dataclass(frozen=True)
class ReignRecord:
    """One ended reign of one realm."""

    realm: str
    members: tuple[str, ...]  # everyone who was in the realm during the reign
    events: tuple[EventRecord, ...]
    outcome: str  # one of OUTCOMES
    score: int
    started: float  # seconds since the epoch
    ended: float
    id: int | None = field(default=None, compare=False)  # set once stored
