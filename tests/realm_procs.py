"""Child processes for the end-to-end tests: the installed commands, piped.

A `Proc` reads its child's stdout and stderr on two threads into queues,
so a test waits for a line with a bounded `expect` (no sleeping), and
`stop` always ends the child: terminate, then kill.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent
WAIT = 15.0  # the longest any single expectation may take, in seconds


def command(name: str) -> str:
    """The installed console script `name`, next to this Python."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return str(path)


class Proc:
    """A child with its stdin piped and its output read line by line."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None,
                 new_session: bool = False, log: Path | None = None,
                 pass_fds: tuple[int, ...] = ()) -> None:
        """`log`: a file that gets a copy of stdout and stderr as they come;
        `pass_fds`: descriptors the child inherits (a listening socket)."""
        self.argv = argv
        environ = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        environ.update(env or {})
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=environ, text=True, bufsize=1, start_new_session=new_session,
            pass_fds=pass_fds)
        self.out: list[str] = []
        self.err: list[str] = []
        self._log = open(log, "a", encoding="utf-8", buffering=1) if log else None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [self._reader(self.popen.stdout, self.out, self._lines, self._log),
                         self._reader(self.popen.stderr, self.err, None, self._log)]

    @staticmethod
    def _reader(stream: IO[str] | None, seen: list[str],
                lines: queue.Queue[str | None] | None,
                log: IO[str] | None) -> threading.Thread:
        def read() -> None:
            assert stream is not None
            for line in stream:
                seen.append(line.rstrip("\r\n"))
                if log is not None:
                    log.write(line)
                if lines is not None:
                    lines.put(seen[-1])
            if lines is not None:
                lines.put(None)  # end of output

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    @property
    def pid(self) -> int:
        return self.popen.pid

    def expect(self, wanted: str | Callable[[str], bool], timeout: float = WAIT) -> str:
        """The next stdout line containing `wanted` (or for which it is true)."""
        match = wanted if callable(wanted) else (lambda line: wanted in line)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"no line matching {wanted!r} in {timeout}s\n"
                                     + self.describe()) from None
            if line is None:
                self._lines.put(None)
                raise AssertionError(f"output ended before {wanted!r}\n" + self.describe())
            if match(line):
                return line

    def expect_re(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        found = re.search(pattern, self.expect(lambda line: bool(re.search(pattern, line)),
                                               timeout))
        assert found is not None
        return found

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()

    def wait(self, timeout: float = WAIT) -> int:
        """The exit code, once the child has exited and its output is read."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s\n"
                                 + self.describe()) from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def stop(self) -> None:
        """End the child whatever state it is in: terminate, then kill."""
        self.close_stdin()
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        if self._log is not None:
            self._log.close()

    def describe(self) -> str:
        return (f"$ {' '.join(self.argv)}\n--- stdout:\n" + "\n".join(self.out)
                + "\n--- stderr:\n" + "\n".join(self.err))


@contextmanager
def running(*argv: str, env: dict[str, str] | None = None,
            new_session: bool = False) -> Iterator[Proc]:
    """A `Proc` that is stopped however the block ends."""
    proc = Proc(*argv, env=env, new_session=new_session)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def realm_server(*options: str) -> Iterator[tuple[Proc, str]]:
    """`twistd -n realm` on a free loopback port: (the process, its endpoint)."""
    with running(command("twistd"), "-n", "--pidfile=", "realm",
                 "--listen", "tcp:0:interface=127.0.0.1", *options) as server:
        port = server.expect_re(r"starting on (\d+)").group(1)
        yield server, f"tcp:127.0.0.1:{port}"


def alive(pid: int) -> bool:
    """Whether a process `pid` exists and has not yet been reaped or ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
