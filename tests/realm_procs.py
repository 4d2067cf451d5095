"""Child processes for the end-to-end tests: the installed commands, piped
or at a terminal, and a fake server to test them against.

A `Proc` reads its child's stdout and stderr on two threads into queues,
so a test waits for a line with a bounded `expect` (no sleeping), and
`stop` always ends the child: terminate, then kill.

A `Terminal` runs a child in a pseudo-terminal of a fixed size and models
its screen (`twisted.conch.insults.helper.TerminalBuffer`), so a test
reads what the player SEES; `until` waits, bounded, for the screen to
show something.

A `FakeServer` is a plain loopback socket that a test drives by hand:
accept a client, send it any bytes, read its lines, all with timeouts.
"""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from twisted.conch.insults.helper import TerminalBuffer
from twisted.conch.insults.insults import ClientProtocol
from twisted.internet.testing import StringTransport

BIN = Path(sys.executable).parent
WAIT = 15.0  # the longest any single expectation may take, in seconds


def server_port() -> int:
    """A free loopback port for a server a test stops and starts again on
    it: one below the range the kernel gives connections their own ports
    from (`ip_local_port_range`), so that no connection made meanwhile can
    take it, as one may a port that bind(0) chose."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low < 10200:  # every port may be a connection's: the kernel's choice, then
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    for port in random.sample(range(10000, low), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # taken
                continue
            return port
    raise RuntimeError(f"no free port below {low}")


def command(name: str) -> str:
    """The installed console script `name`, next to this Python."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return str(path)


class Proc:
    """A child with its stdin piped and its output read line by line."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None,
                 new_session: bool = False, cwd: str | None = None,
                 log: Path | None = None, pass_fds: tuple[int, ...] = ()) -> None:
        """`cwd`: where it runs; `log`: a file that gets a copy of stdout and
        stderr as they come; `pass_fds`: descriptors the child inherits (a
        listening socket)."""
        self.argv = argv
        environ = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        environ.update(env or {})
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=environ, text=True, bufsize=1, start_new_session=new_session, cwd=cwd,
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
            new_session: bool = False, cwd: str | None = None) -> Iterator[Proc]:
    """A `Proc` that is stopped however the block ends."""
    proc = Proc(*argv, env=env, new_session=new_session, cwd=cwd)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def realm_server(*options: str, listen: str = "tcp:0:interface=127.0.0.1",
                 scheme: str = "tcp") -> Iterator[tuple[Proc, str]]:
    """`twistd -n realm` on a free loopback port: (the process, its endpoint,
    as `scheme:127.0.0.1:PORT`).

    It runs in a folder of its own (its chronicle, realm.sqlite, is there).
    """
    with tempfile.TemporaryDirectory(prefix="realm-server-") as folder, \
            running(command("twistd"), "-n", "--pidfile=", "realm",
                    "--listen", listen, *options, cwd=folder) as server:
        port = server.expect_re(r"starting on (\d+)").group(1)
        yield server, f"{scheme}:127.0.0.1:{port}"


def make_certificate(folder: Path, names: tuple[str, ...] | None = None,
                     expired: bool = False, alt: bool = True) -> tuple[Path, Path]:
    """A self-signed certificate, by default for localhost and 127.0.0.1 and
    valid for a day, as the Makefile's `cert` makes: (the server's PEM, a
    folder trusting it).  `expired`: it ended on 2020-01-02; not `alt`: the
    names are not in a subjectAltName, only the first in the common name
    (as `openssl req -x509 -subj /CN=localhost` makes)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    pem, roots = folder / "server.pem", folder / "trust"
    names = names or ("localhost", "127.0.0.1")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    start = (datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC) if expired
             else datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
    held: list[x509.GeneralName] = []
    for name in names:
        try:
            held.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            held.append(x509.DNSName(name))
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(held), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    shown = certificate.public_bytes(serialization.Encoding.PEM)
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()) + shown)
    roots.mkdir(exist_ok=True)
    (roots / "realm.pem").write_bytes(shown)
    return pem, roots


