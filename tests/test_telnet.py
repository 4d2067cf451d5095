"""Telnet clients: PuTTY's own negotiation bytes in front of a name, the
commands cut across packets, and what the server says back (in memory,
through the real `StreamLink`)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task

from realm.server import RealmServer, Settings
from realm.telnet import DO, DONT, IAC, SB, SE, WILL, WONT, TelnetFilter
from realm.testing import MemoryConn, MemoryNet

#: What PuTTY (telnet mode, its default "active" negotiation) sends the
#: moment it connects: WILL NAWS, WILL TSPEED, WILL TTYPE, WILL NEW-ENVIRON,
#: DO ECHO, WILL SGA, DO SGA (PuTTY's telnet.c, the options REQUESTED at
#: start); then the line typed, ending CR LF (its "Telnet New Line").
PUTTY_HELLO = bytes([IAC, WILL, 31, IAC, WILL, 32, IAC, WILL, 24, IAC, WILL, 39,
                     IAC, DO, 1, IAC, WILL, 3, IAC, DO, 3])
#: PuTTY's reply to a server's DO NAWS: its window, 80 x 24.
NAWS = bytes([IAC, SB, 31, 0, 80, 0, 24, IAC, SE])


def heard(conn: MemoryConn) -> list[str]:
    """The lines `conn` got, its telnet answers (3 bytes each) taken out."""
    realm_net = conn.net
    realm_net.flush()
    data = re.sub(rb"\xff[\xfb-\xfe].", b"", conn.transport.value(), flags=re.DOTALL)
    conn.transport.clear()
    return data.decode("utf-8").split("\r\n")[:-1]


def net() -> MemoryNet:
    return MemoryNet(RealmServer(Settings(), task.Clock(), rng=random.Random(1)))


def test_putty_joins_and_is_answered_in_telnet() -> None:
    realm = net()
    arya = realm.join("arya")
    putty = realm.connect()
    putty.take()  # the greeting
    putty.send(PUTTY_HELLO)
    answers = putty.transport.value()
    putty.transport.clear()
    # Every option refused, once each: no telnet text in the game's lines.
    assert answers == bytes([IAC, DONT, 31, IAC, DONT, 32, IAC, DONT, 24, IAC, DONT, 39,
                             IAC, WONT, 1, IAC, DONT, 3, IAC, WONT, 3])
    putty.send(b"bran\r\n" + NAWS + b"hello from putty\r\n")
    lines = putty.take()
    assert "*** Bran has entered the realm (2/5)" in lines
    assert not [line for line in lines if line.startswith("*** Error")]
    assert "Bran: hello from putty" in arya.take()
    putty.send(PUTTY_HELLO)  # asked again: answered only once
    assert putty.transport.value() == b""


@pytest.mark.parametrize("cut", range(1, len(PUTTY_HELLO) + 8))
def test_commands_cut_anywhere_across_packets(cut: int) -> None:
    realm = net()
    arya = realm.join("arya")
    putty = realm.connect()
    stream = PUTTY_HELLO + b"bran\r\n" + NAWS + b"hi\r\n"
    putty.send(stream[:cut])
    putty.send(stream[cut:])
    assert "*** Bran has entered the realm (2/5)" in heard(putty)
    assert "Bran: hi" in arya.take()


def test_a_client_that_speaks_no_telnet_hears_none() -> None:
    realm = net()
    conn = realm.connect()
    conn.say("arya", "--who")
    assert b"\xff" not in conn.transport.value()


def test_iac_iac_is_a_byte_and_cr_nul_a_cr() -> None:
    telnet = TelnetFilter()
    text, answers = telnet.feed(bytes([IAC, IAC]) + b"x")
    assert (text, answers) == (b"\xffx", b"")  # then refused as not UTF-8
    assert telnet.feed(b"arya\r\x00") == (b"arya\r", b"")


def test_a_stray_255_stays_in_its_line_and_ends_nothing() -> None:
    """255 before a byte that is no telnet command is text (not UTF-8):
    that line is refused, and the line end after it still ends it."""
    assert TelnetFilter().feed(b"abc\xff\ndef\n") == (b"abc\xff\ndef\n", b"")
    realm = net()
    arya, bran = realm.connect(), realm.connect()
    arya.say("arya")
    bran.say("bran")
    heard(arya)
    heard(bran)
    bran.transport.clear()
    bran.send(b"abc\xff\ndef\n\xffes\n")
    assert heard(arya) == ["Bran: def"]
    assert [line[:26] for line in heard(bran)] == ["*** Error: That line is no"] * 2


@given(st.lists(st.one_of(
    st.binary(max_size=20).filter(lambda b: b"\xff" not in b),
    st.sampled_from([PUTTY_HELLO, NAWS, bytes([IAC, 241]), bytes([IAC, SB, 24, 0, IAC, SE])]),
), max_size=12), st.lists(st.integers(0, 300), max_size=6))
def test_the_text_is_what_is_left_without_the_commands(parts: list[bytes],
                                                       cuts: list[int]) -> None:
    stream = b"".join(parts)
    expected = b"".join(p for p in parts if b"\xff" not in p)
    telnet = TelnetFilter()
    got, at = [], 0
    for cut in sorted({*cuts, len(stream)}):
        got.append(telnet.feed(stream[at:cut])[0])
        at = cut
    assert b"".join(got).replace(b"\r\x00", b"\r") == expected.replace(b"\r\x00", b"\r")
