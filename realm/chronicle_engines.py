"""The chronicle's databases: one engine class per database, and the schema.

An engine hides what differs between SQLite and PostgreSQL, as Synapse's
`synapse/storage/engines/` do: the DB-API module and how to connect, the
paramstyle (`realm.chronicle` writes `?`, psycopg wants `%s`), the
dialect of the migrations, how a transaction begins and locks the schema,
how a new row's id comes back, and how a lost connection shows.

The schema is versioned: `schema_version` holds one row per migration
applied, and `migrate()` applies the missing ones in order, inside the
caller's transaction, so an old file is upgraded at open and a failed
upgrade leaves it as it was. The migrations ship as package data:
`realm/migrations/NNNN_name.sql`.
"""

from __future__ import annotations

import abc
import importlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

from twisted.enterprise import adbapi

from realm.chronicle_pool import Failed, Pool

T = TypeVar("T")

# A key for PostgreSQL's advisory lock that serialises migrations when
# many processes of a cluster open one database at once ("realm" in hex).
_MIGRATION_LOCK = 0x7265616C6D
_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql\Z")
_TOKEN = re.compile(r"\{(\w+)\}")
#: Seconds a new SQLite connection waits for another to turn the file to WAL.
WAL_WAIT = 5.0


class SchemaError(Exception):
    """The database's schema is not one this code can use."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: from `version - 1` to `version`.

    `sql` holds statements, each ending with `;` at the end of a line;
    `{name}` tokens are replaced by the engine's dialect; lines starting
    with `--` are comments.
    """

    version: int
    name: str
    sql: str

    def statements(self, dialect: dict[str, str]) -> list[str]:
        """The migration's statements in this dialect, without comments."""

        def spell(match: re.Match[str]) -> str:
            try:
                return dialect[match.group(1)]
            except KeyError:
                raise SchemaError(f"migration {self.version:04d}_{self.name}: "
                                  f"unknown token {match.group(0)}") from None

        lines = [line for line in self.sql.splitlines()
                 if not line.lstrip().startswith("--")]
        text = _TOKEN.sub(spell, "\n".join(lines))
        return [part.strip() for part in re.split(r";[ \t]*(?:--[^\n]*)?$", text,
                                                   flags=re.MULTILINE)
                if part.strip()]


def shipped_migrations() -> tuple[Migration, ...]:
    """The migrations in `realm/migrations/`, in order, numbered 1, 2, ..."""
    folder = resources.files("realm").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2),
                                   entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    numbers = [migration.version for migration in found]
    if numbers != list(range(1, len(found) + 1)):
        raise SchemaError(f"realm/migrations is not numbered 1, 2, ...: {numbers}")
    return tuple(found)


class Cursor:
    """A DB-API cursor that speaks `?` placeholders on every engine."""

    def __init__(self, cursor: Any, engine: Engine) -> None:
        self._cursor = cursor
        self.engine = engine

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if params:
            self._cursor.execute(self.engine.convert_param_style(sql), tuple(params))
        else:  # no placeholders to convert, nor `%` for psycopg to read
            self._cursor.execute(sql)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cursor.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    @property
    def lastrowid(self) -> Any:
        return self._cursor.lastrowid

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run one `INSERT` and return the new row's `id`."""
        return self.engine.insert_returning_id(self, sql, params)

    def close(self) -> None:
        self._cursor.close()


