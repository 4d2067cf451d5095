"""The server as a process, as an operator meets it: start-up failures in
one line, the signals (SIGTERM and SIGINT exit 0; SIGHUP reopens the log
and keeps every game), `--version`, the open-files limit, the collector,
the reactor's poll, JSON logs."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from realm_procs import WAIT, Peer, command, ended, running
from twisted.internet import reactor
from twisted.internet.error import ReactorNotRunning
from twisted.logger import formatEvent

from realm._direct import _PlainPoll
from realm.process import BACKLOG, GC_YOUNG, Signals, with_backlog
from realm.tap import Options, makeService
from realm.testing import eventually

TWISTD = str(Path(sys.executable).with_name("twistd"))


def start(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWISTD, "-n", "--pidfile=", "realm", "--chronicle", "none",
                           *options], cwd=tmp_path, capture_output=True, text=True,
                          timeout=WAIT)


def one_line_failure(result: subprocess.CompletedProcess[str], *says: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    for said in says:
        assert said in line, line
    return line


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start(tmp_path, "--listen", f"tcp:{port}:interface=127.0.0.1")
    one_line_failure(result, "realm: cannot listen on", f"tcp:{port}", "in use")


def test_a_socket_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    sock = tmp_path / "no" / "admin.sock"
    result = start(tmp_path, "--listen", "tcp:0:interface=127.0.0.1", "--admin", f"unix:{sock}")
    line = one_line_failure(result, "realm: cannot listen on", "the operator's console")
    assert line.endswith(f": No such file or directory: {sock} (there is no folder "
                         f"{sock.parent})"), line


def test_a_daemon_that_cannot_listen_says_so_and_exits(tmp_path: Path) -> None:
    """Without -n, twistd's first process waits for the daemon's word: a port
    in use is told there, not waited on for ever."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [TWISTD, "--pidfile=", "--logfile", str(tmp_path / "realm.log"), "realm",
             "--chronicle", "none", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 1
    whole, *twistds = result.stderr.splitlines()  # twistd's own cuts the line at 100 bytes
    assert whole.startswith(f"realm: cannot listen on tcp:{port}:interface=127.0.0.1 for "
                            "realm: ") and whole.endswith("Address already in use."), whole
    assert "An error has occurred" in twistds[0] and "Traceback" not in result.stderr
    assert f"realm: cannot listen on tcp:{port}" in (tmp_path / "realm.log").read_text()


