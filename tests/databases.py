"""Real databases for the chronicle's tests: SQLite files and a PostgreSQL.

`postgres_server` (session) runs Debian's PostgreSQL in a temporary
folder on a free loopback port: `initdb` and `pg_ctl` run as the
`postgres` user when the tests run as root (initdb refuses root), the
server is always stopped (`pg_ctl -m fast`) and its folder removed. No
PostgreSQL or no psycopg here: the test is skipped with the reason, except
under `CI=true`, where it fails: CI must run every test.
`postgres_url` gives each test a schema of its own (`test_<n>`, first
on the URL's `search_path`: far quicker than a database each),
dropped afterwards. `chronicle_url` is either backend, by parameter.
`REALM_POSTGRES_BINDIR` names the folder of `initdb` and `pg_ctl` where
they live elsewhere.

Enable them in a test module with `pytest_plugins = ["databases"]`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from realm_procs import server_port

TIMEOUT = 60.0  # seconds for one initdb, pg_ctl or SQL command
USER = "realm"
_databases = itertools.count(1)


def _unavailable(reason: str) -> None:
    """Skip for want of PostgreSQL; fail instead on CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs PostgreSQL: {reason}")
    pytest.skip(reason)


def find_bindir() -> Path | None:
    """`$REALM_POSTGRES_BINDIR` if set, else the newest
    `/usr/lib/postgresql/N/bin`, else initdb's folder on PATH."""
    chosen = os.environ.get("REALM_POSTGRES_BINDIR")
    if chosen is not None:
        return Path(chosen) if (Path(chosen) / "initdb").is_file() else None
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """One PostgreSQL cluster in a folder of its own, stopped and started at will."""

    def __init__(self, bindir: Path, folder: Path) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = 0
        # initdb refuses root: run the server's tools as `postgres` then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as, str(self.bindir / tool), *args],
                              capture_output=True, text=True, timeout=TIMEOUT)

    def _why(self, result: subprocess.CompletedProcess[str]) -> str:
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return f"{result.args}: {result.stdout}{result.stderr}{log}"

    def initdb(self) -> None:
        if self._as:
            os.chown(self.folder, pwd.getpwnam("postgres").pw_uid, -1)
        result = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER,
                           "-E", "UTF8", "--no-sync")
        if result.returncode:
            raise RuntimeError(f"initdb failed: {self._why(result)}")

    def start(self) -> None:
        """Start the server, on a new free port the first time, then on that one."""
        for _attempt in range(3):
            port = self.port or server_port()  # kept over a restart
            result = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                "-o", f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c full_page_writes=off", "start")
            if result.returncode == 0:
                self.port = port
                return
            if self.port:  # the same port again: no use trying others
                break
        raise RuntimeError(f"pg_ctl start failed: {self._why(result)}")

    def stop(self) -> None:
        result = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                           "stop")
        if result.returncode:
            raise RuntimeError(f"pg_ctl stop failed: {self._why(result)}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def sql(self, *statements: str, database: str = "postgres") -> None:
        """Run statements outside any transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True,
                             connect_timeout=int(TIMEOUT)) as connection:
            for statement in statements:
                connection.execute(statement)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL for the whole session (see the module's docstring)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'realm[postgresql]')")
    bindir = find_bindir()
    if bindir is None:
        _unavailable("PostgreSQL is not installed (no initdb in $REALM_POSTGRES_BINDIR, "
                     "/usr/lib/postgresql/*/bin or on PATH): apt-get install postgresql")
    assert bindir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root, and there is no `postgres` user to run initdb as")
    folder = Path(tempfile.mkdtemp(prefix="realm-pg-"))
    server = PostgresServer(bindir, folder)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        try:
            if server.port:
                server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL whose tables land in a fresh, empty schema, for one test."""
    name = f"test_{next(_databases)}"
    postgres_server.sql(f"CREATE SCHEMA {name}")
    yield postgres_server.url() + f"?options=-csearch_path%3D{name}"
    postgres_server.sql("SET lock_timeout = '10s'", f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A chronicle file of the test's own (not created yet)."""
    return f"sqlite:{tmp_path / 'realm.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def chronicle_url(request: pytest.FixtureRequest) -> str:
    """A fresh chronicle URL, once for each backend."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    url: str = request.getfixturevalue(fixture)
    return url
