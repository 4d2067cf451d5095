"""The operator's console (`--admin`): every command, in memory against a
real server on a `task.Clock`, and `drain` through a real `twistd realm`
on a UNIX socket of mode 600."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path
from typing import Any

from realm_procs import Peer, command, running, unix_ask
from twisted.internet import task
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent

from realm import wire
from realm.admin import AdminProtocol, Drain
from realm.server import RealmServer, Settings
from realm.tap import version
from realm.testing import MemoryNet


class Console:
    """An operator's session in memory."""

    def __init__(self, server: RealmServer, reactor: object = None) -> None:
        self.transport = StringTransport()
        self.proto = AdminProtocol(server, Drain(server, reactor or task.Clock()))
        self.proto.makeConnection(self.transport)

    def ask(self, line: str) -> list[str]:
        """The answer's lines, without the closing `.`."""
        self.proto.dataReceived(line.encode() + b"\n")
        lines = self.transport.value().decode().split("\n")[:-1]
        self.transport.clear()
        assert lines[-1] == ".", lines
        return lines[:-1]


def setup() -> tuple[MemoryNet, Console]:
    server = RealmServer(Settings(), task.Clock(), rng=random.Random(1))
    return MemoryNet(server), Console(server)


def test_realms_and_who() -> None:
    net, console = setup()
    lord, others = net.game()
    net.join("sam@oldtown")
    assert console.ask("realms") == ["oldtown 1/5", "westeros 5/5"]
    who = console.ask("who WESTEROS")
    assert who[-1] == "Lord 192.0.2.1 (the Lord)"
    assert [line.split()[0] for line in who] == ["Arya", "Bran", "Cersei", "Davos", "Lord"]
    assert console.ask("who dorne")[0].startswith("error: no realm 'dorne'")
    assert console.ask("who\twesteros") == who  # a tab parts a command from its word


def test_announce_reaches_every_member() -> None:
    net, console = setup()
    lord, others = net.game()
    sam = net.join("sam@oldtown")
    sam.take()
    assert console.ask("announce The gates close at dawn.") == ["announced to 6 members"]
    for conn in [lord, *others, sam]:
        assert conn.take() == ["*** [Herald] The gates close at dawn."]
    assert console.ask("announce")[0].startswith("error:")
    for escape in ("\x1b[2J", "x\x7fy", "x\x9b2Jz"):  # ESC, DEL, and C1's CSI
        assert console.ask(f"announce {escape}")[0].startswith("error:")
    # No longer than a player's line may be: a client may take no more.
    assert console.ask("announce " + "é" * 513) == ["error: the text is over 1024 bytes"]
    assert console.ask("announce " + "é" * 512) == ["announced to 6 members"]
    assert [len(conn.take()) for conn in [lord, *others, sam]] == [1] * 6


def test_a_web_pages_request_is_closed_before_its_body_is_read() -> None:
    """A page on any site can have a browser post `end REALM` to a console
    on a TCP port: the request line closes the connection."""
    net, console = setup()
    lord, others = net.game()
    console.proto.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\n\r\nend westeros\ndrain\n")
    assert console.transport.value() == b"error: this is the operator's console, not HTTP\n.\n"
    assert console.transport.disconnecting
    assert console.proto.server.realms["westeros"].count == "5/5"
    assert not console.proto.server.draining


def test_end_a_realm() -> None:
    net, console = setup()
    lord, others = net.game()
    assert console.ask("end westeros") == ["ended westeros: 5 members told"]
    net.settle()
    for conn in [lord, *others]:
        assert wire.REALM_ENDED.notice(realm="westeros").decode().rstrip() in conn.take()
        assert conn.closed
    assert net.server.realms == {}
    assert console.ask("end westeros")[0].startswith("error: no realm")


def test_drain_refuses_new_realms_and_keeps_the_games() -> None:
    net, console = setup()
    lord, others = net.game()
    (answer,) = console.ask("drain")
    assert answer.startswith("draining: 5 members left")
    late = net.join("sam@oldtown")
    assert any(wire.refusal(line) == "draining" for line in late.take())
    lord.say("We hold.")
    assert "Lord: We hold." in others[0].take()
    assert console.ask("drain")[0].startswith("draining already")
    assert console.ask("status") == [  # the late one may still join a realm in play
        "draining: 1 realm run here, 5 members left, and 1 connection not in a realm"]