def unix_ask(path: Path, line: str) -> list[str]:
    """An operator's console's answer to `line` (its lines, without the `.`)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(WAIT)
        s.connect(str(path))
        s.sendall(line.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n.\n"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    return data.decode().split("\n")[:-2]


def ended(pid: int, timeout: float = WAIT) -> bool:
    """Whether process `pid` (not a child of ours) ends within `timeout`:
    its pidfd becomes readable when it exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def alive(pid: int) -> bool:
    """Whether a process `pid` exists and has not yet been reaped or ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class ScreenBuffer(TerminalBuffer):
    """TerminalBuffer as a UTF-8 terminal: it keeps printable ASCII only,
    so here a character of several bytes takes one cell; and it knows the
    8 colours only, so it is told the bright ones (SGR 90-97, 100-107) as
    their plain ones."""

    _pending = b""

    def insertAtCursor(self, b: bytes) -> None:
        if b < b"\x80" and not self._pending:
            return super().insertAtCursor(b)
        self._pending += b
        try:
            self._pending.decode()
        except UnicodeDecodeError:
            if len(self._pending) >= 4:  # not UTF-8 at all: drop it
                self._pending = b""
            return None
        if self.x >= self.width:
            self.nextLine()
        self.lines[self.y][self.x] = (self._pending, self._currentFormattingState())
        self._pending = b""
        self.x += 1
        return None

    def selectGraphicRendition(self, *attributes: object) -> None:
        super().selectGraphicRendition(*(
            a - 60 if isinstance(a, int) and 90 <= a <= 107 else a for a in attributes))


class Terminal:
    """A child in a pseudo-terminal `columns` x `rows`, and its screen."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None,
                 columns: int = 80, rows: int = 24) -> None:
        self.argv = argv
        self.main, side = pty.openpty()
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.settings = termios.tcgetattr(side)
        environ = dict(os.environ, TERM="xterm", PYTHONUNBUFFERED="1")
        for name in ("NO_COLOR", "COLUMNS", "LINES", "REALM_PASSWORD"):
            environ.pop(name, None)
        environ.update(env or {})
        self.popen = subprocess.Popen(argv, stdin=side, stdout=side, stderr=side,
                                      env=environ, start_new_session=True)
        self.side = side
        self.raw = bytearray()
        self.buffer = ScreenBuffer()
        self.buffer.width, self.buffer.height = columns, rows
        self._parser = ClientProtocol(lambda: self.buffer)
        self._parser.makeConnection(StringTransport())

    def write(self, keys: bytes) -> None:
        os.write(self.main, keys)

    def rows(self) -> list[str]:
        """The screen's rows that hold something, as it shows them."""
        text = bytes(self.buffer).decode("utf-8", "replace")
        return [row.rstrip() for row in text.split("\n") if row.strip()]

    def _read(self, left: float) -> bool:
        """Read what the child wrote within `left` seconds; whether it wrote."""
        ready, _, _ = select.select([self.main], [], [], left)
        if not ready:
            return False
        try:
            data = os.read(self.main, 65536)
        except OSError:  # the child has closed the terminal
            return False
        self.raw += data
        self._parser.dataReceived(data)
        return bool(data)

    def until(self, shows: bytes | Callable[[list[str]], bool],
              timeout: float = WAIT) -> None:
        """Read until the output holds `shows` (bytes), or the screen's rows
        make `shows` true; fail, saying what the screen had, after `timeout`
        or once the child has exited without showing it."""
        def done() -> bool:
            return shows in self.raw if isinstance(shows, bytes) else shows(self.rows())

        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            ended = self.popen.poll() is not None
            if ended:  # what it wrote just before it exited may be unread still
                while self._read(0):
                    pass
                if done():
                    return
            assert left > 0 and not ended, (
                f"{shows!r} never came{' (the child exited)' if ended else ''}; the "
                "screen:\n" + "\n".join(self.rows())
                + f"\nthe output: {bytes(self.raw[-3000:])!r}")
            self._read(min(left, 0.5))

    def wait(self, timeout: float = WAIT) -> int:
        """The exit code, once the child has exited and its output is read."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s; the screen:\n"
                                 + "\n".join(self.rows())) from None
        while self._read(0.1):  # what it wrote last
            pass
        return code

    def resize(self, columns: int, rows: int = 24) -> None:
        """The window is made `columns` wide, as xterm does it: rows keep
        their place and are cut, the child is told by SIGWINCH (which the
        kernel sends a controlling terminal's foreground, as the child
        here has no controlling terminal, sent by hand)."""
        fcntl.ioctl(self.side, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.buffer.width = columns
        os.killpg(self.popen.pid, signal.SIGWINCH)

    def hang_up(self) -> None:
        """The terminal window is closed: what is written to it fails (EIO),
        and the child's process group gets SIGHUP."""
        os.close(self.main)
        self.main = -1
        os.close(self.side)
        self.side = -1
        os.killpg(self.popen.pid, signal.SIGHUP)

    def stop(self) -> None:
        """Kill the child and what it started (its session's process group)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:  # all gone already
            pass
        self.popen.wait(5)
        for fd in (self.main, self.side):
            if fd >= 0:
                os.close(fd)


@contextmanager
def terminal(*argv: str, env: dict[str, str] | None = None,
             columns: int = 80, rows: int = 24) -> Iterator[Terminal]:
    """A `Terminal` that is stopped however the block ends."""
    term = Terminal(*argv, env=env, columns=columns, rows=rows)
    try:
        yield term
    finally:
        term.stop()


class Peer:
    """One connection to a `FakeServer`, or a raw client of a real one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(WAIT)
        self._data = b""

    @classmethod
    def connect(cls, endpoint: str) -> Peer:
        """A raw client of the server at `tcp:HOST:PORT`."""
        _, host, port = endpoint.split(":")
        return cls(socket.create_connection((host, int(port)), timeout=WAIT))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> str:
        """The next line received, without its line end (timeout: WAIT)."""
        while b"\n" not in self._data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before a whole line: {self._data!r}")
            self._data += chunk
        line, _, self._data = self._data.partition(b"\n")
        return line.rstrip(b"\r").decode()

    def expect(self, wanted: str) -> str:
        """The next line containing `wanted`."""
        while True:
            line = self.line()
            if wanted in line:
                return line

    def close(self) -> None:
        self.sock.close()


class FakeServer:
    """A loopback socket standing in for a server: accept, then say anything."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(WAIT)
        self.peers: list[Peer] = []

    @property
    def endpoint(self) -> str:
        return f"tcp:127.0.0.1:{self.sock.getsockname()[1]}"

    def accept(self) -> Peer:
        peer = Peer(self.sock.accept()[0])
        self.peers.append(peer)
        return peer

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.sock.close()


@contextmanager
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    try:
        yield server
    finally:
        server.close()
