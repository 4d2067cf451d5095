"""`realm.protocol.StreamLink` (as `RealmFactory` makes it) over in-memory
transports and a `task.Clock`: the contract's lines, byte for byte, as a
client on `nc` sees them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.test import iosim

from realm import wire
from realm.protocol import Outbox, RealmFactory, StreamLink
from realm.server import RealmServer, Settings
from realm.testing import MemoryNet as Net

ServerFactory = Callable[..., RealmServer]
_SHAPE = re.compile(r"\*\*\* |[A-Z][a-z0-9_-]{0,19}: ")
OTHERS = ("Arya", "Bran", "Cersei", "Davos")


@pytest.fixture
def net(server: ServerFactory) -> Net:
    return Net(server())


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("*** Error: ")]


# -- joining -------------------------------------------------------------------
def test_greeting_asks_for_a_name(net: Net) -> None:
    conn = net.connect()
    lines = conn.take()
    assert lines and all(line.startswith("*** ") for line in lines)
    assert "name" in " ".join(lines).lower()


def test_a_join_is_announced_with_the_count(net: Net) -> None:
    arya = net.join("arya")
    assert "*** Arya has entered the realm (1/5)" in arya.take()
    bran = net.join("  BRAN  ")
    assert "*** Bran has entered the realm (2/5)" in bran.take()
    assert "*** Bran has entered the realm (2/5)" in arya.take()


@pytest.mark.parametrize("first", [b"arya\n", b"arya\r\n"])
def test_bare_newline_or_crlf(net: Net, first: bytes) -> None:
    arya = net.connect()
    bran = net.join("bran")
    arya.send(first)
    assert "*** Arya has entered the realm (2/5)" in arya.take()
    bran.take()
    arya.send(b"plain nc\nand telnet\r\n")
    assert bran.take() == ["Arya: plain nc", "Arya: and telnet"]


def test_a_line_split_across_packets(net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    for piece in (b"hel", b"lo wor", b"ld\r", b"\nnext", b"\n"):
        arya.send(piece)
    assert bran.take() == ["Arya: hello world", "Arya: next"]


@pytest.mark.parametrize(("line", "why"), [
    ("1arya", "not a valid name"),
    ("", "name"),
    ("arya@", "realm"),
    ("--help", "Error: "),
    ("--who", "Error: "),
])
def test_a_refused_join_says_why_and_the_client_may_try_again(
        net: Net, line: str, why: str) -> None:
    conn = net.connect()
    conn.take()
    conn.say(line)
    (refusal,) = conn.take()
    assert refusal.startswith("*** Error: ") and why in refusal
    conn.say("arya")
    assert "*** Arya has entered the realm (1/5)" in conn.take()


def test_a_command_before_joining_is_refused(net: Net) -> None:
    conn = net.connect()
    conn.take()
    conn.say("--leave")
    assert errors(conn.take())
    assert not conn.closed


def test_names_are_unique_in_a_realm_case_insensitively(net: Net) -> None:
    net.join("arya")
    conn = net.connect()
    conn.take()
    conn.say("ARYA")
    (refusal,) = conn.take()
    assert refusal.startswith("*** Error: ") and "taken" in refusal
    conn.say("arya@north")  # the same name in another realm is fine
    assert "*** Arya has entered the realm (1/5)" in conn.take()


def test_a_second_lord_is_refused(net: Net) -> None:
    net.join("lord")
    conn = net.connect()
    conn.take()
    conn.say("LORD")
    (refusal,) = conn.take()
    assert refusal.startswith("*** Error: ") and "Lord" in refusal
    conn.say("lord@elsewhere")
    assert "*** Lord has entered the realm (1/5)" in conn.take()


def test_a_full_realm_is_refused(net: Net) -> None:
    net.game()
    conn = net.connect()
    conn.take()
    conn.say("Edd")
    (refusal,) = conn.take()
    assert refusal.startswith("*** Error: ") and "full" in refusal
    assert not conn.closed


def test_the_last_seat_waits_for_the_lord(net: Net) -> None:
    for name in OTHERS:
        net.join(name)
    conn = net.connect()
    conn.take()
    conn.say("Edd")
    (refusal,) = conn.take()
    assert refusal.startswith("*** Error: ") and "Lord" in refusal
    conn.say("lord")
    lines = conn.take()
    assert "*** Lord has entered the realm (5/5)" in lines


# -- bad input ---------------------------------------------------------------
def test_an_over_long_line_is_refused_and_the_next_line_in_the_packet_handled(
        net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.send(b"x" * 1025 + b"\r\nafter\n")
    (refusal,) = arya.take()
    assert refusal.startswith("*** Error: ") and "1024" in refusal
    assert bran.take() == ["Arya: after"]
    assert not arya.closed


def test_1024_bytes_is_not_too_long(net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.send("é".encode() * 512 + b"\r\n" + b"y" * 1024 + b"\n")
    assert arya.take() == []
    assert bran.take() == ["Arya: " + "é" * 512, "Arya: " + "y" * 1024]


def test_an_over_long_line_over_many_packets_is_refused_once(net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.send(b"before\n" + b"z" * 700)
    for _ in range(5):
        arya.send(b"z" * 700)
    arya.send(b"z\r\nafter\n")
    assert len(errors(arya.take())) == 1
    assert bran.take() == ["Arya: before", "Arya: after"]


def test_an_over_long_name_line_is_refused_and_a_name_may_follow(net: Net) -> None:
    conn = net.connect()
    conn.take()
    conn.send(b"a" * 5000 + b"\narya\n")
    lines = conn.take()
    assert lines[0].startswith("*** Error: ")
    assert "*** Arya has entered the realm (1/5)" in lines


@pytest.mark.parametrize("request_line", [b"POST / HTTP/1.1", b"GET /x?y=1 HTTP/1.0",
                                          b"OPTIONS * HTTP/2"])
def test_a_web_pages_request_is_closed_before_its_body_is_read(net: Net,
                                                              request_line: bytes) -> None:
    """A page on any site can have a visitor's browser post to this port:
    its body's lines (`Spammer@north`, chat) must not join and speak."""
    arya = net.join("arya@north")
    arya.take()
    conn = net.connect()
    conn.take()
    conn.send(request_line + b"\r\nHost: x\r\n\r\nSpammer@north\nhello from a web page\n")
    assert conn.take() == [wire.NOT_HTTP.notice().decode().rstrip()]
    assert conn.closed and arya.take() == []
    assert net.server.stats.refused["not_http"] == 1
    later = net.connect()  # not the first line: a bad name, as the contract has it
    later.take()
    later.send(b"no name\n" + request_line + b"\nbran@north\n")
    lines = later.take()
    assert [line.startswith("*** Error: ") for line in lines[:2]] == [True, True], lines
    assert "*** Bran has entered the realm (2/5)" in lines and not later.closed