def test_a_last_command_without_its_newline_is_answered_before_closing() -> None:
    """`printf status | socat - UNIX-CONNECT:admin.sock`: the operator's end
    closes right after a line with no newline."""
    net, console = setup()
    assert IHalfCloseableProtocol.providedBy(console.proto)  # else a half-close is a close
    console.proto.dataReceived(b"sta")
    console.proto.dataReceived(b"tus")
    console.proto.readConnectionLost()
    assert console.transport.value() == b"ready: 0 realms run here, 0 members left\n.\n"
    assert console.transport.disconnecting
    finished = Console(net.server)  # a whole line, then the end: answered once
    finished.proto.dataReceived(b"realms\n")
    finished.proto.readConnectionLost()
    assert finished.transport.value() == b".\n" and finished.transport.disconnecting


def test_commands_that_take_nothing_refuse_something() -> None:
    net, console = setup()
    net.game()
    net.connect()  # at the name prompt
    assert console.ask("drain now") == ["error: drain takes nothing after it"]
    assert console.ask("status") == [
        "ready: 1 realm run here, 5 members left, and 1 connection not in a realm"]
    assert console.ask("REALMS all") == ["error: realms takes nothing after it"]
    assert not net.server.draining


def test_help_unknown_and_empty(events: list[dict[str, Any]]) -> None:
    net, console = setup()
    assert len(console.ask("help")) == 7
    assert console.ask("frobnicate")[0] == "error: unknown command 'frobnicate'; try help"
    assert console.ask("")[0].startswith("error:")
    assert console.ask("who") == ["error: who is in which realm? who REALM"]
    assert console.ask("end") == ["error: end which realm? end REALM"]
    console.proto.dataReceived(b"announce caf\xe9\n")  # Latin-1, not UTF-8
    assert console.transport.value() == b"error: that line is not UTF-8 text\n.\n"
    console.transport.clear()
    console.ask("frob\x1b[2J\x07")  # the log shows escapes written out, not obeyed
    logged = [formatEvent(e) for e in events if "Admin:" in formatEvent(e)]
    assert logged[-1].startswith("Admin: frob^[[2J^G -> error:")


def test_drain_exits_zero_once_the_last_member_leaves(tmp_path: Path) -> None:
    admin = tmp_path / "admin.sock"
    with running(command("twistd"), "-n", "--pidfile=", "realm", "--chronicle", "none",
                 "--listen", "tcp:0:interface=127.0.0.1",
                 "--admin", f"unix:{admin}", cwd=str(tmp_path)) as server:
        port = server.expect_re(r"starting on (\d+)").group(1)
        server.expect("Serving the operator's console")
        assert stat.S_IMODE(os.stat(admin).st_mode) == 0o600  # private without mode=600
        arya = Peer.connect(f"tcp:127.0.0.1:{port}")
        arya.send(b"arya\n")
        arya.expect("Arya has entered the realm")
        assert unix_ask(admin, "drain")[0].startswith("draining: 1 member left")
        newcomer = Peer.connect(f"tcp:127.0.0.1:{port}")
        newcomer.send(b"jon@north\n")
        assert "not starting new realms" in newcomer.expect("*** Error: ")
        newcomer.close()
        idle = Peer.connect(f"tcp:127.0.0.1:{port}")  # connected, not joined (yet)
        idle.expect("What is your name?")
        arya.send(b"--leave\n")
        arya.expect("Farewell, Arya.")
        (status,) = unix_ask(admin, "status")  # the contract: its last connection
        assert status.startswith("draining: 0 realms run here, 0 members left, and "), status
        assert status.endswith("not in a realm"), status
        idle.close()
        assert server.wait() == 0
    told = "\n".join(server.out)
    assert "Drained: the last connection and realm are gone" in told
    # The start said what runs, where reigns go and the socket's path as text.
    assert f"realm {version()}; reigns are not kept (--chronicle none)" in told
    assert f"Serving the operator's console on unix:{admin}:mode=600 (at {admin})" in told
    assert "Starting factory" not in told


def test_the_drain_timeout_ends_what_is_left(tmp_path: Path) -> None:
    admin = tmp_path / "admin.sock"
    with running(command("twistd"), "-n", "--pidfile=", "realm", "--chronicle", "none",
                 "--listen", "tcp:0:interface=127.0.0.1", "--drain-timeout", "0.5",
                 "--admin", f"unix:{admin}:mode=600", cwd=str(tmp_path)) as server:
        port = server.expect_re(r"starting on (\d+)").group(1)
        server.expect("Serving the operator's console")
        arya = Peer.connect(f"tcp:127.0.0.1:{port}")
        arya.send(b"arya\n")
        arya.expect("Arya has entered the realm")
        unix_ask(admin, "drain")
        arya.expect("The server is shutting down. Farewell!")
        assert server.wait() == 0
    told = "\n".join(server.out)  # one story: ended for the timeout, not "drained"
    assert "The drain timeout has passed: ending what is left, 1 member left" in told
    assert "Drained" not in told, told
