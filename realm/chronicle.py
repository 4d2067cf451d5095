"""The chronicle: every ended reign, kept in a database.

`open_now(url)` opens one at start-up (`open_chronicle(url)` once the
reactor runs), its schema upgraded first (`realm.chronicle_engines`):

- `sqlite:PATH`: the embedded default (`sqlite:realm.sqlite`), a file
  relative to the working directory;
- `postgresql://USER[:PASSWORD]@HOST[:PORT]/DB` (or `postgres://`): what a
  cluster of processes shares; it needs `realm[postgresql]` (psycopg 3);
- `none`: no chronicle; records are dropped, reads are empty.

Every call returns a Deferred, the work done in adbapi's threads.
`record()` fires once the reign is committed (on SQLite, in the WAL: a
`kill -9` right after loses nothing); a failure is a `ChronicleError` of
one line saying what and where, which the caller logs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, FirstError, fail, succeed
from twisted.python.failure import Failure

from realm import chronicle_rows as rows
from realm.chronicle_engines import (
    Cursor,
    Engine,
    Migration,
    PostgresEngine,
    SchemaError,
    SqliteEngine,
    interact,
    shipped_migrations,
)
from realm.chronicle_pool import Failed, Pool
from realm.chronicle_url import DEFAULT_URL, ChronicleURL, parse_url
from realm.records import ReignRecord

__all__ = ["DEFAULT_URL", "Chronicle", "ChronicleBusy", "ChronicleError", "ChronicleURL",
           "DatabaseChronicle", "NoChronicle", "open_chronicle", "open_now", "parse_url", "unread"]

MAX_LIMIT = 1000  # reigns one read may ask for
GROUP_WAIT = 0.05  # seconds between the starts of two writes, at most
GROUP_MOST = 500  # reigns that go at once, whatever the wait
READ_WAIT = 5.0  # seconds a reader (a page, --chronicle) waits for a database
WRITE_WAIT = 5.0  # seconds a reign's record waits (and its `[Reign Ended]` line with it)
MOST_READS = 8  # reads at once (a page makes two): a flood of readers is refused

T = TypeVar("T")


class ChronicleError(Exception):
    """The chronicle could not do what was asked; `str()` is one line."""


class ChronicleBusy(ChronicleError):
    """Too many reads at once (`MOST_READS`): the reader is told to try
    again, and it is not worth a log line (a flood would fill the log)."""


def unread(failure: Failure) -> str | None:
    """Why a read failed, for the log; None if the chronicle was only busy.
    (`failure` may be a `FirstError` of `gatherResults`.)"""
    if isinstance(failure.value, FirstError):
        failure = failure.value.subFailure
    return None if failure.check(ChronicleBusy) else failure.getErrorMessage()


class Chronicle(Protocol):
    """Where the server keeps its ended reigns."""

    where: str  # what it is, for log lines: a URL without its password
    keeps: bool  # False: reigns are dropped (`--chronicle none`)

    def record(self, reign: ReignRecord) -> Deferred[int]:
        """Store `reign`; fire with its new id once it is committed, or fail
        (within `WRITE_WAIT` seconds, however the database hangs)."""

    def best(self, limit: int = 5) -> Deferred[list[ReignRecord]]:
        """The `limit` best reigns won or fallen: highest score first, ties newest first."""

    def latest(self, realm: str | None = None, limit: int = 5) -> Deferred[list[ReignRecord]]:
        """The `limit` newest reigns of `realm` (as recorded), or of all."""

    def close(self) -> Deferred[None]:
        """Finish what was asked, then let the database go (or fail, having
        let it go, once `WRITE_WAIT` seconds have passed)."""


class NoChronicle:
    """`--chronicle none`: keeps nothing."""

    where = "none"
    keeps = False

    def record(self, reign: ReignRecord) -> Deferred[int]:
        return succeed(0)  # dropped: no id

    def best(self, limit: int = 5) -> Deferred[list[ReignRecord]]:
        return succeed([])

    def latest(self, realm: str | None = None, limit: int = 5) -> Deferred[list[ReignRecord]]:
        return succeed([])

    def close(self) -> Deferred[None]:
        return succeed(None)


class DatabaseChronicle:
    """A chronicle in SQLite or PostgreSQL, through an adbapi pool.

    Each call is one transaction in one of the pool's threads. On a
    connection found dead (a PostgreSQL restarted since) the call runs
    once more on a fresh one: nothing was committed, nothing is doubled.

    Reads have a pool of their own (`reads`; WAL lets SQLite read beside
    the writer): a record never queues behind a web page's reads.

    Records are committed in groups: the reigns that end while one
    transaction writes, or within `GROUP_WAIT` seconds of its start, go
    together in the next.  An idle chronicle writes at once; a busy one
    makes at most 1/GROUP_WAIT transactions a second (a trip to the
    pool's thread costs more than the writing), one at a time.
    """

    keeps = True

    def __init__(self, pool: Pool, engine: Engine, where: str,
                 clock: Any = None, reads: Pool | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self._pools = (pool, reads or pool)  # for writes, for reads
        self.engine = engine
        self.where = where
        self._busy = 0  # calls in the pool for writes
        self._reading = 0  # reads in the pool, a reader answered or not
        self._idle: list[Deferred[None]] = []
        self._closed = self._pool_closed = False
        self._waiting: list[tuple[ReignRecord, Deferred[int]]] = []
        self._writing = False
        self._soon: Any = None  # the next write's DelayedCall
        self._last = -GROUP_WAIT  # when the last write began

    def record(self, reign: ReignRecord) -> Deferred[int]:
        if self._closed:
            return fail(ChronicleError(f"cannot record a reign in the chronicle {self.where}: "
                                       "it is closed"))
        d: Deferred[int] = Deferred()
        self._waiting.append((reign, d))
        self._next()
        return self._bounded(d, WRITE_WAIT, "record a reign in", " (the write may still land)")

    def _next(self) -> None:
        """Write what waits now, or once GROUP_WAIT has passed since the last."""
        if self._writing or self._soon is not None or not self._waiting:
            return
        wait = self._last + GROUP_WAIT - self._clock.seconds()
        if wait <= 0 or len(self._waiting) >= GROUP_MOST or self._closed:
            self._write()
        else:
            self._soon = self._clock.callLater(wait, self._write)

    def _write(self) -> None:
        self._soon = None
        group, self._waiting = self._waiting, []
        self._writing = True
        self._last = self._clock.seconds()
        written = self._run(rows.insert_reigns, ([reign for reign, _ in group],), write=True,
                            doing="record a reign in")

        def done(result: list[int] | Failure) -> None:
            self._writing = False
            if not isinstance(result, Failure):
                for (_, d), reign_id in zip(group, result, strict=True):
                    d.callback(reign_id)
            elif len(group) == 1:
                group[0][1].errback(result)
            else:  # one bad reign must not take the others with it: each alone
                for reign, d in group:
                    alone = self._run(rows.insert_reigns, ([reign],), write=True,
                                      doing="record a reign in")
                    alone.addCallback(lambda ids: ids[0]).chainDeferred(d)
            self._next()
            self._wake()

        written.addBoth(done)

    def best(self, limit: int = 5) -> Deferred[list[ReignRecord]]:
        return self._read(None, rows.BEST, limit)

    def latest(self, realm: str | None = None, limit: int = 5) -> Deferred[list[ReignRecord]]:
        return self._read(realm, rows.LATEST, limit)

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        self._closed = True
        if self._soon is not None:  # what waits for its group goes now
            self._soon.cancel()
            self._write()
        # Each group written starts the next: wait for the last of them, but
        # not for ever.  A pool with a call still in its thread (a database
        # that hangs, a slow read) is let go, unjoined: it may never return.
        settled = Deferred.fromCoroutine(self._written())
        try:
            await self._bounded(settled, WRITE_WAIT, "finish writing to")
        finally:
            if not self._pool_closed:
                self._pool_closed = True
                writes, reads = self._pools
                held = {writes: not settled.called}
                held[reads] = held.get(reads, False) or self._reading > 0
                for pool, busy in held.items():
                    if busy:
                        pool.let_go()
                    else:
                        pool.close()

    async def _written(self) -> None:
        while self._busy or self._writing or self._waiting:
            waiter: Deferred[None] = Deferred()
            self._idle.append(waiter)
            await waiter

    def _read(self, realm: str | None, order: str, limit: int) -> Deferred[list[ReignRecord]]:
        if not 0 <= limit <= MAX_LIMIT:
            return fail(ValueError(f"limit must be 0 to {MAX_LIMIT}, not {limit}"))
        if limit == 0:
            return succeed([])
        if self._reading >= MOST_READS:  # a flood of readers waits for nothing
            return fail(ChronicleBusy(f"cannot read the chronicle {self.where} just now: "
                                      f"{self._reading} reads are under way"))
        self._reading += 1
        read = self._run(rows.select_reigns, (realm, order, limit), write=False, doing="read")

        def done(result: Any) -> Any:
            self._reading -= 1  # done in the database, answered in time or not
            return result

        return self._bounded(read.addBoth(done), READ_WAIT, "read")

    def _bounded(self, d: Deferred[T], wait: float, doing: str, after: str = "") -> Deferred[T]:
        """What `d` fires with, or a `ChronicleError` once `wait` seconds
        have passed: a database that hangs (paused, a dead link not yet
        noticed) keeps its thread, but the caller is answered anyway."""
        answer: Deferred[T] = Deferred()

        def late() -> None:
            answer.errback(ChronicleError(f"cannot {doing} the chronicle {self.where}: "
                                          f"no answer in {wait:g} s{after}"))

        timer = self._clock.callLater(wait, late)

        def came(result: Any) -> None:
            if timer.active():
                timer.cancel()
                (answer.errback if isinstance(result, Failure) else answer.callback)(result)

        d.addBoth(came)
        return answer

    def _run(self, body: Callable[..., T], args: tuple[Any, ...], write: bool,
             doing: str) -> Deferred[T]:
        if self._closed and body is not rows.insert_reigns:
            return fail(ChronicleError(f"cannot {doing} the chronicle {self.where}: it is closed"))
        self._busy += write
        pool = self._pools[0 if write else 1]
        d: Deferred[Any] = pool.runWithConnection(interact, self.engine, body, args, write)
        d.addBoth(self._settled, write)
        d.addErrback(self._explain, doing)
        return d

    def _settled(self, result: Any, write: bool) -> Any:
        self._busy -= write
        if write and not self._busy:
            self._wake()
        if isinstance(result, Failed):
            return Failure(result.error)
        return result

    def _wake(self) -> None:
        """`close` looks again whether anything is still under way."""
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            waiter.callback(None)

    def _explain(self, failure: Failure, doing: str) -> Failure:
        failure.trap(*self.engine.errors, SchemaError)
        error = ChronicleError(f"cannot {doing} the chronicle {self.where}: "
                               f"{_one_line(failure.value)}")
        error.__cause__ = failure.value
        return Failure(error)


def open_chronicle(url: str | ChronicleURL, reactor: Any = None, *,
                   migrations: Sequence[Migration] | None = None) -> Deferred[Chronicle]:
    """Open the chronicle at `url` once `reactor` runs (by default the
    global one), its schema brought up to date: a `Chronicle`, or a
    one-line `ChronicleError` saying what and where.  `migrations`
    (tests, tools) replaces the shipped `realm/migrations/`."""
    return Deferred.fromCoroutine(_open(url, reactor, migrations))


async def _open(url: str | ChronicleURL, reactor: Any,
                migrations: Sequence[Migration] | None) -> Chronicle:
    parsed, engine, steps = _engine_for(url, migrations)
    if engine is None:
        return NoChronicle()
    chronicle = DatabaseChronicle(engine.make_pool(reactor, 1), engine, parsed.where(), reactor,
                                  engine.make_pool(reactor, 2))
    try:
        await chronicle._run(rows.prepare, (steps,), write=True, doing="open")
    except BaseException:
        with contextlib.suppress(ChronicleError):  # the open's own error is the news
            await chronicle.close()
        raise
    return chronicle


def open_now(url: str | ChronicleURL, reactor: Any = None) -> Chronicle:
    """Open the chronicle at start-up, before the reactor runs.

    The schema is brought up to date now, in this thread (nothing else is
    running yet), so a chronicle that cannot be opened stops the start
    with a one-line `ChronicleError`; then every call goes through the
    pool's threads as usual.
    """
    parsed, engine, steps = _engine_for(url, None)
    if engine is None:
        return NoChronicle()
    where = parsed.where()
    try:
        connection = engine.connect()
    except engine.errors as error:
        raise ChronicleError(f"cannot open the chronicle {where}: {_one_line(error)}") from error
    known: tuple[type[BaseException], ...] = (*engine.errors, SchemaError)
    try:
        cursor = Cursor(connection.cursor(), engine)
        engine.begin(cursor, True)
        rows.prepare(cursor, steps)
        connection.commit()
    except known as error:
        raise ChronicleError(f"cannot open the chronicle {where}: {_one_line(error)}") from error
    finally:
        connection.close()
    return DatabaseChronicle(engine.make_pool(reactor, 1), engine, where, reactor,
                             engine.make_pool(reactor, 2))


def _engine_for(url: str | ChronicleURL, migrations: Sequence[Migration] | None
                ) -> tuple[ChronicleURL, Engine | None, tuple[Migration, ...]]:
    try:
        parsed = url if isinstance(url, ChronicleURL) else parse_url(url)
    except ValueError as error:
        raise ChronicleError(str(error)) from error
    if parsed.scheme == "none":
        return parsed, None, ()
    where = parsed.where()
    engine: Engine
    try:
        if parsed.scheme == "sqlite":
            engine = SqliteEngine(os.path.abspath(parsed.target))
        else:
            engine = PostgresEngine(parsed.target)
    except ImportError as error:
        raise ChronicleError(f"cannot open the chronicle {where}: psycopg, PostgreSQL's "
                             "driver, is not installed; install realm[postgresql]") from error
    try:
        steps = tuple(shipped_migrations() if migrations is None else migrations)
    except (OSError, SchemaError) as error:
        raise ChronicleError(f"cannot open the chronicle {where}: {error}") from error
    return parsed, engine, steps


def _one_line(error: object) -> str:  # a database's message, on one line
    return " ".join(str(error).split()) or type(error).__name__
