"""The Lord at a real terminal: the installed `realm-client --lord` in a
pseudo-terminal of 80 x 24, against a real server (or a fake one), fed
keystrokes; the tests read what the screen SHOWS (`realm_procs.Terminal`).
"""

from __future__ import annotations

import termios
from collections.abc import Iterator

import pytest
from realm_procs import Peer, command, fake_server, realm_server, running, terminal

from realm.looks import wrap

WIDTH = 80


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with realm_server("--event-wait", "2") as (_, endpoint):
        yield endpoint


def lord(endpoint: str, realm: str | None, *options: str) -> tuple[str, ...]:
    where = ("--realm", realm) if realm else ()
    return (command("realm-client"), "--lord", "--connect", endpoint, *where, *options)


def wrapped(text: str) -> list[str]:
    """`text` as the terminal shows it, row by row."""
    return [text[i:i + WIDTH].rstrip() for i in range(0, len(text), WIDTH)]


def member(endpoint: str, name: str) -> Peer:
    """A raw member of the realm `name` joins, as `nc` would."""
    peer = Peer.connect(endpoint)
    peer.send(name.encode() + b"\n")
    peer.expect("has entered the realm")
    return peer


@pytest.mark.parametrize("key", [b"\x04", b"\x03"])  # Ctrl-D, Ctrl-C
def test_the_lord_at_a_terminal(server: str, key: bytes) -> None:
    realm = f"tty{key[0]}"
    bots = (command("realm-client"), "--bot", "--connect", server, "--realm", realm,
            "--think", "0", "--count", "4")
    with terminal(*lord(server, realm)) as me, running(*bots):
        me.until(b"You: ")
        me.until(b"\x1b[1;33m*** [New Event] ")  # events in yellow
        me.write(b"we sh")
        me.write(b"all eat\r")
        me.until(b"\x1b[1;32mYou: we shall eat")  # the Lord's in green
        me.until(b": Eat")  # a bot answers, above the prompt
        assert not any("What is your name?" in row for row in me.rows())
        me.write(key)
        me.until(b"The Lord has left the realm")
        assert me.wait() == 0
        assert termios.tcgetattr(me.side) == me.settings  # the terminal is as it was
        assert b"\x1bc" not in me.raw  # and the screen was not wiped


def test_a_long_typed_line_leaves_no_stale_copy_when_lines_arrive(server: str) -> None:
    with terminal(*lord(server, "wrap")) as me:
        me.until(b"You: ")
        arya = member(server, "Arya@wrap")
        me.until(lambda rows: "*** Arya has entered the realm (2/5)" in rows)
        typed = " ".join(f"w{i:02d}" for i in range(30))  # 119 characters: two rows
        me.write(typed.encode() + b"\x1b[D" * 50)  # and the cursor back into row one
        me.until(lambda rows: rows[-2:] == wrapped("You: " + typed))
        for i in range(3):
            arya.send(f"hear me {i}\n".encode())
        input_rows = wrapped("You: " + typed)
        me.until(lambda rows: rows[-5:] == ["Arya: hear me 0", "Arya: hear me 1",
                                            "Arya: hear me 2", *input_rows])
        rows = me.rows()
        assert not any("w0" in row for row in rows[:-2]), rows  # no stale copy above
        screen = [row.rstrip() for row in bytes(me.buffer).decode().split("\n")]
        first = max(i for i, row in enumerate(screen) if row == input_rows[0])
        assert (me.buffer.x, me.buffer.y) == (len("You: ") + len(typed) - 50, first)
        me.write(b"X\r")
        said = typed[:-50] + "X" + typed[-50:]
        assert arya.expect("Lord: ") == f"Lord: {said}"
        sent = [row.rstrip() for row in wrap("You: " + said, 80)]  # broken between words
        me.until(lambda rows: rows[-3:] == [*sent, "You:"])
        assert not any("w0" in row for row in me.rows()[:-3])
        me.write(b"garbage " * 12 + b"\x15")  # Ctrl-U clears the line
        me.until(lambda rows: rows[-1] == "You:")
        me.write(b"we ride\r")
        assert arya.expect("Lord: ") == "Lord: we ride"
        me.write(b"\x04")
        assert me.wait() == 0
        arya.close()


def test_the_lords_password_is_asked_for_at_a_terminal() -> None:
    with realm_server("--auth", "memory:lord:s3cret") as (_, endpoint), \
            terminal(*lord(endpoint, None)) as me:
        me.until(b"The Lord's password (not shown): ")
        me.write(b"nope\r")
        me.until(b"Wrong password")
        me.until(lambda rows: rows[-1] == "The Lord's password again (not shown):")
        me.write(b"s3cret\r")
        me.until(lambda rows: "*** Lord has entered the realm (1/5)" in rows)
        assert b"s3cret" not in me.raw and b"nope" not in me.raw  # never echoed
        assert not any("send the Lord's password" in row for row in me.rows())
        me.write(b"\x04")
        assert me.wait() == 0


def test_a_terminal_shows_a_servers_escape_sequences_without_obeying_them() -> None:
    with fake_server() as fake, terminal(*lord(fake.endpoint, None)) as me:
        peer = fake.accept()
        assert peer.line() == "Lord"
        peer.send(b"*** \x1b]0;pwned\x07Hail!\r\n*** Lord has entered the realm (1/5)\r\n"
                  b"Arya: \x1b]52;c;aGk=\x07 \x1b[2J\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\x07\r\n")
        me.until(lambda rows: any(row.startswith("Arya: ") for row in rows))
        assert "Arya: ^[]52;c;aGk=^G ^[[2J^[]8;;http://x^[\\link^[]8;;^[\\^G" in me.rows()
        assert "*** ^[]0;pwnedHail!" not in me.rows()  # the title: shown, escaped
        assert "*** ^[]0;pwned^GHail!" in me.rows()
        for sequence in (b"\x1b]", b"\x07", b"\x1b[2J", b"\x1b\\"):
            assert sequence not in me.raw
        me.write(b"\x04")
        assert peer.line() == "--leave"
        peer.close()  # after --leave: the Lord has left
        assert me.wait() == 0


def test_a_resized_terminal_draws_the_holdings_again_at_its_width() -> None:
    with fake_server() as fake, \
            terminal(*lord(fake.endpoint, None), env={"XTERM_VERSION": "XTerm(390)"}) as me:
        peer = fake.accept()
        assert peer.line() == "Lord"
        peer.send("*** Lord has entered the realm (1/5)\r\n*** [Realm] The wall holds. "
                  "Gold 45 (-5) \u00b7 Food 50 \u00b7 Men 62 (+12) \u00b7 Favour 55\r\n".encode())
        me.until(lambda rows: rows[-2:] == [
            "The realm: Gold 45 (-5) \u00b7 Food 50 \u00b7 Men 62 (+12) \u00b7 Favour 55", "You:"])
        me.write(b"we ride")
        me.until(lambda rows: rows[-1] == "You: we ride")
        me.resize(40)  # too narrow for the row as it was: it is drawn again, shorter
        me.until(lambda rows: rows[-2:] == [
            "Gold 45 \u00b7 Food 50 \u00b7 Men 62 \u00b7 Favour 55", "You: we ride"])
        assert sum("Gold" in row for row in me.rows()) == 2  # the report's and the status row
        me.write(b"\x15\x04")
        assert peer.line() == "--leave"
        peer.close()
        assert me.wait() == 0
