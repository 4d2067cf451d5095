"""The chronicle against real databases: SQLite files and a PostgreSQL.

The behaviour tests run once per backend (`chronicle_url`, from
`tests/databases.py`); each gets an empty database of its own. Every
wait is bounded: `within()` times a Deferred out, subprocesses have
timeouts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from realm.annals import as_json
from realm.chronicle import (
    DEFAULT_URL,
    MAX_LIMIT,
    MOST_READS,
    READ_WAIT,
    WRITE_WAIT,
    Chronicle,
    ChronicleBusy,
    ChronicleError,
    ChronicleURL,
    DatabaseChronicle,
    NoChronicle,
    open_chronicle,
    open_now,
    parse_url,
    unread,
)
from realm.chronicle_engines import (
    Migration,
    PostgresEngine,
    SqliteEngine,
    shipped_migrations,
)
from realm.records import EventRecord, ReignRecord

if TYPE_CHECKING:
    from databases import PostgresServer

pytest_plugins = ["databases"]

WAIT = 30.0  # seconds any one chronicle call may take before the test fails
ROOT = Path(__file__).resolve().parent.parent


def within(d: defer.Deferred[Any], seconds: float = WAIT) -> defer.Deferred[Any]:
    """`d`, failed with `TimeoutError` if it has not fired in `seconds`."""
    return d.addTimeout(seconds, reactor)


@contextlib.asynccontextmanager
async def opened(url: str, migrations: Sequence[Migration] | None = None
                 ) -> AsyncIterator[Chronicle]:
    chronicle = await within(open_chronicle(url, migrations=migrations))
    try:
        yield chronicle
    finally:
        await within(chronicle.close())


def reign(realm: str = "winterfell", score: int = 10, ended: float = 1_800_000_000.5,
          events: int = 2, outcome: str = "won") -> ReignRecord:
    return ReignRecord(
        realm=realm, members=("Lord", "Arya", "Hodor"),
        events=tuple(EventRecord(f"[New Event] Raven {n} — «ünïcode»", f"Lord: answer {n}",
                                 {"Gold": 50 - n, "Food": 40 + n, "Men": 60, "Favour": 7})
                     for n in range(events)),
        outcome=outcome, score=score, started=ended - 600.25, ended=ended)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Ask the database directly, not through the chronicle."""
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url[len("sqlite:"):])) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


def execute(url: str, sql: str) -> None:
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url[len("sqlite:"):])) as connection:
            connection.execute(sql)
            connection.commit()
        return
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute(sql)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text, repr(text)
    return text


