"""`realm-play`, the launcher behind `make play`, driven through a pipe.

It must start a server and four bots, let the Lord play, keep the realm
full (a bot that leaves is replaced), and when the Lord leaves stop every
process it started, leaving no port bound and no folder behind (each test
gives it its own TMPDIR, and checks it is empty afterwards).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import pytest
from realm_procs import WAIT, Proc, alive, command, ended, running, terminal

from realm.play import Options, accepting


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """realm-play's TMPDIR (nothing may be left in it) and its data folder
    (where its chronicle lives) for one test."""
    tmp, data = tmp_path / "tmp", tmp_path / "data"
    tmp.mkdir()
    yield {"TMPDIR": str(tmp), "XDG_DATA_HOME": str(data)}
    assert list(tmp.iterdir()) == [], "realm-play left its folder behind"
    assert (data / "realm" / "realm.sqlite").exists(), "no chronicle where it said"




def started(play: Proc) -> tuple[int, int, int]:
    """(server pid, bots pid, port), as the launcher announced them on stderr."""
    text = "\n".join(play.err)
    server = re.search(r"Server started \(pid (\d+)\)", text)
    bots = re.search(r"Started 4 bots \(pid (\d+)", text)
    port = re.search(r"on 127\.0\.0\.1:(\d+)", text)
    assert server and bots and port, play.describe()
    return int(server.group(1)), int(bots.group(1)), int(port.group(1))


def assert_all_stopped(play: Proc) -> None:
    server, bots, port = started(play)
    assert not alive(server), "the server outlived the launcher"
    assert not alive(bots), "the bots outlived the launcher"
    assert not accepting(port), "the port is still bound"
    assert "Everything it started has stopped. Farewell!" in play.err[-1]


def test_a_game_then_end_of_input_stops_everything(tmpdir_env: dict[str, str]) -> None:
    with running(command("realm-play"), "--think", "0", env=tmpdir_env) as play:
        play.expect("Welcome to the Game of Thrones")
        server, _, _ = started(play)  # your own game waits while you are away:
        assert b"\0--idle-timeout\x000\0" in Path(f"/proc/{server}/cmdline").read_bytes()
        event = play.expect("*** [New Event] ")
        option = re.search(r"1 (\w+) or 2 \w+\?$", event)
        assert option, event
        play.send("1")
        answers = [play.expect(lambda line: not line.startswith("***")) for _ in range(4)]
        assert all(option.group(1).capitalize() in answer for answer in answers)
        play.expect("*** [New Event] ")
        play.close_stdin()
        play.expect("The Lord has left the realm")
        assert play.wait() == 0
    assert any("waiting until it accepts connections" in line for line in play.err)
    assert_all_stopped(play)


def test_ctrl_c_in_a_pipe_stops_everything(tmpdir_env: dict[str, str]) -> None:
    # A Ctrl-C at the terminal signals the whole foreground process group.
    with running(command("realm-play"), "--think", "0", env=tmpdir_env,
                 new_session=True) as play:
        play.expect("Welcome to the Game of Thrones")
        os.killpg(play.pid, signal.SIGINT)
        play.expect("The Lord has left the realm")
        assert play.wait() == 0
    assert_all_stopped(play)


def test_stopping_the_launcher_stops_everything(tmpdir_env: dict[str, str]) -> None:
    with running(command("realm-play"), "--think", "0", env=tmpdir_env) as play:
        play.expect("Welcome to the Game of Thrones")
        play.popen.send_signal(signal.SIGTERM)
        play.expect("The Lord has left the realm")  # the Lord left properly
        assert play.wait() != 0
    assert_all_stopped(play)


def test_a_closed_terminal_stops_everything(tmpdir_env: dict[str, str]) -> None:
    """A terminal window closed: SIGHUP, and writing to it fails (EIO).
    Telling what it does must not stop the launcher from doing it."""
    with terminal(command("realm-play"), "--think", "0", env=tmpdir_env) as term:
        term.until(b"Welcome to the Game of Thrones")
        shown = bytes(term.raw).decode("utf-8", "replace")
        server = int(re.search(r"Server started \(pid (\d+)\)", shown).group(1))  # type: ignore[union-attr]
        bots = int(re.search(r"Started 4 bots \(pid (\d+)", shown).group(1))  # type: ignore[union-attr]
        term.hang_up()
        term.popen.wait(WAIT)
    assert not alive(server), "the server outlived the launcher"
    assert not alive(bots), "the bots outlived the launcher"


def test_the_launchers_lines_break_between_words_on_a_terminal(
        tmpdir_env: dict[str, str]) -> None:
    with terminal(command("realm-play"), "--think", "0", env=tmpdir_env, columns=60) as term:
        term.until(b"Welcome to the Game of Thrones")
        rows = term.rows()
        term.write(b"\x04")  # Ctrl-D: the game ends, and realm-play tidies up
        assert term.wait() == 0
    own = rows[:next(n for n, row in enumerate(rows) if row.startswith("*** "))]
    lord = own[next(n for n, row in enumerate(own) if "You are the Lord" in row):]
    assert len(lord) > 1 and all(len(row) < 60 for row in lord), own  # no path in it
    told = " ".join(row.strip() for row in lord)
    assert told == ("realm-play: You are the Lord. Type a line and press Enter; --help lists "
                    "the commands; Ctrl-D, Ctrl-C or --leave ends the game."), own


def test_a_killed_lord_leaves_the_terminal_as_it_was(tmpdir_env: dict[str, str]) -> None:
    """The Lord's client sets the terminal raw; killed, it cannot set it
    back: the launcher does, and says how the Lord ended, on lines of their
    own below the line the Lord was typing."""
    with terminal(command("realm-play"), "--think", "0", env=tmpdir_env) as term:
        term.until(b"Welcome to the Game of Thrones")
        term.write(b"half typed")
        term.until(b"half typed")
        assert termios.tcgetattr(term.side) != term.settings  # raw, for the Lord
        with open(f"/proc/{term.popen.pid}/task/{term.popen.pid}/children") as f:
            children = [int(pid) for pid in f.read().split()]
        [lord] = [pid for pid in children
                  if b"--lord" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        os.kill(lord, signal.SIGKILL)
        assert term.wait() == 128 + signal.SIGKILL
        assert termios.tcgetattr(term.side) == term.settings
        term.until(b"The Lord's client was ended by SIGKILL.")
        rows = term.rows()
    told = rows.index("realm-play: The Lord's client was ended by SIGKILL.")
    assert rows[told - 1].endswith("You: half typed"), rows
    assert all(row.startswith(("realm-play: ", "  ")) for row in rows[told:]), rows


def test_a_launcher_killed_outright_takes_its_children_with_it(tmp_path: Path) -> None:
    """kill -9 leaves realm-play no time to tidy up: the kernel tells the
    server and the bots (PR_SET_PDEATHSIG), and they end by themselves."""
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp"), "XDG_DATA_HOME": str(tmp_path)}
    with running(command("realm-play"), "--think", "0", env=env, new_session=True) as play:
        play.expect("Welcome to the Game of Thrones")
        server, bots, port = started(play)
        play.popen.kill()
        play.wait()
        assert ended(server), "the server outlived a killed launcher"
        assert ended(bots), "the bots outlived a killed launcher"
        assert not accepting(port)


def test_ctrl_c_while_starting_stops_everything(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp"), "XDG_DATA_HOME": str(tmp_path)}
    with terminal(command("realm-play"), "--think", "0", env=env) as term:
        term.until(b"waiting until it accepts connections")
        server = int(re.search(rb"Server started \(pid (\d+)\)", term.raw).group(1))  # type: ignore[union-attr]
        os.killpg(term.popen.pid, signal.SIGINT)  # Ctrl-C: the foreground group
        term.until(b"Everything it started has stopped. Farewell!")
        assert term.wait() == 1
    assert not alive(server), "the server outlived the launcher"
    assert b"Asked to stop." in term.raw and b"bots (pid" not in term.raw
    assert list((tmp_path / "tmp").iterdir()) == []


@contextmanager
def held_port() -> Iterator[int]:
    """A loopback port another program listens on, while the block runs."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_port_another_server_holds_is_refused(tmp_path: Path) -> None:
    with held_port() as port:  # listening: realm-play would have joined it
        (tmp_path / "tmp").mkdir()
        with running(command("realm-play"), "--port", str(port), env={
                "TMPDIR": str(tmp_path / "tmp"), "XDG_DATA_HOME": str(tmp_path)}) as play:
            assert play.wait(30) == 1
    assert any(f"Port {port} is in use already" in line for line in play.err), play.err
    assert not any("Server started" in line for line in play.err)
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("where", ["data", "chronicle"])
def test_a_chronicle_that_cannot_be_had_is_said_in_one_line(tmp_path: Path, where: str) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("")
    env = {"TMPDIR": str(tmp_path), "XDG_DATA_HOME": str(afile)}
    argv = ["--chronicle", f"sqlite:{afile}/realm.sqlite"] if where == "chronicle" else []
    with running(command("realm-play"), *argv, env=env) as play:
        assert play.wait(30) == 1
    told = "\n".join(play.err)
    assert "Traceback" not in told
    if where == "data":
        assert f"Cannot make the folder for your reigns, {afile}/realm: Not a directory" in told
    else:
        assert f"The server did not start: realm: cannot open the chronicle sqlite:{afile}" \
            in told, told