class Engine(abc.ABC):
    """What differs between databases, behind one interface."""

    module_name: ClassVar[str]  # the DB-API module, for adbapi
    dialect: ClassVar[dict[str, str]]  # the migrations' {tokens}

    def __init__(self) -> None:
        self.module = importlib.import_module(self.module_name)
        # Errors a database may raise, to be reported as the chronicle's.
        self.errors: tuple[type[Exception], ...] = (self.module.Error, adbapi.ConnectionLost)

    @abc.abstractmethod
    def make_pool(self, reactor: Any, threads: int) -> Pool:
        """A started-on-demand adbapi pool for this database, of at most
        `threads` threads (SQLite: one, whatever is asked)."""

    @abc.abstractmethod
    def connect(self) -> Any:
        """One DB-API connection now, as the pool's are (for start-up)."""

    def convert_param_style(self, sql: str) -> str:
        return sql

    @abc.abstractmethod
    def begin(self, cursor: Cursor, write: bool) -> None:
        """Start the interaction's transaction."""

    @abc.abstractmethod
    def lock_schema(self, cursor: Cursor) -> None:
        """Keep other processes from migrating until this transaction ends."""

    @abc.abstractmethod
    def columns(self, cursor: Cursor, table: str) -> set[str]:
        """The names of `table`'s columns."""

    @abc.abstractmethod
    def insert_returning_id(self, cursor: Cursor, sql: str, params: Sequence[Any]) -> int:
        """Run one `INSERT` and return the new row's `id`."""

    def is_connection_lost(self, connection: Any) -> bool:
        """Whether the failure just seen on `connection` means it is gone."""
        return False


class SqliteEngine(Engine):
    """SQLite through `sqlite3`: one connection, WAL, durable commits.

    The connection is in autocommit mode (`isolation_level=None`) and
    `begin()` opens each transaction explicitly, so that migrations (DDL,
    which `sqlite3` would otherwise run outside any transaction) are
    atomic too. In WAL mode `synchronous=NORMAL` makes `COMMIT` return once
    the write-ahead log has the transaction, in the operating system's
    hands: a `kill -9` of the server right after loses nothing; a power
    loss may lose the last commits (FULL would fsync every commit, which a
    server recording hundreds of reigns a second pays dearly for).
    """

    module_name = "sqlite3"
    dialect: ClassVar[dict[str, str]] = {"id_primary_key": "INTEGER PRIMARY KEY"}

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._file: tuple[int, int] | None = None  # the file opened: (device, inode)

    def make_pool(self, reactor: Any, threads: int) -> Pool:
        return Pool(self.module_name, self.path, check_same_thread=False,
                    isolation_level=None, cp_min=1, cp_max=1,
                    cp_openfun=self._on_connect, cp_reactor=reactor)

    def connect(self) -> Any:
        connection = self.module.connect(self.path, isolation_level=None)
        self._on_connect(connection)
        return connection

    def _on_connect(self, connection: Any) -> None:
        try:
            cursor = connection.cursor()
            _into_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            if self._file is None:  # the file realm opened first is the one to write
                self._file = _identity(self.path)
        except BaseException:
            connection.close()  # adbapi would keep a broken one otherwise
            raise

    def begin(self, cursor: Cursor, write: bool) -> None:
        # A file deleted (or replaced) under the server still takes writes,
        # into a file no one will open again: refuse them, loudly.
        if write and self._file is not None and _identity(self.path) != self._file:
            raise sqlite3.OperationalError(
                "the file was deleted or replaced since realm opened it; what is written "
                "now would be lost (restart realm to open the file at that path)")
        # IMMEDIATE takes the write lock now: two processes upgrading one
        # file wait for each other instead of failing halfway.
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def lock_schema(self, cursor: Cursor) -> None:
        """`BEGIN IMMEDIATE` holds the file's write lock already."""

    def columns(self, cursor: Cursor, table: str) -> set[str]:
        cursor.execute(f"PRAGMA table_info({table})")
        return {row[1] for row in cursor.fetchall()}

    def insert_returning_id(self, cursor: Cursor, sql: str, params: Sequence[Any]) -> int:
        cursor.execute(sql, params)
        return int(cursor.lastrowid)


def _identity(path: str) -> tuple[int, int] | None:
    """The file at `path` (device, inode), or None if there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _into_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, waiting while another connection turns a
    new file to WAL at the same moment: SQLite then answers "database is
    locked" at once (its busy timeout does not cover this step), so several
    processes starting on one new file would have all but one fail."""
    deadline = time.monotonic() + WAL_WAIT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)  # in the pool's thread (or before the reactor runs)