@pytest.mark.parametrize("bad", [b"\xfe\xfd", b"caf\xe9", b"\xc3", b"\xed\xa0\x80"])
def test_invalid_utf8_is_refused_and_the_connection_stays(net: Net, bad: bytes) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.send(bad + b"\nstill here\n")
    (refusal,) = arya.take()
    assert refusal.startswith("*** Error: ") and "UTF-8" in refusal
    assert bran.take() == ["Arya: still here"]


def test_invalid_utf8_as_a_name(net: Net) -> None:
    conn = net.connect()
    conn.take()
    conn.send(b"\xfearya\narya\n")
    lines = conn.take()
    assert lines[0].startswith("*** Error: ")
    assert "*** Arya has entered the realm (1/5)" in lines


@pytest.mark.parametrize("text", ["bell\x07", "\x1b[31mred", "nul\x00", "del\x7f",
                                  "c1\u0085", "csi\u009b", "cr\rin the middle",
                                  "rlo\u202eevil", "isolate\u2067x\u2069", "line\u2028sep"])
def test_control_characters_are_refused(net: Net, text: str) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.send(text.encode() + b"\nclean\n")
    (refusal,) = arya.take()
    assert refusal.startswith("*** Error: ")
    assert bran.take() == ["Arya: clean"]


def test_tabs_and_unicode_are_chat(net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.say("a\ttab", "Dracarys 🐉 — ça va", "a family \U0001f468\u200d\U0001f469\u200d\U0001f467",
             "\u05e9\u05dc\u05d5\u05dd \u200fok")  # joiners and marks are text
    assert bran.take() == ["Arya: a\ttab", "Arya: Dracarys 🐉 — ça va",
                           "Arya: a family \U0001f468\u200d\U0001f469\u200d\U0001f467",
                           "Arya: \u05e9\u05dc\u05d5\u05dd \u200fok"]


def test_blank_lines_are_ignored(net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.send(b"\n\r\n   \n\t\nreal\n")
    assert arya.take() == []
    assert bran.take() == ["Arya: real"]


def test_the_name_in_front_of_chat_is_the_senders(net: Net) -> None:
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    arya.say("Lord: dismiss Bran at once", "*** Error: fake")
    assert bran.take() == ["Arya: Lord: dismiss Bran at once", "Arya: *** Error: fake"]


def test_lines_are_never_lost_or_reordered_for_the_others(net: Net) -> None:
    lord, others = net.game()
    arya, bran = others[0], others[1]
    packet = b"".join(b"line %d\n" % i for i in range(30))
    arya.send(packet[:101])
    bran.say("between")
    arya.send(packet[101:])
    expected = [f"Arya: line {i}" for i in range(30)]
    for conn in (lord, *others[2:]):
        received = [line for line in conn.take() if line.startswith(("Arya:", "Bran:"))]
        assert [line for line in received if line.startswith("Arya:")] == expected
        assert received.count("Bran: between") == 1
    assert arya.take().count("Bran: between") == 1
    assert errors(bran.take()) == []


def test_a_refused_line_is_logged_with_realm_and_name(net: Net) -> None:
    arya = net.join("arya@north")
    seen: list[dict[str, object]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        arya.send(b"\xfe\n")
    finally:
        globalLogPublisher.removeObserver(seen.append)
    refused = [e for e in seen if e.get("log_level") == LogLevel.info
               and e.get("name") == "Arya" and e.get("realm") == "north"]
    assert refused


# -- commands ------------------------------------------------------------------
def test_help_and_who(net: Net) -> None:
    arya = net.join("arya")
    net.join("lord")
    arya.take()
    arya.say("--HELP")
    lines = arya.take()
    assert all(line.startswith("*** ") for line in lines)
    assert all(any(c in line for line in lines)
               for c in ("--help", "--who", "--dismiss", "--leave"))
    arya.say("--who")
    (who,) = arya.take()
    assert who.startswith("*** ") and "(2/5)" in who
    assert "Arya" in who and "Lord" in who


def test_did_you_mean(net: Net) -> None:
    lord, _ = net.game()
    lord.say("--dimiss Arya")
    (refusal,) = lord.take()
    assert refusal.startswith("*** Error: ")
    assert "--dimiss" in refusal and "Did you mean --dismiss?" in refusal


def test_dismiss_exact_phrases(net: Net) -> None:
    lord, (arya, bran, cersei, davos) = net.game()
    lord.say("--dismiss Nobody")
    assert lord.take() == ["*** Error: There is no one in the realm named 'Nobody'."]
    lord.say("--dismiss bRAN")
    assert "*** You have dismissed Bran, 4/5 left on your team." in lord.take()
    assert bran.closed
    assert any("dismissed" in line for line in bran.take())
    for conn in (arya, cersei, davos):
        assert any("Bran" in line and "dismissed" in line and "(4/5)" in line
                   for line in conn.take())
    arya.say("--who")
    assert "Bran" not in arya.take()[0]


@pytest.mark.parametrize("line", ["--dismiss", "--dismiss Lord"])
def test_dismiss_refusals_for_the_lord(net: Net, line: str) -> None:
    lord, others = net.game()
    lord.say(line)
    assert len(errors(lord.take())) == 1
    assert all(not c.closed and c.take() == [] for c in others)


def test_only_the_lord_dismisses(net: Net) -> None:
    lord, (arya, bran, *_) = net.game()
    arya.say("--dismiss Bran")
    assert len(errors(arya.take())) == 1
    assert not bran.closed and bran.take() == [] and lord.take() == []


def test_a_member_leaves(net: Net) -> None:
    lord, (arya, *rest) = net.game()
    arya.say("--leave", "never sent")
    lines = arya.take()
    assert lines and lines[-1].startswith("*** ")
    assert arya.closed
    for conn in (lord, *rest):
        lines = conn.take()
        assert "*** Arya has left the realm (4/5)" in lines
        assert "Arya: never sent" not in lines


def test_a_member_that_hangs_up_is_announced(net: Net) -> None:
    lord, (arya, *rest) = net.game()
    arya.hang_up()
    for conn in (lord, *rest):
        assert "(4/5)" in " ".join(conn.take())
    assert b"Arya" not in net.server.realms["westeros"].who()


def test_the_lord_leaving_ends_the_realm_and_frees_it(net: Net) -> None:
    lord, others = net.game()
    lord.say("--leave")
    for conn in (lord, *others):
        assert any("The Lord has left the realm" in line for line in conn.take())
        assert conn.closed
    assert net.server.realms == {}
    assert net.server.sessions == set()
    lord, others = net.game()  # the same realm, a new game
    assert lord.take() == [] and not lord.closed


def test_the_lord_hanging_up_ends_the_realm(net: Net) -> None:
    lord, others = net.game()
    lord.hang_up()
    for conn in others:
        assert any("The Lord has left the realm" in line for line in conn.take())
        assert conn.closed
    assert net.server.realms == {}


def test_the_lord_leaving_with_synchronous_disconnects(server: ServerFactory) -> None:
    """Transports that call connectionLost inside loseConnection."""
    srv = server()
    conns = []
    for name in [*OTHERS, "Lord"]:
        transport = StringTransportWithDisconnection()
        proto = RealmFactory(srv).buildProtocol(None)
        transport.protocol = proto
        proto.makeConnection(transport)
        proto.dataReceived(name.encode() + b"\n")
        conns.append(transport)
    conns[1].loseConnection()  # Bran hangs up
    conns[0].protocol.dataReceived(b"--leave\n")  # Arya leaves
    conns[-1].protocol.dataReceived(b"--dismiss Cersei\n--leave\n")
    for transport in conns:
        assert not transport.connected
    assert b"The Lord has left the realm" in conns[3].value()
    assert b"You have dismissed Cersei, 2/5 left on your team." in conns[-1].value()
    assert srv.realms == {} and srv.sessions == set()


# -- the whole game ------------------------------------------------------------
def event_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("*** [New Event] ")]


def test_a_whole_game(server: ServerFactory, clock: task.Clock) -> None:
    net = Net(server(event_wait=10))
    others = [net.join(name) for name in OTHERS]
    assert all(event_lines(c.take()) == [] for c in others)
    lord = net.join("Lord")
    first = lord.take()
    first = first[first.index("*** Lord has entered the realm (5/5)"):]
    assert "Welcome to the Game of Thrones" in first[1]
    (event,) = event_lines(first)
    assert first[-1] == event
    for conn in others:
        lines = conn.take()
        assert lines[-3:] == first
    # the members talk, but no event without the Lord's decision
    others[0].say("what now?")
    clock.advance(60)
    assert event_lines(lord.take()) == []
    # the Lord decides; the others answer; the next event follows at once
    lord.say("1")
    for conn in others:
        assert "Lord: 1" in conn.take()
    for conn in others[:-1]:
        conn.say("aye")
    assert event_lines(lord.take()) == []
    others[-1].say("nay")
    assert len(event_lines(lord.take())) == 1
    for conn in others:
        assert len(event_lines(conn.take())) == 1
    # a silent member: the next event after --event-wait
    lord.say("2")
    others[0].say("aye")
    clock.advance(9.9)
    assert event_lines(lord.take()) == []
    clock.advance(0.1)
    assert len(event_lines(lord.take())) == 1
    # the Lord dismisses one, then leaves; everyone is told and closed
    lord.say("--dismiss davos")
    assert "*** You have dismissed Davos, 4/5 left on your team." in lord.take()
    lord.say("--leave")
    for conn in (lord, *others):
        assert conn.closed
    for conn in (lord, *others[:-1]):
        assert any("The Lord has left the realm" in line for line in conn.take())
    assert net.server.realms == {}
    assert clock.getDelayedCalls() == []  # no timer outlives the realm


def test_many_realms_are_independent(net: Net) -> None:
    north_lord, north = net.game("north")
    south_lord, south = net.game("south")
    north[0].say("winter")
    assert south_lord.take() == [] and all(c.take() == [] for c in south)
    north_lord.say("--leave")
    assert set(net.server.realms) == {"south"}
    south_lord.say("--who")
    assert "(5/5)" in south_lord.take()[0]


# -- slow readers and iosim ------------------------------------------------------
def test_a_reader_that_stalls_is_dropped_not_buffered(server: ServerFactory) -> None:
    net = Net(server(max_queue=2000, max_rate=0))
    arya, bran, cersei = net.join("arya"), net.join("bran"), net.join("cersei")
    bran.link.pauseProducing()  # the transport's buffer is full
    for _ in range(40):
        arya.say("x" * 100)
    assert bran.closed and bran.transport.disconnected  # aborted
    assert not arya.closed and not cersei.closed
    assert cersei.take()[-1] == "Arya: " + "x" * 100


class Client(Protocol):
    """A client that sends its name at once, before any greeting."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.received = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.first)

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def pairs(srv: RealmServer, *firsts: bytes) -> Iterator[tuple[Client, iosim.IOPump]]:
    for first in firsts:
        client = Client(first)
        server_proto = StreamLink(srv, Outbox(srv.clock))
        pump = iosim.connect(server_proto, iosim.makeFakeServer(server_proto),
                             client, iosim.makeFakeClient(client))
        yield client, pump


def test_the_name_may_come_before_the_greeting(server: ServerFactory) -> None:
    srv = server(size=2)
    (arya, pump1), (lord, pump2) = pairs(srv, b"arya\n", b"lord\r\nhello\r\n")
    pump1.flush()
    pump2.flush()
    pump1.flush()
    text = arya.received.decode()
    assert text.startswith("*** ")
    assert "*** Arya has entered the realm (1/2)" in text
    assert "*** Lord has entered the realm (2/2)" in text
    assert "Welcome to the Game of Thrones" in text
    assert text.endswith("Lord: hello\r\n")


# -- the Lord's password (--auth) ----------------------------------------------
class SlowChecker:
    """A credentials checker that answers when the test says so."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self) -> None:
        self.asked: list[tuple[Deferred[bytes], object]] = []

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.asked.append((d, credentials.password))
        return d


def test_the_lord_proves_it_with_the_password(server: ServerFactory) -> None:
    checker = InMemoryUsernamePasswordDatabaseDontUse(lord=b"secret")
    net = Net(server(checker=checker))
    arya = net.join("arya")
    lord = net.connect()
    lord.take()
    lord.say("lord")
    (ask,) = lord.take()
    assert ask.startswith("*** ") and "password" in ask.lower()
    arya.take()
    lord.say("secret", "hello")
    lines = lord.take()
    assert "*** Lord has entered the realm (2/5)" in lines
    assert "Lord: hello" in arya.take()


def test_three_wrong_passwords_close_the_connection(server: ServerFactory) -> None:
    checker = InMemoryUsernamePasswordDatabaseDontUse(lord=b"secret")
    net = Net(server(checker=checker))
    conn = net.connect()
    conn.take()
    for attempt in range(3):
        conn.say("Lord", "guess")
        lines = conn.take()
        assert len(errors(lines)) == 1, lines
        assert not any("entered" in line for line in lines)
        assert conn.closed == (attempt == 2)
    assert net.server.realms == {}


def test_a_wrong_password_leaves_the_client_free_to_join_as_another(
        server: ServerFactory) -> None:
    checker = InMemoryUsernamePasswordDatabaseDontUse(lord=b"secret")
    net = Net(server(checker=checker))
    conn = net.connect()
    conn.say("Lord", "wrong", "arya")
    assert "*** Arya has entered the realm (1/5)" in conn.take()


def test_lines_sent_while_the_password_is_checked_keep_their_order(
        server: ServerFactory) -> None:
    checker = SlowChecker()
    net = Net(server(checker=checker))
    arya = net.join("arya")
    lord = net.connect()
    lord.say("lord", "secret", "first", "second", "--who")
    ((d, password),) = checker.asked
    assert password in (b"secret", "secret")
    arya.take()
    d.callback(b"lord")
    net.settle()
    assert arya.take() == ["*** Lord has entered the realm (2/5)",
                           "Lord: first", "Lord: second"]
    assert "(2/5)" in lord.take()[-1]


@pytest.mark.parametrize("then", ["bran", "bran@ghosts"])
def test_a_password_refused_after_the_client_left_seats_nothing(
        server: ServerFactory, then: str) -> None:
    """The lines a client sent behind a wrong password must die with it:
    not join a realm, or start one, as a member no connection holds."""
    checker = SlowChecker()
    net = Net(server(checker=checker))
    arya = net.join("arya")
    lord = net.connect()
    lord.say("lord", "wrong", then)
    lord.hang_up()
    drained = net.server.when_drained()
    checker.asked[-1][0].errback(UnauthorizedLogin())  # answered late: it was let go
    assert len(checker.asked) == 1  # nothing more asked for a connection gone
    net.settle()
    assert {key: list(realm.members) for key, realm in net.server.realms.items()} == {
        "westeros": ["arya"]}
    arya.say("--leave")
    net.settle()
    assert net.server.realms == {} and drained.called


def test_a_check_that_never_answers_does_not_hold_up_the_next_password(
        server: ServerFactory) -> None:
    """A checker that hangs on a password whose client then hangs up: the
    next password from that address is checked, and the Lord gets in."""
    checker = SlowChecker()
    net = Net(server(checker=checker))
    first, second = net.connect(), net.connect()  # one address
    first.say("lord", "hangs")
    second.say("lord", "secret", "--who")  # its turn waits for the first's answer
    assert len(checker.asked) == 1
    first.hang_up()
    net.settle()
    (answer, password), = checker.asked[1:]  # the second's turn came
    assert password == b"secret"
    answer.callback(b"lord")
    net.settle()
    lines = second.take()
    assert "*** Lord has entered the realm (1/5)" in lines and lines[-1].startswith("*** In the")


def test_lines_sent_while_an_answer_is_awaited_are_bounded(server: ServerFactory) -> None:
    """A password's turn may be minutes away: what a client sends meanwhile
    is held up to a bound, then refused, not kept without end."""
    checker = SlowChecker()
    net = Net(server(checker=checker, max_rate=0))
    conn = net.connect()
    conn.take()
    conn.say("lord", "secret", *[f"line {i}" for i in range(40)])
    refused = [line for line in conn.take() if line.startswith("*** Error: ")]
    assert refused == [wire.WAIT_FOR_ANSWER.notice().decode().rstrip()] * (40 - 16)
    checker.asked[0][0].callback(b"lord")
    net.settle()
    assert "*** Lord has entered the realm (1/5)" in conn.take()


# -- limits ----------------------------------------------------------------------
def test_a_silent_newcomer_is_shown_out(server: ServerFactory, clock: task.Clock) -> None:
    net = Net(server(login_timeout=60))
    conn = net.connect()
    conn.take()
    clock.advance(59)
    assert not conn.closed
    clock.advance(1)
    net.settle()
    assert errors(conn.take()) and conn.closed
    assert net.server.sessions == set()


def test_an_idle_member_is_shown_out(server: ServerFactory, clock: task.Clock) -> None:
    net = Net(server(idle_timeout=900))
    arya, bran = net.join("arya"), net.join("bran")
    clock.advance(500)
    bran.say("still here")
    clock.advance(400)
    net.settle()
    assert arya.closed and not bran.closed
    assert any("Arya" in line and "(1/5)" in line for line in bran.take())


def test_lines_beyond_the_rate_are_refused(server: ServerFactory, clock: task.Clock) -> None:
    net = Net(server(max_rate=5))
    arya, bran = net.join("arya"), net.join("bran")
    arya.take(), bran.take()
    clock.advance(10)  # a full bucket: bursts of 2 x 5
    arya.send(b"".join(b"%d\n" % i for i in range(12)))
    assert bran.take() == [f"Arya: {i}" for i in range(10)]
    assert len(errors(arya.take())) == 2
    clock.advance(1)
    arya.say("later")
    assert bran.take() == ["Arya: later"]


def test_a_rate_below_half_a_line_a_second_still_lets_a_line_through(
        server: ServerFactory, clock: task.Clock) -> None:
    """At --max-rate 0.4 the burst (2 x 0.4) is less than a line: it is one."""
    net = Net(server(max_rate=0.4))
    conn = net.connect()
    conn.take()
    clock.advance(5)
    conn.say("arya")
    assert not errors(conn.take())
    conn.say("too soon")
    assert errors(conn.take())
    clock.advance(2.5)  # 0.4 a second: one line's worth
    conn.say("--who")
    assert not errors(conn.take())


def test_connections_per_address(server: ServerFactory) -> None:
    net = Net(server(max_per_address=2))
    first, second = net.connect(), net.connect()
    third = net.connect()
    assert errors(third.take()) and third.closed
    first.hang_up()
    assert not second.closed
    assert not net.connect().closed


def test_shutdown_says_farewell_to_everyone(net: Net) -> None:
    lord, others = net.game()
    waiting = net.connect()
    done = net.server.shutdown()
    net.settle()
    for conn in (lord, *others, waiting):
        assert conn.closed and any("shutting down" in line for line in conn.take())
    assert done.called and net.server.realms == {}


def test_a_leave_is_logged_once_in_words(net: Net, events: list[dict[str, Any]]) -> None:
    lord, (arya, *_) = net.game()
    arya.say("--leave")
    assert "Realm westeros: Arya has left the realm" in map(formatEvent, events)


def test_a_stop_that_gives_up_on_a_connection_says_so(
        net: Net, clock: task.Clock, events: list[dict[str, Any]]) -> None:
    net.join("Arya")
    done = net.server.shutdown(grace=5)  # and the connection never finishes closing
    clock.advance(4.9)
    assert not done.called
    clock.advance(0.1)
    assert done.called
    assert "Stopped waiting for 1 connection to close after 5 s" in map(formatEvent, events)


# -- framing does not depend on how the bytes are cut into packets ------------
_LINE = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
    st.sampled_from(["x" * 1023, "y" * 1024, "z" * 1025, "w" * 3000, "é" * 513]),
    st.just("bad\x07"),
).filter(lambda text: not text.startswith("--")).map(lambda text: text.encode())  # not commands
_ENDING = st.sampled_from([b"\n", b"\r\n"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.one_of(_LINE, st.just(b"\xc3(")), _ENDING), max_size=12),
       st.lists(st.integers(min_value=1, max_value=1500), max_size=30))
def test_any_cut_into_packets_gives_the_same_lines(
        lines: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(text + end for text, end in lines) + b"end\n"

    def play(packets: list[bytes]) -> tuple[list[str], int]:
        net = Net(RealmServer(Settings(max_rate=0), task.Clock()))
        arya, bran = net.join("arya"), net.join("bran")
        arya.take(), bran.take()
        for packet in packets:
            arya.send(packet)
        return bran.take(), len(errors(arya.take()))

    packets, rest = [], stream
    for cut in cuts:
        packets.append(rest[:cut])
        rest = rest[cut:]
    packets.append(rest)
    whole = play([stream])
    assert play(packets) == whole
    relayed, refused = whole
    assert relayed[-1] == "Arya: end"
    assert all(len(line.encode()) <= len("Arya: ") + 1024 for line in relayed)
    expected = [text for text, _ in lines if len(text) <= 1024
                and text not in (b"\xc3(", b"bad\x07") and text.decode().strip()]
    assert relayed[:-1] == ["Arya: " + text.decode() for text in expected]
    assert refused == sum(1 for text, _ in lines if len(text) > 1024
                          or text in (b"\xc3(", b"bad\x07"))