def test_a_dismissed_bot_is_replaced(tmpdir_env: dict[str, str]) -> None:
    with running(command("realm-play"), "--think", "0", env=tmpdir_env) as play:
        play.expect("Welcome to the Game of Thrones")
        play.send("--who")
        names = play.expect("*** In the realm ").rpartition(": ")[2].split(", ")
        victim = next(name for name in names if name != "Lord")
        play.send(f"--dismiss {victim}")
        play.expect(f"You have dismissed {victim}, 4/5 left on your team.")
        play.expect_re(r"\*\*\* \S+ has entered the realm \(5/5\)")  # a new bot
        play.send("--who")
        who = play.expect("*** In the realm ")
        assert "(5/5)" in who and victim not in who
        play.close_stdin()
        assert play.wait() == 0
    assert_all_stopped(play)
    assert any("a bot that leaves is replaced" in line for line in play.err)


def test_a_server_that_cannot_start_keeps_its_logs_and_says_where(tmp_path: Path) -> None:
    with socket.socket() as taken:  # bound, not listening: the server cannot have it
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with running(command("realm-play"), "--port", str(port),
                     env={"TMPDIR": str(tmp_path),
                          "XDG_DATA_HOME": str(tmp_path / "data")}) as play:
            assert play.wait(30) == 1
    kept = re.search(r"Logs are kept in (\S+)\.", "\n".join(play.err))
    assert kept, play.describe()
    assert play.err[-1].endswith("Farewell!") and "Everything" not in play.err[-1]  # nothing runs
    logs = Path(kept.group(1))
    assert logs.parent == tmp_path and (logs / "server.log").exists()