class PostgresEngine(Engine):
    """PostgreSQL through psycopg 3: a small pool that reconnects."""

    module_name = "psycopg"
    dialect: ClassVar[dict[str, str]] = {
        "id_primary_key": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"}

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self.conninfo = conninfo

    def _options(self) -> dict[str, Any]:
        given = parse_qs(urlsplit(self.conninfo).query)
        defaults = {"connect_timeout": 10, "application_name": "realm"}
        return {key: value for key, value in defaults.items() if key not in given}

    def make_pool(self, reactor: Any, threads: int) -> Pool:
        return Pool(self.module_name, self.conninfo, **self._options(),
                    cp_min=1, cp_max=threads, cp_reactor=reactor)

    def connect(self) -> Any:
        return self.module.connect(self.conninfo, **self._options())

    def convert_param_style(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def begin(self, cursor: Cursor, write: bool) -> None:
        """psycopg begins a transaction with the first statement."""

    def lock_schema(self, cursor: Cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def columns(self, cursor: Cursor, table: str) -> set[str]:
        cursor.execute("SELECT column_name FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND table_name = ?", (table,))
        return {row[0] for row in cursor.fetchall()}

    def insert_returning_id(self, cursor: Cursor, sql: str, params: Sequence[Any]) -> int:
        cursor.execute(sql + " RETURNING id", params)
        row = cursor.fetchone()
        assert row is not None
        return int(row[0])

    def is_connection_lost(self, connection: Any) -> bool:
        return connection.lost or bool(connection.broken)


def schema_version(cursor: Cursor) -> int:
    """The database's schema version; 0 for a new one.  Its table is made only
    then: a role that may not make tables opens a database made before."""
    if not cursor.engine.columns(cursor, "schema_version"):
        cursor.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                       "name TEXT NOT NULL)")
    cursor.execute("SELECT MAX(version) FROM schema_version")
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(cursor: Cursor, migrations: Sequence[Migration],
            kept: Callable[[Cursor], None] | None = None) -> int:
    """Bring the schema up to `migrations`' last version and return it;
    `kept(cursor)` looks at a database made before, first.  In the caller's
    transaction (begun for writing): its commit makes all of it happen."""
    cursor.engine.lock_schema(cursor)
    current = schema_version(cursor)
    if current and kept is not None:
        kept(cursor)
    if current > len(migrations):
        raise SchemaError(f"its schema is at version {current}, newer than this realm "
                          f"knows ({len(migrations)}): upgrade realm")
    for migration in migrations[current:]:
        for statement in migration.statements(cursor.engine.dialect):
            cursor.execute(statement)
        cursor.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)",
                       (migration.version, migration.name))
    return len(migrations)


def interact(connection: Any, engine: Engine, body: Callable[..., T], args: tuple[Any, ...],
             write: bool) -> T | Failed:
    """In a pool thread: `body(cursor, *args)` in one transaction, committed.
    On a connection found dead (a PostgreSQL restarted since) it runs once
    more on a fresh one: nothing was committed, nothing is doubled."""
    try:
        try:
            result = _attempt(connection, engine, body, args, write)
        except engine.errors:
            if not engine.is_connection_lost(connection):
                raise
            connection.reconnect()
            result = _attempt(connection, engine, body, args, write)
        connection.commit()  # fails the call if it fails: no retry, it may have landed
        return result
    except BaseException as error:
        connection.rollback()  # realm.chronicle_pool.PoolConnection: never raises
        return Failed(error)


def _attempt(connection: Any, engine: Engine, body: Callable[..., T], args: tuple[Any, ...],
             write: bool) -> T:
    cursor = Cursor(connection.cursor(), engine)
    try:
        engine.begin(cursor, write)
        return body(cursor, *args)
    finally:
        cursor.close()