# -- URLs -------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected", "shown"), [
    ("sqlite:realm.sqlite", ChronicleURL("sqlite", "realm.sqlite"), "sqlite:realm.sqlite"),
    ("  SQLite:/var/lib/realm/r.db ", ChronicleURL("sqlite", "/var/lib/realm/r.db"),
     "sqlite:/var/lib/realm/r.db"),
    ("none", ChronicleURL("none"), "none"),
    ("NONE", ChronicleURL("none"), "none"),
    ("postgresql://realm@db.example:5433/realm",
     ChronicleURL("postgresql", "postgresql://realm@db.example:5433/realm"),
     "postgresql://realm@db.example:5433/realm"),
    ("postgres://realm@127.0.0.1/chronicle",
     ChronicleURL("postgresql", "postgresql://realm@127.0.0.1/chronicle"),
     "postgresql://realm@127.0.0.1/chronicle"),
    ("postgresql://realm:s3cr%40t@[::1]:5432/realm?sslmode=require",
     ChronicleURL("postgresql", "postgresql://realm:s3cr%40t@[::1]:5432/realm?sslmode=require"),
     "postgresql://realm:***@[::1]:5432/realm?sslmode=require"),
])
def test_parse_url_accepts_the_three_kinds(url: str, expected: ChronicleURL, shown: str) -> None:
    parsed = parse_url(url)
    assert parsed == expected
    assert str(parsed) == shown


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://realm@localhost/realm",
     "--chronicle: unknown scheme 'mysql'; use sqlite:PATH, "
     "postgresql://USER@HOST[:PORT]/DB or none"),
    ("realm.sqlite", "is not a chronicle URL; use sqlite:PATH"),
    ("", "is not a chronicle URL"),
    ("sqlite:", "sqlite: needs a file's path"),
    ("sqlite:///var/lib/realm.sqlite", "takes a file's path, not //HOST"),
    ("sqlite:a\0b", "NUL"),
    ("postgresql:", "names no server"),
    ("postgresql://localhost/realm", "names no user"),
    ("postgresql://realm@localhost", "names no database"),
    ("postgresql://realm@localhost/a/b", "names no database"),
    ("postgresql://realm@localhost:99999/realm", "has a bad port"),
    ("postgresql://realm:hunter2@localhost:port/realm", "postgresql://realm:***@localhost"),
])
def test_parse_url_says_what_is_wrong_in_one_line(url: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_url(url)
    text = one_line(info.value)
    assert text.startswith("--chronicle: ")
    assert says in text
    assert "hunter2" not in text


# -- pure parts -------------------------------------------------------------

def test_as_json_is_ready_for_the_web_page() -> None:
    record = ReignRecord(
        realm="winterfell", members=("Lord", "Arya"),
        events=(EventRecord("e1", "Lord: 1", {"Gold": 45, "Food": 50}),
                EventRecord("e2", "Lord: 2", {"Gold": 40, "Food": 0})),
        outcome="fallen", score=12, started=1_767_225_600.0, ended=1_767_226_200.75, id=7)
    got = as_json(record)
    assert got == {
        "id": 7, "realm": "winterfell", "outcome": "fallen", "events": 2, "score": 12,
        "started": "2026-01-01T00:00:00Z", "ended": "2026-01-01T00:10:00Z",
        "members": ["Lord", "Arya"],
        "holdings": [{"Gold": 45, "Food": 50}, {"Gold": 40, "Food": 0}],
    }
    assert json.loads(json.dumps({"reigns": [got]})) == {"reigns": [got]}


def test_migrations_ship_numbered_and_speak_each_dialect() -> None:
    migrations = shipped_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    statements = migrations[0].statements(SqliteEngine.dialect)
    assert statements[0].startswith("CREATE TABLE reigns")
    assert "id INTEGER PRIMARY KEY," in statements[0]
    assert not any("{" in s or s.endswith(";") for s in statements)
    with pytest.raises(Exception, match=r"unknown token \{nope\}"):
        Migration(9, "bad", "CREATE TABLE t (x {nope});").statements(SqliteEngine.dialect)


@pytest_twisted.ensureDeferred
async def test_none_keeps_nothing() -> None:
    chronicle = await within(open_chronicle("none"))
    assert isinstance(chronicle, NoChronicle)
    assert await chronicle.record(reign()) == 0
    assert await chronicle.best() == []
    assert await chronicle.latest("winterfell") == []
    await chronicle.close()


# -- both backends ----------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_recorded_reign_reads_back_equal(chronicle_url: str) -> None:
    reigns = [reign(score=5, ended=1000.5), reign("kingslanding", 7, 2000.25, events=0),
              reign(outcome="abandoned", score=0, ended=3000.0, events=12)]
    async with opened(chronicle_url) as chronicle:
        ids = [await within(chronicle.record(r)) for r in reigns]
        assert ids == sorted(ids) and len(set(ids)) == 3
        got = await within(chronicle.latest(limit=10))
    assert got == reigns[::-1]
    assert [r.id for r in got] == ids[::-1]
    assert got[2].events[1].holdings == {"Gold": 49, "Food": 41, "Men": 60, "Favour": 7}
    assert list(got[2].events[1].holdings) == ["Gold", "Food", "Men", "Favour"]


@pytest_twisted.ensureDeferred
async def test_best_is_by_score_and_newest_first_among_equals(chronicle_url: str) -> None:
    async with opened(chronicle_url) as chronicle:
        for score, ended in [(10, 1.0), (30, 2.0), (30, 3.0), (20, 4.0), (5, 5.0)]:
            await within(chronicle.record(reign(score=score, ended=ended)))
        await within(chronicle.record(reign(score=40, outcome="abandoned")))  # not played out
        best = await within(chronicle.best(3))
        everything = await within(chronicle.best(MAX_LIMIT))
    assert [(r.score, r.ended) for r in best] == [(30, 3.0), (30, 2.0), (20, 4.0)]
    assert [r.score for r in everything] == [30, 30, 20, 10, 5]


@pytest_twisted.ensureDeferred
async def test_latest_of_one_realm_or_all_within_the_limit(chronicle_url: str) -> None:
    async with opened(chronicle_url) as chronicle:
        for n, realm in enumerate(["north", "south", "north", "north", "south"]):
            await within(chronicle.record(reign(realm, score=n, ended=100.0 + n)))
        north = await within(chronicle.latest("north", limit=2))
        south = await within(chronicle.latest("south"))
        overall = await within(chronicle.latest(limit=4))
        default = await within(chronicle.latest())
        nobody = await within(chronicle.latest("dorne"))
        none_asked = await within(chronicle.latest(limit=0))
        with pytest.raises(ValueError, match="limit"):
            await within(chronicle.best(-1))
        with pytest.raises(ValueError, match="limit"):
            await within(chronicle.latest(limit=MAX_LIMIT + 1))
    assert [r.score for r in north] == [3, 2]
    assert [r.score for r in south] == [4, 1]
    assert [r.score for r in overall] == [4, 3, 2, 1]
    assert [r.score for r in default] == [4, 3, 2, 1, 0]
    assert nobody == [] and none_asked == []


@pytest_twisted.ensureDeferred
async def test_a_reign_is_stored_whole_or_not_at_all(chronicle_url: str) -> None:
    whole = reign(score=1)
    # A lone surrogate cannot be encoded: the reign is refused, and nothing
    # of it is kept.
    broken = ReignRecord("winterfell", ("Lord",),
                         (whole.events[0], EventRecord("e", "Lord: \udc80", {"Gold": 1})),
                         "won", 99, 1.0, 2.0)
    async with opened(chronicle_url) as chronicle:
        with pytest.raises(UnicodeEncodeError):
            await within(chronicle.record(broken))
        with pytest.raises(ChronicleError) as info:
            await within(chronicle.record(reign(outcome="draw")))
        assert one_line(info.value).startswith("cannot record a reign in the chronicle ")
        await within(chronicle.record(whole))
        assert await within(chronicle.best()) == [whole]
    assert rows(chronicle_url, "SELECT COUNT(*) FROM reigns") == [(1,)]


@pytest_twisted.ensureDeferred
async def test_reigns_ending_together_are_committed_together(chronicle_url: str) -> None:
    """Group commit: many records at once, one of them bad, all answered."""
    bad = ReignRecord("winterfell", ("Lord",), (EventRecord("e", "\udc80", {"Gold": 1}),),
                      "won", 99, 1.0, 2.0)
    many = [reign(score=n, ended=100.0 + n) for n in range(30)]
    async with opened(chronicle_url) as chronicle:
        answers = [chronicle.record(r) for r in [*many[:10], bad, *many[10:]]]
        results = await within(defer.DeferredList(answers, consumeErrors=True))
        stored = await within(chronicle.best(MAX_LIMIT))
    failed = [i for i, (ok, _) in enumerate(results) if not ok]
    assert failed == [10]
    ids = [value for ok, value in results if ok]
    assert len(set(ids)) == 30
    assert sorted(r.score for r in stored) == list(range(30))


@pytest_twisted.ensureDeferred
async def test_a_reign_survives_closing_and_reopening(chronicle_url: str) -> None:
    async with opened(chronicle_url) as chronicle:
        pending = chronicle.record(reign(score=42))
    # close() waited for the record in flight, then refuses new calls.
    assert await within(pending) >= 1
    with pytest.raises(ChronicleError, match="it is closed"):
        await within(chronicle.record(reign()))
    async with opened(chronicle_url) as again:
        assert await within(again.best()) == [reign(score=42)]


@pytest_twisted.ensureDeferred
async def test_closing_writes_every_reign_waiting_for_its_group(chronicle_url: str) -> None:
    """A server stopping records every realm's reign at once: the first is
    written, the others wait for its group, and all land before the close."""
    async with opened(chronicle_url) as chronicle:
        pending = [chronicle.record(reign(realm=f"r{n}", score=n)) for n in range(3)]
    assert len(set(await within(defer.gatherResults(pending)))) == 3
    async with opened(chronicle_url) as again:
        assert sorted(r.realm for r in await within(again.latest(None, 10))) == ["r0", "r1", "r2"]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_file_deleted_or_replaced_under_the_server_is_not_written_to(
        tmp_path: Path, how: str) -> None:
    """SQLite goes on writing to a file unlinked under it, which no one can
    open again: the reigns would be lost without a word.  A connection
    opened since (the reads' first) does not make the new file the one to
    write: the reigns there would be mixed with ours."""
    path = tmp_path / "realm.sqlite"
    async with opened(f"sqlite:{path}") as chronicle:
        await within(chronicle.record(reign(score=1)))
        path.unlink()
        if how == "replaced":  # another chronicle, put at the same path
            other = tmp_path / "other.sqlite"
            async with opened(f"sqlite:{other}") as elsewhere:
                await within(elsewhere.record(reign(score=7)))
            other.rename(path)
        with contextlib.suppress(ChronicleError):  # the reads' first connection, made now
            await within(chronicle.best())
        with pytest.raises(ChronicleError, match=r"^cannot record a reign in the chronicle "
                           r"sqlite:\S+: the file was deleted or replaced since realm "
                           r"opened it; what is written now would be lost \(restart realm"):
            await within(chronicle.record(reign(score=2)))


@pytest_twisted.ensureDeferred
async def test_a_flood_of_readers_does_not_queue_ahead_of_the_writes(tmp_path: Path) -> None:
    """At most MOST_READS reads wait for the database at once; the others
    are refused at once (and are not worth a log line)."""
    async with opened(f"sqlite:{tmp_path / 'realm.sqlite'}") as chronicle:
        under_way = [chronicle.latest(None, 50) for _ in range(MOST_READS)]
        refused = chronicle.best(5)
        with pytest.raises(ChronicleBusy, match=f"just now: {MOST_READS} reads are under way"):
            await within(refused)
        written = chronicle.record(reign(score=7))  # not behind a queue of reads
        for read in under_way:  # beside the write now: before it or after
            assert [r.score for r in await within(read)] in ([], [7])
        assert await within(written) >= 1
        assert await within(chronicle.best(5)) == [reign(score=7)]  # room again
    failure = Failure(ChronicleBusy("busy"))
    assert unread(failure) is None
    assert unread(Failure(defer.FirstError(failure, 1))) is None
    assert unread(Failure(ChronicleError("the disk is gone"))) == "the disk is gone"


@pytest_twisted.ensureDeferred
async def test_many_processes_opening_one_new_database_migrate_it_once(
        chronicle_url: str) -> None:
    chronicles = await within(defer.gatherResults(
        [open_chronicle(chronicle_url) for _ in range(3)], consumeErrors=True))
    try:
        await within(defer.gatherResults([c.record(reign()) for c in chronicles],
                                         consumeErrors=True))
    finally:
        await within(defer.gatherResults([c.close() for c in chronicles]))
    versions = rows(chronicle_url, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(m.version,) for m in shipped_migrations()]
    assert rows(chronicle_url, "SELECT COUNT(*) FROM reigns") == [(3,)]


def test_connections_racing_to_turn_a_new_file_to_wal_all_open(tmp_path: Path) -> None:
    """Processes started together on one new SQLite file: SQLite answers the
    losers of the race to WAL "database is locked" at once, without its busy
    wait (about one connection in 40 here); each must wait and open."""
    failed: list[BaseException] = []
    opened: list[int] = []
    for n in range(60):
        engine = SqliteEngine(str(tmp_path / f"{n}.sqlite"))
        together = threading.Barrier(4)

        def connect(engine: SqliteEngine = engine, together: threading.Barrier = together
                    ) -> None:
            try:
                together.wait(10)
                engine.connect().close()
                opened.append(1)
            except BaseException as e:  # a broken barrier too: every one is counted
                failed.append(e)

        threads = [threading.Thread(target=connect) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
    assert failed == [] and len(opened) == 60 * 4


NOTES = Migration(2, "notes", """
-- a second release's upgrade, for the test
ALTER TABLE reigns ADD COLUMN note TEXT;
CREATE TABLE notes (id {id_primary_key}, text TEXT NOT NULL);
""")


@pytest_twisted.ensureDeferred
async def test_an_old_database_is_upgraded_at_open(chronicle_url: str) -> None:
    first = shipped_migrations()[:1]
    async with opened(chronicle_url, migrations=first) as old:
        await within(old.record(reign(score=3)))
    assert rows(chronicle_url, "SELECT version, name FROM schema_version") == [(1, "reigns")]
    async with opened(chronicle_url, migrations=[*first, NOTES]) as new:
        assert await within(new.best()) == [reign(score=3)]
        await within(new.record(reign(score=4)))
    assert rows(chronicle_url, "SELECT version, name FROM schema_version ORDER BY version"
                ) == [(1, "reigns"), (2, "notes")]
    assert rows(chronicle_url, "SELECT score, note FROM reigns ORDER BY score"
                ) == [(3, None), (4, None)]
    assert rows(chronicle_url, "SELECT COUNT(*) FROM notes") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_a_failed_upgrade_leaves_the_database_as_it_was(chronicle_url: str) -> None:
    first = shipped_migrations()[:1]
    async with opened(chronicle_url, migrations=first) as old:
        await within(old.record(reign(score=3)))
    broken = Migration(2, "broken", "CREATE TABLE half (x INTEGER);\nTHIS IS NOT SQL;\n")
    with pytest.raises(ChronicleError) as info:
        await within(open_chronicle(chronicle_url, migrations=[*first, broken]))
    assert one_line(info.value).startswith("cannot open the chronicle ")
    assert rows(chronicle_url, "SELECT version FROM schema_version") == [(1,)]
    with pytest.raises(Exception, match="half"):
        rows(chronicle_url, "SELECT x FROM half")
    async with opened(chronicle_url, migrations=first) as again:
        assert await within(again.best()) == [reign(score=3)]


@pytest_twisted.ensureDeferred
async def test_a_schema_newer_than_the_code_is_refused(chronicle_url: str) -> None:
    async with opened(chronicle_url) as chronicle:
        await within(chronicle.record(reign()))
    execute(chronicle_url, "INSERT INTO schema_version (version, name) VALUES (99, 'future')")
    with pytest.raises(ChronicleError) as info:
        await within(open_chronicle(chronicle_url))
    text = one_line(info.value)
    known = len(shipped_migrations())
    assert text.startswith("cannot open the chronicle ")
    assert f"its schema is at version 99, newer than this realm knows ({known})" in text
    assert "upgrade realm" in text
    assert rows(chronicle_url, "SELECT COUNT(*) FROM reigns") == [(1,)]


#: Version 1 as an early development build wrote it (664d01f), before the
#: migration was changed in place: what such a build's file holds.
EARLY = Migration(1, "reigns", """
CREATE TABLE reigns (id {id_primary_key}, realm TEXT NOT NULL, members TEXT NOT NULL,
 outcome TEXT NOT NULL, score INTEGER NOT NULL, started DOUBLE PRECISION NOT NULL,
 ended DOUBLE PRECISION NOT NULL);
CREATE TABLE events (reign_id BIGINT NOT NULL REFERENCES reigns (id), seq INTEGER NOT NULL,
 event TEXT NOT NULL, decision TEXT NOT NULL, holdings TEXT NOT NULL);
""")


@pytest_twisted.ensureDeferred
async def test_an_early_builds_layout_is_refused_in_one_line(chronicle_url: str) -> None:
    """It says version 1 as this release does: started on it, realm would
    lose every reign and answer no read.  Nothing in it is changed."""
    engine = SqliteEngine if chronicle_url.startswith("sqlite:") else PostgresEngine
    execute(chronicle_url, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL)")
    execute(chronicle_url, "INSERT INTO schema_version (version, name) VALUES (1, 'reigns')")
    for statement in EARLY.statements(engine.dialect):
        execute(chronicle_url, statement)
    with pytest.raises(ChronicleError) as info:
        await within(open_chronicle(chronicle_url))
    text = one_line(info.value)
    assert text.startswith("cannot open the chronicle ")
    assert "its reigns table lacks events and told: an early development build" in text
    assert "move it aside" in text
    assert rows(chronicle_url, "SELECT version FROM schema_version") == [(1,)]


@pytest_twisted.ensureDeferred
async def test_a_chronicle_without_its_reigns_table_is_told_so(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'realm.sqlite'}"
    execute(url, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    execute(url, "INSERT INTO schema_version (version, name) VALUES (1, 'reigns')")
    with pytest.raises(ChronicleError, match="its reigns table is missing, or this role may "
                       "not read it$"):
        await within(open_chronicle(url))


def test_a_released_migration_is_never_changed() -> None:
    """Changed in place, a file made by the old text says the same version
    and holds another layout (above): the next change is a new migration."""
    shipped = {m.version: hashlib.sha256(m.sql.encode()).hexdigest()[:16]
               for m in shipped_migrations()}
    assert shipped == {1: "7a8457ef82547e35", 2: "160542fd6bcbe86f"}, \
        "add a migration; never edit a released one"


@pytest_twisted.ensureDeferred
async def test_abandoned_reigns_kept_before_are_scored_as_now(chronicle_url: str) -> None:
    """Version 2: an abandoned reign's score is its events' points alone."""
    first = shipped_migrations()[:1]
    old = dataclasses.replace(reign(score=190), outcome="abandoned")
    async with opened(chronicle_url, migrations=first) as chronicle:
        await within(chronicle.record(old))
        await within(chronicle.record(reign(score=180)))  # won or fallen: as it was
    async with opened(chronicle_url) as chronicle:
        kept = await within(chronicle.latest())
    assert [(r.outcome, r.score) for r in kept] == [
        ("won", 180), ("abandoned", 10 * len(old.events))]


# -- SQLite -----------------------------------------------------------------

def _missing_folder(tmp_path: Path) -> Path:
    return tmp_path / "no-such-folder" / "realm.sqlite"


def _a_folder(tmp_path: Path) -> Path:
    return tmp_path


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "realm.sqlite"


def _not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "realm.sqlite"
    path.write_bytes(b"this is not a database, it is a raven " * 200)
    return path


def _read_only(path: Path) -> None:
    """Make `path` read-only, for root too (`chattr +i`, undone after the test)."""
    if os.geteuid() != 0:
        path.chmod(0o500 if path.is_dir() else 0o400)
    elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("cannot make a file read-only for root here (chattr +i)")


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(folder)
    return folder / "realm.sqlite"


def _read_only_file(tmp_path: Path) -> Path:
    """A chronicle that reads well and takes no write: every reign would be lost."""
    path = tmp_path / "realm.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")  # as realm left it: opening writes nothing
        connection.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL)")
        connection.execute("INSERT INTO schema_version (version, name) VALUES (1, 'reigns')")
        for statement in shipped_migrations()[0].statements(SqliteEngine.dialect):
            connection.execute(statement)
        connection.commit()
    _read_only(path)
    return path


@pytest.mark.parametrize(("where", "says"), [
    (_missing_folder, "unable to open database file"),
    (_a_folder, "unable to open database file"),
    (_under_a_file, "unable to open database file"),
    (_not_a_database, "file is not a database"),
    (_read_only_folder, "unable to open database file"),
    (_read_only_file, "attempt to write a readonly database"),
])
@pytest_twisted.ensureDeferred
async def test_an_unusable_sqlite_path_is_one_line_saying_what_and_where(
        tmp_path: Path, where: Any, says: str) -> None:
    try:
        path = where(tmp_path)
        with pytest.raises(ChronicleError) as info:
            await within(open_chronicle(f"sqlite:{path}"))
        assert one_line(info.value) == f"cannot open the chronicle sqlite:{path}: {says}"
        with pytest.raises(ChronicleError) as info:  # as `twistd realm` opens it
            open_now(f"sqlite:{path}")
        assert one_line(info.value) == f"cannot open the chronicle sqlite:{path}: {says}"
    finally:
        if os.geteuid() == 0:  # what `_read_only` made immutable
            subprocess.run(["chattr", "-R", "-i", str(tmp_path)], capture_output=True)


@pytest_twisted.ensureDeferred
async def test_the_default_file_is_in_the_working_folder_and_in_wal_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with opened(DEFAULT_URL) as chronicle:
        assert chronicle.where == f"sqlite:{tmp_path / 'realm.sqlite'}"
        await within(chronicle.record(reign()))
    assert rows(f"sqlite:{tmp_path / 'realm.sqlite'}", "PRAGMA journal_mode") == [("wal",)]


CHILD = """
import sys
from twisted.internet import defer, task
from realm.chronicle import open_chronicle
from realm.records import EventRecord, ReignRecord

async def main(reactor):
    chronicle = await open_chronicle(sys.argv[1])
    await chronicle.record(%r)
    print("committed", flush=True)
    await defer.Deferred()  # until the test kills this process

task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
"""


class Child(protocol.ProcessProtocol):
    """A child that is killed (-9) the moment it says "committed"."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: defer.Deferred[BaseException] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if b"committed\n" in self.output and self.transport is not None:
            self.transport.signalProcess("KILL")

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        assert reason.value is not None
        self.ended.callback(reason.value)


@pytest_twisted.ensureDeferred
async def test_a_reign_recorded_survives_kill_9_right_after(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'realm.sqlite'}"
    kept = reign("kingslanding", score=77)
    child = Child()
    process = reactor.spawnProcess(  # type: ignore[attr-defined]
        child, sys.executable, [sys.executable, "-c", CHILD % (kept,), url],
        env=os.environ.copy(), path=str(ROOT))
    try:
        ended = await within(child.ended, 60)
    finally:
        if process.pid is not None:
            process.signalProcess("KILL")
    assert b"committed\n" in child.output, child.output.decode(errors="replace")
    assert getattr(ended, "signal", None) == 9, ended
    async with opened(url) as chronicle:
        assert await within(chronicle.latest("kingslanding")) == [kept]


# -- PostgreSQL -------------------------------------------------------------

NEEDS_POSTGRESQL = """
pytest_plugins = ["databases"]


def test_needs_postgresql(postgres_server):
    pass
"""


@pytest.mark.parametrize(("ci", "outcome", "status"), [("", "1 skipped", 0),
                                                      ("true", "1 error", 1)])
def test_no_postgresql_skips_its_tests_but_fails_them_on_ci(
        tmp_path: Path, ci: str, outcome: str, status: int) -> None:
    (tmp_path / "test_needs.py").write_text(NEEDS_POSTGRESQL)
    env = {**os.environ, "CI": ci, "REALM_POSTGRES_BINDIR": str(tmp_path / "nowhere"),
           "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-c", os.devnull, "--rootdir",
         str(tmp_path), "-p", "no:cacheprovider", "-p", "no:twisted",
         "-p", "no:hypothesispytest", "test_needs.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert result.returncode == status
    assert "PostgreSQL is not installed" in result.stdout
    assert ("CI=true needs PostgreSQL" in result.stdout) == (ci == "true")


@pytest_twisted.ensureDeferred
async def test_missing_psycopg_says_to_install_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` then raises
    with pytest.raises(ChronicleError) as info:
        await within(open_chronicle("postgresql://realm:pw@127.0.0.1:1/realm"))
    assert one_line(info.value) == (
        "cannot open the chronicle postgresql://realm:***@127.0.0.1:1/realm: psycopg, "
        "PostgreSQL's driver, is not installed; install realm[postgresql]")


@pytest_twisted.ensureDeferred
async def test_a_role_that_cannot_record_a_reign_is_refused_at_start(
        postgres_server: PostgresServer, postgres_url: str) -> None:
    """A role that may read the chronicle but not add to it would lose every
    reign, unseen until one ends: opening says so instead."""
    async with opened(postgres_url) as chronicle:
        await within(chronicle.record(reign(score=5)))
    schema = postgres_url.rsplit("%3D", 1)[1]
    role = f"reader_{schema}"
    postgres_server.sql(f"CREATE ROLE {role} LOGIN", f"GRANT USAGE ON SCHEMA {schema} TO {role}",
                        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    as_reader = postgres_url.replace("://realm@", f"://{role}@", 1)
    assert as_reader != postgres_url
    with pytest.raises(ChronicleError, match="permission denied for table reigns"):
        await within(open_chronicle(as_reader))
    assert rows(postgres_url, "SELECT score FROM reigns") == [(5,)]
    # Allowed to add reigns, not to make tables (least privilege): it serves.
    postgres_server.sql(f"GRANT INSERT ON {schema}.reigns TO {role}")
    async with opened(as_reader) as chronicle:
        await within(chronicle.record(reign(score=6)))
        assert [r.score for r in await within(chronicle.best())] == [6, 5]


@pytest_twisted.ensureDeferred
async def test_an_unreachable_postgresql_is_one_line_without_the_password(
        postgres_server: PostgresServer) -> None:
    import socket

    with socket.socket() as unused:  # bound, not listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(ChronicleError) as info:
            await within(open_chronicle(f"postgresql://realm:hunter2@127.0.0.1:{port}/realm"))
    text = one_line(info.value)
    assert text.startswith(f"cannot open the chronicle postgresql://realm:***@127.0.0.1:{port}"
                           "/realm: connection failed: ")
    assert "Connection refused" in text and "hunter2" not in text
    with pytest.raises(ChronicleError, match='database "nowhere" does not exist'):
        await within(open_chronicle(postgres_server.url("nowhere")))


@pytest_twisted.ensureDeferred
async def test_a_stopped_postgresql_fails_calls_and_a_restarted_one_serves_again(
        postgres_server: PostgresServer, postgres_url: str) -> None:
    async with opened(postgres_url) as chronicle:
        # Three calls at once: the pool holds three connections now.
        await within(defer.gatherResults([chronicle.record(reign(score=n)) for n in range(3)],
                                         consumeErrors=True))
        postgres_server.stop()
        try:
            with pytest.raises(ChronicleError) as info:
                await within(chronicle.record(reign(score=99)))
            assert one_line(info.value).startswith(
                f"cannot record a reign in the chronicle {postgres_url}: ")
            with pytest.raises(ChronicleError, match="^cannot read the chronicle "):
                await within(chronicle.best())
        finally:
            postgres_server.start()
        # Every connection the pool holds died with the server; each call
        # finds out, connects again and succeeds.
        await within(defer.gatherResults(
            [chronicle.record(reign(score=n)) for n in range(10, 16)], consumeErrors=True))
        best = await within(chronicle.best(20))
    assert sorted(r.score for r in best) == [0, 1, 2, 10, 11, 12, 13, 14, 15]


class Hung:
    """A pool whose database never answers (a PostgreSQL paused, a link
    dead and not yet noticed): its thread waits, and so would a reader."""

    def __init__(self) -> None:
        self.asked: list[Deferred[Any]] = []

    def runWithConnection(self, *args: Any) -> Deferred[Any]:
        self.asked.append(Deferred())
        return self.asked[-1]

    def close(self) -> None:
        self.closed = "closed"

    def let_go(self) -> None:
        self.closed = "let go"


def test_a_close_waits_for_the_last_write_but_not_for_ever() -> None:
    """A stop closes the chronicle once its last reigns are written; a
    database that hangs is given up on after `WRITE_WAIT`, its pools let
    go unjoined (a thread that never comes back would hold the process)."""
    clock, hung, answers = task.Clock(), Hung(), Hung()
    for pool in (answers, hung):
        chronicle = DatabaseChronicle(pool, SqliteEngine(":memory:"),  # type: ignore[arg-type]
                                      "sqlite:x", clock)
        chronicle.record(reign()).addErrback(lambda _: None)  # answered: its own test
        got: list[Any] = []
        chronicle.close().addBoth(got.append)
        clock.advance(WRITE_WAIT - 0.1)
        assert got == [] and not hasattr(pool, "closed")
        if pool is answers:
            pool.asked[0].callback([7])
            assert got == [None] and pool.closed == "closed"
    clock.advance(0.1)
    (failure,) = got
    assert failure.getErrorMessage() == (f"cannot finish writing to the chronicle sqlite:x: "
                                         f"no answer in {WRITE_WAIT:g} s")
    assert hung.closed == "let go"


def test_a_close_waits_for_no_read() -> None:
    """A read in flight (a page on a slow database) is not what a stop
    waits for: the close is at once, the idle pool closed, the reading
    one let go."""
    clock, writes, reads = task.Clock(), Hung(), Hung()
    chronicle = DatabaseChronicle(writes, SqliteEngine(":memory:"),  # type: ignore[arg-type]
                                  "sqlite:x", clock, reads)  # type: ignore[arg-type]
    chronicle.latest().addErrback(lambda _: None)  # answered in READ_WAIT: its own test
    got: list[Any] = []
    chronicle.close().addBoth(got.append)
    assert got == [None] and (writes.closed, reads.closed) == ("closed", "let go")
    clock.advance(READ_WAIT)


@pytest_twisted.ensureDeferred
async def test_a_pool_let_go_is_not_waited_for() -> None:
    """A pool's threads are daemons, and one let go is not joined when the
    reactor stops: its thread may be waiting on a database for ever."""
    pool = SqliteEngine(":memory:").make_pool(reactor, 1)
    thread = await pool.runWithConnection(lambda _: threading.current_thread())
    assert thread.daemon and pool.shutdownID is not None
    pool.let_go()
    assert pool.shutdownID is None  # reactor's stop would join the threads
    pool.close()  # (this test's own reactor goes on: join them now)


@pytest_twisted.ensureDeferred
async def test_a_record_never_waits_behind_reads(tmp_path: Path) -> None:
    """Reads have a pool of their own: reads that take long (a thousand
    reigns for the web, a slow disk) never hold up a reign's record, nor
    the `[Reign Ended]` line that waits for it (it waited 150-220 ms
    behind eight readers of /chronicle.json before)."""
    path = tmp_path / "realm.sqlite"
    async with opened(f"sqlite:{path}"):
        pass  # made, at the schema's version
    engine, reads = SqliteEngine(str(path)), Hung()
    chronicle = DatabaseChronicle(engine.make_pool(reactor, 1), engine, f"sqlite:{path}",
                                  reactor, reads)  # type: ignore[arg-type]
    reading = chronicle.latest(None, 1000)
    try:
        assert await within(chronicle.record(reign(score=9))) >= 1
        assert not reading.called
    finally:
        reads.asked[0].callback([])
        await within(chronicle.close())
    assert rows(f"sqlite:{path}", "SELECT score FROM reigns") == [(9,)]


def test_a_reader_is_answered_when_the_database_is_not() -> None:
    clock, hung = task.Clock(), Hung()
    chronicle = DatabaseChronicle(hung, SqliteEngine(":memory:"),  # type: ignore[arg-type]
                                  "sqlite:x", clock)
    got: list[Any] = []
    chronicle.latest("north").addBoth(got.append)
    clock.advance(READ_WAIT - 0.1)
    assert got == []
    clock.advance(0.1)
    (failure,) = got
    assert failure.check(ChronicleError)
    assert failure.getErrorMessage() == (f"cannot read the chronicle sqlite:x: no answer "
                                         f"in {READ_WAIT:g} s")
    hung.asked[0].callback([])  # it answers at last: nothing more happens
    assert len(got) == 1 and not clock.getDelayedCalls()


def test_a_writer_is_answered_when_the_database_is_not() -> None:
    clock, hung = task.Clock(), Hung()
    chronicle = DatabaseChronicle(hung, SqliteEngine(":memory:"),  # type: ignore[arg-type]
                                  "sqlite:x", clock)
    got: list[Any] = []
    chronicle.record(reign()).addBoth(got.append)
    clock.advance(WRITE_WAIT - 0.1)
    assert got == []
    clock.advance(0.1)
    (failure,) = got
    assert failure.getErrorMessage() == (f"cannot record a reign in the chronicle sqlite:x: "
                                         f"no answer in {WRITE_WAIT:g} s (the write may still "
                                         "land)")
    hung.asked[0].callback([7])  # it lands at last: nothing more happens
    assert len(got) == 1 and not clock.getDelayedCalls()
