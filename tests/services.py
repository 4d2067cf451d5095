"""Real services for the cluster's tests: Redis, `twistd realm --cluster`
processes and HAProxy, each a child process on free loopback ports.

- `RedisServer`: Debian's `redis-server` in a folder of its own, nothing
  saved (`--save '' --appendonly no`); `stop()` and `start()` again on
  the same port mid-test; `command()`/`info()` speak RESP to it directly.
- `RealmProc`: `twistd -n --pidfile= realm --cluster redis://...` on a
  port of its own (`tcp:0`, or `haproxy:tcp:0` behind HAProxy), ready
  once Redis is reachable from it; its output is copied to its own log
  file; `kill()` (SIGKILL), `terminate()` (SIGTERM), `pause()` (SIGSTOP).
- `HAProxy`: the shipped `docs/haproxy.cfg`, unchanged, its
  `${REALM_...}` variables set in its environment: round-robin over three
  processes with the PROXY protocol.  Its listening socket is made here
  and inherited (`bind fd@N`), so it takes connections from the start.
- `Services`: everything one test (or module) started, stopped however
  it ends, in the reverse order; it then fails the test if a realm
  process wrote a traceback or logged at error level.

No `redis-server` or `haproxy` here: the test is skipped with the
reason, except under `CI=true`, where it fails (CI must run every test).
Enable them with `pytest_plugins = ["services"]`: the fixtures
`services` (one test's) and `module_services` (a module's).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from realm_procs import Proc, command, server_port

from realm.testing import eventually

TIMEOUT = 15.0  # seconds for a child to start or stop, or Redis to answer
HAPROXY_CONFIG = Path(__file__).resolve().parent.parent / "docs" / "haproxy.cfg"
#: What a realm process must never write: a traceback, an error-level event.
PROBLEMS = ("Traceback", "#error]", "#critical]", "Unhandled Error")


def need(program: str) -> str:
    """The path of `program`; skip without it (fail under CI=true)."""
    found = shutil.which(program) or next(
        (str(p) for p in (Path("/usr/sbin") / program, Path("/usr/bin") / program)
         if p.is_file()), None)
    if found is None:
        why = f"{program} is not installed (apt-get install {program})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs {why}")
        pytest.skip(why)
    return found


class RedisError(Exception):
    """An error reply from Redis."""


def _encode(args: tuple[str | int, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(f: IO[bytes]) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"Redis closed the connection ({line!r})")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise ConnectionError(f"not a RESP reply: {line!r}")


class RedisServer:
    """One `redis-server`, stopped and started again at will on one port."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.folder = folder
        self.options = options  # more of redis-server's own
        self.port = 0
        self.proc: Proc | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it: on a free port the first time, then on that one."""
        binary = need("redis-server")
        for _attempt in range(3):
            port = self.port or server_port()  # kept over a restart
            self.starts += 1
            proc = Proc(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", str(self.folder), *self.options,
                        log=self.folder / f"redis-{self.starts}.log")
            try:
                proc.expect("Ready to accept connections", TIMEOUT)
            except AssertionError:
                proc.stop()
                if self.port:  # the same port again: no use trying others
                    raise
                continue  # the port was taken meanwhile
            self.port, self.proc = port, proc
            return
        raise AssertionError("redis-server did not start on three free ports")

    def stop(self) -> None:
        """Stop it (SIGTERM: it closes every client connection)."""
        if self.proc is not None:
            self.proc.popen.terminate()
            assert self.proc.wait(TIMEOUT) == 0, self.proc.describe()
            self.proc.stop()
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: its connections stay open and nothing is answered."""
        assert self.proc is not None
        self.proc.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.popen.send_signal(signal.SIGCONT)

    def command(self, *args: str | int) -> Any:
        """Run one command on a connection of its own; its reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as sock:
            sock.sendall(_encode(args))
            with sock.makefile("rb") as f:
                return _reply(f)

    def info(self, section: str) -> dict[str, str]:
        """`INFO section` as a dict."""
        text = self.command("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines()
                    if ":" in line and not line.startswith("#"))

    def calls(self) -> dict[str, int]:
        """Calls of each command so far (`INFO commandstats`)."""
        found = {}
        for key, value in self.info("commandstats").items():
            fields = dict(part.split("=", 1) for part in value.split(","))
            found[key.removeprefix("cmdstat_")] = int(fields["calls"])
        return found


class RealmProc:
    """One `twistd realm --cluster` process."""

    def __init__(self, folder: Path, name: str, url: str, listen: str,
                 options: tuple[str, ...]) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        # Its own folder: its chronicle (realm.sqlite) is kept there.
        home = folder / name
        home.mkdir(exist_ok=True)
        self.proc = Proc(command("twistd"), "-n", "--pidfile=", "realm", "--cluster", url,
                         "--listen", listen, *options, log=self.log, cwd=str(home))
        self.port = 0
        self.node = ""
        self._signalled = False

    def ready(self, reachable: bool = True) -> None:
        """Wait for its port, its cluster node's name and (if `reachable`)
        Redis reachable."""
        found: dict[str, str] = {} if reachable else {"up": ""}

        def started(line: str) -> bool:
            for key, text in (("port", " starting on "), ("node", "Cluster node "),
                              ("up", " is reachable")):
                if text in line and key not in found:
                    found[key] = line.split(text, 1)[1].split()[0] if key != "up" else ""
            return len(found) == 3

        self.proc.expect(started, TIMEOUT)
        self.port, self.node = int(found["port"]), found["node"]

    def served(self, what: str) -> int:
        """The port it logged serving `what` on ("realm", "the web client")."""
        pattern = rf"Serving {re.escape(what)}(?: \(PROXY protocol\))? on .*:(\d+)\)$"
        for line in self.out:
            found = re.search(pattern, line)
            if found:
                return int(found.group(1))
        return int(self.proc.expect_re(pattern, TIMEOUT).group(1))

    @property
    def out(self) -> list[str]:
        return self.proc.out + self.proc.err

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.out)

    def problems(self) -> list[str]:
        """The tracebacks and error-level lines in its log file."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if any(p in line for p in PROBLEMS)]

    def kill(self) -> None:
        """SIGKILL: nothing is said to anyone."""
        self.proc.popen.kill()
        self.proc.popen.wait(TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP: the process stands still (a long GC, a stuck disk)."""
        self.proc.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.popen.send_signal(signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM, once (twistd's second one would be a traceback of Twisted's)."""
        if not self._signalled and self.proc.popen.poll() is None:
            self._signalled = True
            self.proc.popen.send_signal(signal.SIGTERM)

    async def exited(self, timeout: float = TIMEOUT) -> int:
        """Its exit status, once it has exited (waited for through the reactor)."""
        await eventually(lambda: self.proc.popen.poll() is not None,
                         f"{self.name} to exit", timeout)
        return self.proc.popen.returncode

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `TIMEOUT`."""
        if self.proc.popen.poll() is None:
            self.resume()  # a paused process would not see its SIGTERM
        self.terminate()
        try:
            self.proc.popen.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.popen.kill()
            self.proc.popen.wait(TIMEOUT)
        self.proc.stop()


class HAProxy:
    """HAProxy on a free loopback port, from the shipped example config."""

    def __init__(self, folder: Path, ports: list[int]) -> None:
        binary = need("haproxy")
        assert len(ports) == 3, "docs/haproxy.cfg names three processes"
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen(128)
        self.port = int(listening.getsockname()[1])
        fd = listening.fileno()
        os.set_inheritable(fd, True)
        env = {"REALM_BIND": f"fd@{fd}"}
        env.update({f"REALM_{i}": f"127.0.0.1:{port}" for i, port in enumerate(ports, 1)})
        checked = subprocess.run([binary, "-c", "-q", "-f", str(HAPROXY_CONFIG)],
                                 env=dict(os.environ, **env), capture_output=True,
                                 text=True, timeout=TIMEOUT, pass_fds=(fd,))
        assert checked.returncode == 0, f"haproxy -c: {checked.stdout}{checked.stderr}"
        try:
            self.proc = Proc(binary, "-db", "-f", str(HAPROXY_CONFIG), env=env,
                             pass_fds=(fd,), log=folder / "haproxy.log")
        finally:
            listening.close()  # HAProxy has its own copy: it alone accepts

    def stop(self) -> None:
        self.proc.stop()


class Services:
    """What one test or module started; `close()` stops it all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[RealmProc] = []
        self._redis: list[RedisServer] = []
        self._haproxy: list[HAProxy] = []

    def redis(self, *options: str) -> RedisServer:
        server = RedisServer(self.folder, *options)
        self._redis.append(server)
        server.start()
        return server

    def realms(self, n: int, redis: RedisServer, *options: str,
               listen: str = "tcp:0:interface=127.0.0.1",
               reachable: bool = True) -> list[RealmProc]:
        """`n` realm processes on `redis`, started side by side (and
        waited for until they reach it, if `reachable`)."""
        first = len(self.procs)
        started = [RealmProc(self.folder, f"realm{first + i}", redis.url, listen, options)
                   for i in range(n)]
        self.procs.extend(started)
        for proc in started:
            proc.ready(reachable)
        return started

    def haproxy(self, servers: list[RealmProc], what: str = "realm") -> HAProxy:
        """HAProxy in front of `servers`' ports for `what` (as `served` names it)."""
        proxy = HAProxy(self.folder, [server.served(what) for server in servers])
        self._haproxy.append(proxy)
        return proxy

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()  # all at once: they wind down side by side
        stops = [*(proc.stop for proc in self.procs), *(proxy.stop for proxy in self._haproxy),
                 *(server.proc.stop for server in self._redis if server.proc is not None)]
        failed: list[BaseException] = []
        for each in stops:  # each one stopped, whatever the others do
            try:
                each()
            except Exception as error:
                failed.append(error)
        if failed:
            raise failed[0]
        problems = [f"{proc.name} ({proc.log}): {line}"
                    for proc in self.procs for line in proc.problems()]
        assert not problems, "a realm process wrote:\n" + "\n".join(problems)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """One test's services, stopped afterwards."""
    started = Services(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def module_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A module's services, for tests that stop nothing."""
    started = Services(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.close()

