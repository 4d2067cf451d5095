"""`realm-play`, the launcher behind `make play`, driven through a pipe.

It must start a server and four bots, let the Lord play, and when the Lord
leaves stop every process it started, leaving no port bound.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from realm_procs import Proc, alive, command, running

from realm.play import Options, accepting


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


def test_a_game_then_end_of_input_stops_everything() -> None:
    with running(command("realm-play"), "--think", "0") as play:
        play.expect("Welcome to the Game of Thrones")
        event = play.expect("*** [New Event] ")
        option = re.search(r"1 (\w+) or 2 \w+\?$", event)
        assert option, event
        play.send("1")
        answers = [play.expect(lambda line: not line.startswith("***")) for _ in range(4)]
        assert all(option.group(1) in answer for answer in answers)
        play.expect("*** [New Event] ")
        play.close_stdin()
        play.expect("The Lord has left the realm")
        assert play.wait() == 0
    assert any("waiting until it accepts connections" in line for line in play.err)
    assert_all_stopped(play)


def test_ctrl_c_in_a_pipe_stops_everything() -> None:
    # A Ctrl-C at the terminal signals the whole foreground process group.
    with running(command("realm-play"), "--think", "0", new_session=True) as play:
        play.expect("Welcome to the Game of Thrones")
        os.killpg(play.pid, signal.SIGINT)
        play.expect("The Lord has left the realm")
        assert play.wait() == 0
    assert_all_stopped(play)


def test_stopping_the_launcher_stops_everything() -> None:
    with running(command("realm-play"), "--think", "0") as play:
        play.expect("Welcome to the Game of Thrones")
        play.popen.send_signal(signal.SIGTERM)
        play.expect("The Lord has left the realm")  # the Lord left properly
        assert play.wait() != 0
    assert_all_stopped(play)


@pytest.mark.parametrize("argv", [["--bots", "0"], ["--think", "-1"], ["--port", "70000"]])
def test_bad_options(argv: list[str]) -> None:
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError):
        Options().parseOptions(argv)
