"""The installed `twistd realm`, run as a user would, played over raw sockets.

Every wait is bounded: socket timeouts, `Event.wait(timeout)`,
`Popen.wait(timeout)`; the server is killed in `finally`.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

TWISTD = str(Path(sys.executable).with_name("twistd"))
TIMEOUT = 10.0


class Server:
    """A `twistd -n realm` child; its log is read by a thread."""

    def __init__(self, cwd: Path, *options: str, listeners: int = 1) -> None:
        self.listeners = listeners
        self.process = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "realm",
             "--listen", "tcp:0:interface=127.0.0.1", *options],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        self.ports: list[int] = []
        self._terminated = False
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(TIMEOUT):
            raise AssertionError("twistd did not start listening:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            found = re.search(r"RealmFactory starting on (\d+)", line)
            if found:
                self.ports.append(int(found.group(1)))
                if len(self.ports) == self.listeners:
                    self._listening.set()
        self._listening.set()  # exited: let the waiter see it

    def terminate(self) -> None:
        """SIGTERM, once: a second one while twistd shuts down makes
        Twisted itself log a ReactorNotRunning traceback."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        self.terminate()
        try:
            return self.process.wait(TIMEOUT)
        finally:
            self._reader.join(TIMEOUT)

    @property
    def port(self) -> int:
        return self.ports[0]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[type[Server]]:
    servers: list[Server] = []

    class Started(Server):
        def __init__(self, *options: str, listeners: int = 1) -> None:
            servers.append(self)
            super().__init__(tmp_path, *options, listeners=listeners)

    try:
        yield Started
    finally:
        for server in servers:
            server.kill()


class Player:
    """A raw socket, as `nc` would use it."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.buffer = b""
        self.lines: list[str] = []
        self.say(name)  # before the greeting: allowed

    def say(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def read_until(self, text: str) -> list[str]:
        """Lines up to and including the first that contains `text`."""
        got: list[str] = []
        while True:
            while b"\r\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\r\n", 1)
                line = raw.decode("utf-8")
                got.append(line)
                self.lines.append(line)
                if text in line:
                    return got
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"closed while waiting for {text!r}; got {got}")
            self.buffer += data

    def read_to_end(self) -> list[str]:
        """Every line until the server closes the connection."""
        while True:
            data = self.sock.recv(65536)
            if not data:
                break
            self.buffer += data
        lines = self.buffer.decode("utf-8").split("\r\n")
        assert lines[-1] == "", "a partial last line"
        self.buffer = b""
        self.lines += lines[:-1]
        return lines[:-1]

    def close(self) -> None:
        self.sock.close()


def test_a_whole_game_with_twistd(start: type[Server]) -> None:
    server = start("--event-wait", "0.3")
    names = ["Arya", "Bran", "Cersei", "Davos"]
    players: list[Player] = []
    try:
        for i, name in enumerate(names, 1):
            player = Player(server.port, name.lower())
            assert player.read_until("has entered")[-1] == (
                f"*** {name} has entered the realm ({i}/5)")
            players.append(player)
        lord = Player(server.port, "LORD")
        greeting = lord.read_until("has entered")
        assert greeting[0].startswith("*** ")
        assert greeting[-1] == "*** Lord has entered the realm (5/5)"
        for player in [lord, *players]:
            assert "Welcome to the Game of Thrones" in player.read_until("Welcome")[-1]
            player.read_until("*** [New Event] ")
        # a decision, every answer, the next event
        lord.say("1")
        for player in players:
            player.read_until("Lord: 1")
            player.say("aye")
        for player in [lord, *players]:
            player.read_until("*** [New Event] ")
        # each answer exactly as said: an outcome may tell of "prayers"
        assert sorted(line for line in lord.lines if line.endswith(": aye")) == [
            f"{name}: aye" for name in names]
        # nobody answers: the next event after --event-wait
        lord.say("2")
        lord.read_until("*** [New Event] ")
        # commands
        lord.say("--who")
        assert "(5/5)" in lord.read_until("In the realm")[-1]
        lord.say("--dismis arya")
        assert "Did you mean --dismiss?" in lord.read_until("*** Error: ")[-1]
        lord.say("--dismiss nobody")
        assert lord.read_until("*** Error: ")[-1] == (
            "*** Error: There is no one in the realm named 'nobody'.")
        lord.say("--dismiss ARYA")
        lord.read_until("*** You have dismissed Arya, 4/5 left on your team.")
        assert any("dismissed" in line for line in players[0].read_to_end())
        # the Lord leaves: everyone is told, every connection closed
        lord.say("--leave")
        for player in [lord, *players[1:]]:
            assert any("The Lord has left the realm" in line
                       for line in player.read_to_end())
        # the realm is free again
        again = Player(server.port, "lord")
        again.read_until("*** Lord has entered the realm (1/5)")
        again.close()
    finally:
        for player in players:
            player.close()
    assert server.stop() in (0, -signal.SIGTERM)  # twistd re-raises the signal
    log = "".join(server.log)
    assert "Traceback" not in log
    assert "Realm westeros created" in log


def test_sigterm_says_farewell_and_exits_cleanly(start: type[Server]) -> None:
    server = start()
    player = Player(server.port, "arya")
    try:
        player.read_until("*** Arya has entered the realm (1/5)")
        server.terminate()
        assert any("shutting down" in line for line in player.read_to_end())
    finally:
        player.close()
    assert server.stop() in (0, -signal.SIGTERM)  # twistd re-raises the signal
    assert "Traceback" not in "".join(server.log)


@pytest.mark.parametrize("argv", [
    ["--size", "1"],
    ["--realm", "not a name"],
    ["--listen", "bogus:1"],
    ["--web", "bogus:1"],
    ["--no-such-option"],
])
def test_wrong_options_are_a_usage_error(tmp_path: Path, argv: list[str]) -> None:
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "realm", *argv],
                            cwd=tmp_path, capture_output=True, text=True,
                            timeout=TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Usage: twistd" in output
    assert "Traceback" not in output
    assert argv[0] in output


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_the_lords_password_with_auth(start: type[Server], tmp_path: Path,
                                      kind: str) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text("lord:s3cret\n")
    auth = "memory:lord:s3cret" if kind == "memory" else f"file:{passwords}"
    server = start("--auth", auth)
    lord = Player(server.port, "lord")
    try:
        assert "password" in lord.read_until("password")[-1]
        lord.say("wrong")
        assert lord.read_until("*** ")[-1].startswith("*** Error: ")
        lord.say("lord")
        lord.read_until("password")
        lord.say("s3cret")
        lord.read_until("*** Lord has entered the realm (1/5)")
        assert "s3cret" not in "".join(server.log)
    finally:
        lord.close()


def test_every_listener_shares_one_set_of_realms(start: type[Server]) -> None:
    server = start("--listen", "tcp:0:interface=127.0.0.1", listeners=2)
    first, second = server.ports
    assert first != second
    arya = Player(first, "arya@north")
    bran = Player(second, "bran@NORTH")
    try:
        bran.read_until("*** Bran has entered the realm (2/5)")
        arya.read_until("*** Bran has entered the realm (2/5)")
        bran.say("across listeners")
        assert arya.read_until("Bran: ")[-1] == "Bran: across listeners"
    finally:
        arya.close()
        bran.close()
