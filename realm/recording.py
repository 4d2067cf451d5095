"""A realm's ended reigns on their way to the chronicle.

`keep` hands a reign's record to the chronicle and watches the answer:
a failure is counted and logged (once a minute, with how many since) and
the game goes on; the first success after failures says the chronicle
records again.  `Recorder` is what a realm needs of a chronicle
(`realm.chronicle.Chronicle` is one).
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from realm.quiet import since_last
from realm.records import ReignRecord
from realm.stats import Stats

log = Logger()


class Recorder(Protocol):
    """Where ended reigns go, and are read back (realm.chronicle's
    `Chronicle`); `record` fires or fails within seconds: the game waits."""

    keeps: bool  # False: reigns are dropped (`--chronicle none`)

    def record(self, reign: ReignRecord) -> Deferred[int]: ...
    def best(self, limit: int = 5) -> Deferred[list[ReignRecord]]: ...
    def latest(self, realm: str | None = None, limit: int = 5) -> Deferred[list[ReignRecord]]: ...


def keep(chronicle: Recorder, record: ReignRecord, stats: Stats,
         clock: IReactorTime) -> Deferred[Any]:
    """Write `record`; fires with None once it is kept or could not be."""

    def failed(failure: Any) -> None:
        stats.reigns_unrecorded += 1
        why = failure.getErrorMessage()
        stats.quiet.tell(clock, "unrecorded", lambda n: log.error(
            "The chronicle could not record {what} of {realm} ({outcome}, score "
            "{score}): {why}; the game goes on", what=since_last(n, "a reign", "reigns"),
            realm=record.realm, outcome=record.outcome, score=record.score, why=why))

    def recorded(_: object) -> None:
        if stats.reigns_unrecorded > stats.unrecorded_before:  # after failures: back
            stats.quiet.log(clock, "recorded_again", log.info, "The chronicle records reigns "
                            "again ({n} could not be recorded before)",
                            n=stats.reigns_unrecorded - stats.unrecorded_before)
            stats.unrecorded_before = stats.reigns_unrecorded
            stats.quiet.forget("unrecorded")  # counted here, not again at the minute's end

    return chronicle.record(record).addCallbacks(recorded, failed)