@pytest.mark.parametrize(("argv", "told"), [
    (["--bots", "0"], "--bots must be at least 1, not 0"),
    (["--think", "-1"], "--think must be a number of seconds, not -1"),
    (["--think", "nan"], "--think must be a number of seconds, not nan"),
    (["--chronicle", "bogus://x"], "--chronicle"),
    (["--port", "70000"], "--port must be a port number")])
def test_bad_options(argv: list[str], told: str) -> None:
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError, match=told):
        Options().parseOptions(argv)


def test_help_and_version() -> None:
    with running(command("realm-play"), "--help") as c:
        assert c.wait() == 0
    port = " ".join(line.strip() for line in c.out if "--port" in line or "free one" in line)
    assert "(default: a free one)" in port and "[default: 0]" not in port
    with running(command("realm-play"), "--version") as c:
        assert c.wait() == 0
    assert c.out == [f"realm-play (realm) {version('realm')}"]


def test_no_chronicle_is_said_so(tmp_path: Path) -> None:
    with held_port() as port:  # realm-play stops right after saying it
        with running(command("realm-play"), "--chronicle", "none", "--port", str(port),
                     env={"TMPDIR": str(tmp_path),
                          "XDG_DATA_HOME": str(tmp_path / "data")}) as play:
            assert play.wait(30) == 1
    assert "realm-play: Your reigns are not kept (--chronicle none)." in play.err, play.err
