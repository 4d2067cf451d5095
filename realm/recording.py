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
#: The quiet log's kind for the chronicle's failures and recoveries: one
#: line a minute, the last saying how it is now, and counting what it lost.
CHRONICLE = "chronicle"


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
        stats.chronicle_failing = True
        why = failure.getErrorMessage()

        def say(_: int) -> None:  # the failures since the last line, said or not
            n = stats.reigns_unrecorded - stats.unrecorded_told
            stats.unrecorded_told = stats.reigns_unrecorded
            log.error("The chronicle could not record {what} of {realm} ({outcome}, score "
                      "{score}): {why}; the game goes on", what=since_last(n, "a reign", "reigns"),
                      realm=record.realm, outcome=record.outcome, score=record.score, why=why)
        stats.quiet.tell(clock, CHRONICLE, say)

    def recorded(_: object) -> None:
        if stats.chronicle_failing:  # after failures: back

            def say(_: int) -> None:  # the failures since the last such line
                n = stats.reigns_unrecorded - stats.unrecorded_before
                stats.unrecorded_before = stats.unrecorded_told = stats.reigns_unrecorded
                log.info("The chronicle records reigns again ({n} could not be recorded "
                         "before)", n=n)
            stats.chronicle_failing = False
            stats.quiet.tell(clock, CHRONICLE, say)

    return chronicle.record(record).addCallbacks(recorded, failed)
