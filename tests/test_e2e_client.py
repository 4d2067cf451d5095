"""End to end: the installed `twistd -n realm` and `realm-client`, as processes.

One server serves the module; each test plays in its own realm.  The Lord
is driven through a pipe (plain lines, no prompt, no colour).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from realm_procs import Proc, command, realm_server, running

from realm import lore
from realm.bot import NamePool


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with realm_server("--event-wait", "2") as (_, endpoint):
        yield endpoint


def bots(endpoint: str, realm: str, *options: str) -> tuple[str, ...]:
    """`realm-client --bot`, answering at once, for `running`."""
    return (command("realm-client"), "--bot", "--connect", endpoint, "--realm", realm,
            "--think", "0", *options)


def lord(endpoint: str, realm: str, *options: str) -> tuple[str, ...]:
    """`realm-client --lord`, for `running`."""
    return (command("realm-client"), "--lord", "--connect", endpoint, "--realm", realm,
            *options)


def members(lord: Proc) -> list[str]:
    """The members but the Lord, as `--who` tells the Lord."""
    lord.send("--who")
    names = lord.expect("*** In the realm ").rpartition(": ")[2].split(", ")
    return [name for name in names if name != "Lord"]


def test_a_full_game(server: str) -> None:
    with running(*bots(server, "game", "--count", "4")) as band:
        band.expect("joined the realm")
        with running(*lord(server, "game")) as me:
            me.expect("Welcome to the Game of Thrones")
            event = me.expect("*** [New Event] ")
            assert re.search(r"1 \w+ or 2 \w+\?$", event)
            option = re.search(r"1 (\w+) or", event).group(1)  # type: ignore[union-attr]
            names = members(me)
            assert len(names) == 4
            me.send("1")
            answers = [me.expect(lambda line: not line.startswith("***")) for _ in range(4)]
            delight = {t.format(word=option) for t in lore.DELIGHT}
            assert {a.partition(": ")[2] for a in answers} <= delight
            assert {a.partition(": ")[0] for a in answers} == set(names)
            me.expect("*** [New Event] ")
            me.send("we shall eat")
            for _ in range(4):
                me.expect(lambda line: line.split(": ", 1)[-1].startswith("eat"))
            me.close_stdin()
            me.expect("The Lord has left the realm")
            assert me.wait() == 0
            assert me.err == []
        assert band.wait() == 0, band.describe()
        assert sum("is gone: the Lord has left" in line for line in band.out) == 4


def test_a_dismissal(server: str) -> None:
    with running(*bots(server, "court", "--count", "4")) as band, \
            running(*lord(server, "court")) as me:
        me.expect("Welcome to the Game of Thrones")
        victim = members(me)[0]
        me.send(f"--dismiss {victim.lower()}")
        me.expect(f"You have dismissed {victim}, 4/5 left on your team.")
        band.expect(f"[{victim}] is gone: dismissed")
        assert band.popen.poll() is None  # the other three play on
        me.send("--who")
        who = me.expect("In the realm")
        assert victim not in who
        me.send("--leave")
        assert me.wait() == 0
        assert band.wait() == 0, band.describe()


def test_a_bot_that_deserts(server: str) -> None:
    with running(*bots(server, "doubt", "--count", "3")) as loyal, \
            running(*bots(server, "doubt", "--name", "Reek", "--loyalty", "1")) as fickle, \
            running(*lord(server, "doubt")) as me:
        me.expect("Welcome to the Game of Thrones")
        me.send("let us all dance")
        # Reek's own chat line: an event may name Reek too ("A raven from Reek: ...").
        farewell = me.expect(lambda line: line.startswith("Reek: "))
        assert farewell.removeprefix("Reek: ") in lore.DESERTION
        me.expect("*** Reek has left the realm")
        assert fickle.wait() == 0, fickle.describe()
        assert "[Reek] is gone: deserted" in fickle.out
        me.send("--who")
        assert "(4/5)" in me.expect("In the realm")
        me.close_stdin()
        assert me.wait() == 0
        assert loyal.wait() == 0


def test_the_lord_leaving_ends_every_bot(server: str) -> None:
    with running(*bots(server, "exit", "--count", "2")) as band:
        band.expect("joined the realm")
        band.expect("joined the realm")
        with running(*lord(server, "exit")) as me:
            me.expect("*** Lord has entered the realm (3/5)")
            me.send("hello, anyone?")
            me.expect(lambda line: not line.startswith("***"))  # a bot answers
            me.popen.send_signal(signal.SIGINT)  # Ctrl-C in a pipe: leave, exit 0
            me.expect("The Lord has left the realm")
            assert me.wait() == 0
        assert band.wait() == 0


def test_a_taken_name_is_drawn_again(server: str) -> None:
    first = NamePool(random.Random(1)).draw()  # what `--seed 1` draws first
    assert first is not None
    with running(*lord(server, "crowd")) as me, \
            running(*bots(server, "crowd", "--name", first)) as taker:
        taker.expect(f"[{first}] joined")
        with running(*bots(server, "crowd", "--seed", "1")) as other:
            other.expect(f"[{first}] is taken; trying ")
            other.expect("joined the realm")
            me.close_stdin()
            assert other.wait() == 0
        assert me.wait() == 0


def test_the_lord_is_told_when_the_connection_is_lost() -> None:
    with realm_server() as (own, endpoint), running(*lord(endpoint, "lost")) as me:
        me.expect("Lord has entered the realm")
        own.popen.terminate()
        assert me.wait() == 1
        assert len(me.err) == 1 and "lost" in me.err[0]


@pytest.mark.parametrize("who", [["--lord"], ["--bot", "--count", "3"]])
def test_an_unreachable_server(who: list[str]) -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with running(command("realm-client"), *who, "--connect", f"tcp:127.0.0.1:{port}") as c:
        assert c.wait() == 1
    assert time.monotonic() - started < 5
    assert len(c.err) == 1 and "cannot reach the realm" in c.err[0]
    assert c.out == []


def read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 10.0) -> None:
    """Read the terminal `fd` into `seen` until `wanted` shows, or fail."""
    import select

    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never came; the screen had {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                assert wanted in seen, f"{wanted!r} never came: {bytes(seen)!r}"


@pytest.mark.parametrize("key", [b"\x04", b"\x03"])  # Ctrl-D, Ctrl-C
def test_the_lord_at_a_terminal(server: str, key: bytes) -> None:
    import pty
    import subprocess
    import termios

    main, side = pty.openpty()
    before = termios.tcgetattr(side)
    env = dict(os.environ, TERM="xterm")
    env.pop("NO_COLOR", None)
    realm = f"tty{key[0]}"
    argv = lord(server, realm)
    proc = subprocess.Popen(argv, stdin=side, stdout=side, stderr=side, env=env)
    try:
        with running(*bots(server, realm, "--count", "4")):
            screen = bytearray()
            read_until(main, b"You: ", screen)
            read_until(main, b"\x1b[1;33m*** [New Event] ", screen)  # events in yellow
            os.write(main, b"we sh")
            os.write(main, b"all eat\r")
            read_until(main, b"\x1b[1;32mYou: we shall eat", screen)  # the Lord's in green
            read_until(main, b": eat", screen)  # a bot answers, above the prompt
            os.write(main, key)
            read_until(main, b"The Lord has left the realm", screen)
            assert proc.wait(10) == 0
            assert termios.tcgetattr(side) == before  # the terminal is as it was
            assert b"\x1bc" not in screen  # and the screen was not wiped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(main)
        os.close(side)


def test_the_lords_password(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    with realm_server("--auth", "memory:lord:s3cret") as (_, endpoint):
        with running(*lord(endpoint, "a", "--password-file", str(secret))) as me:
            me.expect("*** Lord has entered the realm (1/5)")
            me.close_stdin()
            assert me.wait() == 0
        with running(*lord(endpoint, "b"), env={"REALM_PASSWORD": "s3cret"}) as me:
            me.expect("*** Lord has entered the realm (1/5)")
            me.close_stdin()
            assert me.wait() == 0
        with running(*lord(endpoint, "c"), env={"REALM_PASSWORD": "wrong"}) as me:
            me.expect("*** Error: Wrong password")
            me.close_stdin()
            assert me.wait() == 1
        with running(*lord(endpoint, "d"), env={"REALM_PASSWORD": ""}) as me:
            me.close_stdin()
            assert me.wait() == 1
            assert "REALM_PASSWORD" in me.err[-1]