def test_a_daemon_that_starts_lets_go_of_its_starters_terminal(tmp_path: Path) -> None:
    """The stderr kept for a start-up failure is closed once the daemon
    runs: a daemon holding it would keep an ssh session (here: the pipes
    `run` reads to their end) open."""
    pidfile = tmp_path / "twistd.pid"
    try:
        result = subprocess.run(
            [TWISTD, f"--pidfile={pidfile}", "--logfile", str(tmp_path / "realm.log"), "realm",
             "--chronicle", "none", "--listen", "tcp:0:interface=127.0.0.1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
        assert (result.returncode, result.stderr) == (0, "")
    finally:
        if pidfile.exists():  # the daemon, stopped however the test ends
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            assert ended(pid)


def test_a_key_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    result = start(tmp_path, "--listen", "ssl:0:privateKey=missing.pem")
    one_line_failure(result, "realm: --listen ssl:0:privateKey=missing.pem", "cannot read")


def test_a_certificate_that_is_not_one_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    result = start(tmp_path, "--listen", "ssl:0:privateKey=junk.pem")
    one_line_failure(result, "realm: --listen ssl:0:privateKey=junk.pem",
                     "each must be a PEM file")


def test_an_encrypted_key_is_one_line_and_no_prompt(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))
    (tmp_path / "locked.pem").write_bytes(key)
    result = start(tmp_path, "--listen", "ssl:0:privateKey=locked.pem")
    one_line_failure(result, "realm: --listen ssl:0:privateKey=locked.pem",
                            "the private key in locked.pem is encrypted")
    assert "pass phrase" not in result.stdout  # nothing asked for


def test_a_password_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    result = start(tmp_path, "--auth", "file:no-such-lords.txt")
    one_line_failure(result, "realm: --auth file:no-such-lords.txt",
                     "cannot read the password file")


def test_version_is_realms(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = start(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"realm {version('realm')} (Twisted ")


def test_the_help_reads_cleanly(tmp_path: Path) -> None:
    result = start(tmp_path, "--help")
    assert "  " * 4 + "(" not in result.stdout  # no gap mid-sentence from a docstring
    assert "--listen=" in result.stdout and "repeatable" in result.stdout


def test_backlog_is_larger_unless_chosen() -> None:
    assert with_backlog("tcp:2345") == f"tcp:2345:backlog={BACKLOG}"
    assert with_backlog("ssl:2346:privateKey=k.pem") == (
        f"ssl:2346:privateKey=k.pem:backlog={BACKLOG}")
    assert with_backlog("tcp:2345:backlog=10") == "tcp:2345:backlog=10"
    assert with_backlog("systemd:domain=INET:index=0") == "systemd:domain=INET:index=0"


def test_the_server_collects_less_often_and_polls_plainly() -> None:
    """A busy server at Python's default (700) spent 14% of its CPU in the
    collector with 10,000 connections, and 8% in a log context for each
    ready socket (bench/RESULTS.md)."""
    before = gc.get_threshold()
    config = Options()
    config.parseOptions(["--listen", "tcp:0", "--chronicle", "none"])
    try:
        makeService(config)
        assert gc.get_threshold() == (GC_YOUNG, *before[1:])
        assert isinstance(vars(reactor)["doIteration"], _PlainPoll)
    finally:
        gc.set_threshold(*before)
        vars(reactor).pop("doIteration", None)
        vars(reactor).pop("doPoll", None)


def serve(tmp_path: Path, *options: str) -> running:  # type: ignore[valid-type]
    return running(command("twistd"), "-n", "--pidfile=", "realm", "--chronicle", "none",
                   "--listen", "tcp:0:interface=127.0.0.1", *options, cwd=str(tmp_path))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_say_farewell_and_exit_0(tmp_path: Path, signum: int) -> None:
    with serve(tmp_path) as server:
        port = server.expect_re(r"RealmFactory starting on (\d+)").group(1)
        server.expect("Running: SIGTERM")
        assert any("Open-files limit:" in line for line in server.out)
        arya = Peer.connect(f"tcp:127.0.0.1:{port}")
        arya.send(b"arya\n")
        arya.expect("Arya has entered")
        os.kill(server.pid, signum)
        arya.expect("The server is shutting down. Farewell!")
        assert server.wait() == 0


class Stopping:
    """A reactor's stop, as Twisted's: the second raises ReactorNotRunning."""

    stops = 0

    def callFromThread(self, f: Any, *args: Any) -> None:
        f(*args)

    def stop(self) -> None:
        self.stops += 1
        if self.stops > 1:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")


def test_a_second_signal_while_stopping_is_told_not_raised(
        events: list[dict[str, Any]]) -> None:
    """Ctrl-C pressed again during the graceful stop: a line in the log,
    not a traceback from stopping the reactor twice."""
    stopping = Stopping()
    signals = Signals(stopping, lambda: None)
    signals._stop(signal.SIGTERM, None)
    signals._stop(signal.SIGINT, None)
    assert stopping.stops == 1
    said = [formatEvent(e) for e in events]
    assert said[-2:] == ["Received SIGTERM: shutting down",
                         "Received SIGINT again: already shutting down"]


def events_in(log: Path) -> list[dict[str, Any]]:
    """The events of a JSON log (a JSON object a line), but one half written."""
    events = []
    for record in log.read_text().split("\n") if log.exists() else []:
        try:
            events.append(json.loads(record))
        except ValueError:
            continue  # empty, or still being written
    return events


def port_in(log: Path) -> int:
    """The game's port, once the JSON log says it (0 until then)."""
    for event in events_in(log):
        if event.get("what") == "realm" and event.get("port"):
            return int(event["port"])
    return 0


@pytest_twisted.ensureDeferred
async def test_sighup_reopens_the_log_and_keeps_the_game(tmp_path: Path) -> None:
    log = tmp_path / "realm.log"
    with running(command("twistd"), "-n", "--pidfile=", "-l", str(log), "realm",
                 "--chronicle", "none", "--listen", "tcp:0:interface=127.0.0.1",
                 "--log-format", "json", cwd=str(tmp_path)) as server:
        await eventually(lambda: port_in(log), "the game's port in the log")
        port = port_in(log)
        arya, bran = Peer.connect(f"tcp:127.0.0.1:{port}"), Peer.connect(f"tcp:127.0.0.1:{port}")
        arya.send(b"arya\n")
        bran.send(b"bran\n")
        arya.expect("Bran has entered")
        log.rename(tmp_path / "realm.log.1")  # what logrotate does, then HUP
        os.kill(server.pid, signal.SIGHUP)
        arya.send(b"still here\n")
        assert bran.expect("Arya: ") == "Arya: still here"
        await eventually(lambda: log.exists() and "reopened the log" in log.read_text(),
                         "the new log file")
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait() == 0
    reopened = events_in(log)
    assert log.read_text().count("\n") == len(reopened)  # JSON Lines, nothing else
    assert any("reopened the log" in e.get("log_format", "") for e in reopened)
    assert any(e["level"] == "info" and e["text"].startswith("Shutting down: closing 2 "
                                                             "connections") for e in reopened)
    assert any("Shutting down" in e.get("log_format", "") for e in reopened)
    old = events_in(tmp_path / "realm.log.1")
    assert any("joined realm" in e.get("log_format", "") for e in old)
