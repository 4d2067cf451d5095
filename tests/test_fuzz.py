"""Property tests: whatever clients send, the server holds together.

Random bytes in random chunks, and random scripts of join lines, commands,
chat, disconnections and the passing of time, across several connections
to one server.  After every step: no exception escaped, nothing was
logged as an error, every line sent is well formed, and the realms are
consistent (counts, at most one Lord, names unique case-insensitively,
no empty realm kept).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from fakes import Transport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from realm.protocol import Outbox, StreamLink
from realm.server import LocalSeat, RealmServer, Settings
from realm.session import Session
from realm.tap import Options

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SECRET = "winter"
# What a server line may look like: a notice, or chat stamped with a name.
LINE = re.compile(rb"(\*\*\* [^\r\n]*|[A-Z][a-z0-9_-]{0,19}: [^\r\n]*)\r\n")


class Errors:
    """Error events logged while a property runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical) \
                or event.get("log_failure") is not None:
            self.seen.append(formatEvent(event))


@pytest.fixture
def logged_errors() -> Iterator[Errors]:
    observer = Errors()
    globalLogPublisher.addObserver(observer)
    yield observer
    globalLogPublisher.removeObserver(observer)


def connect(server: RealmServer, host: str = "10.0.0.1") -> tuple[StreamLink, Transport]:
    proto = StreamLink(server, Outbox(server.clock))
    transport = Transport(host)
    transport.protocol = proto
    proto.makeConnection(transport)
    return proto, transport


def check_output(transport: Transport) -> None:
    data = transport.value()
    transport.clear()
    data.decode("utf-8")
    assert LINE.sub(b"", data) == b"", data


def check_state(server: RealmServer, links: list[tuple[StreamLink, Transport]]) -> None:
    for key, realm in server.realms.items():
        assert realm.members, f"empty realm {key} kept"
        assert realm.name == key == key.lower()
        assert len(realm.members) <= realm.size
        names = [m.name for m in realm.members.values()]
        assert len({n.lower() for n in names}) == len(names)
        assert all(lower == m.name.lower() for lower, m in realm.members.items())
        lords = [m for m in realm.members.values() if m.name == "Lord"]
        assert len(lords) <= 1
        assert realm.lord is (lords[0] if lords else None)
        if realm.waiting is not None:
            assert realm.waiting <= set(realm.members.values())
        for member in realm.members.values():
            assert isinstance(member, Session)
            assert isinstance(member.seat, LocalSeat) and member.seat.realm is realm
            assert member in server.sessions
    for proto, transport in links:
        assert (proto.session in server.sessions) == (not transport.closed)
        if transport.closed:
            assert all(proto.session not in r.members.values() for r in server.realms.values())


# -- random bytes --------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_random_bytes_in_random_chunks(data: bytes, cuts: list[int],
                                       logged_errors: Errors) -> None:
    server = RealmServer(Settings(max_rate=0), task.Clock())
    proto, transport = connect(server)
    joined, _ = connect(server)
    joined.dataReceived(b"Arya\n")
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    for start, end in pairwise(bounds):
        proto.dataReceived(data[start:end])
        check_output(transport)
        check_state(server, [(proto, transport)])
        if transport.closed:
            break
    assert not logged_errors.seen


@FUZZ
@given(lines=st.lists(st.text(max_size=40), max_size=30), crlf=st.booleans())
def test_random_text_lines(lines: list[str], crlf: bool, logged_errors: Errors) -> None:
    server = RealmServer(Settings(max_rate=0, size=3), task.Clock())
    proto, transport = connect(server)
    end = "\r\n" if crlf else "\n"
    proto.dataReceived("".join(line + end for line in lines).encode("utf-8", "replace"))
    check_output(transport)
    check_state(server, [(proto, transport)])
    assert not logged_errors.seen


# -- random scripts over several connections ----------------------------------

GOOD_NAMES = st.sampled_from(["Lord", "lord", "LORD", "Arya", "arya", "Bran", "Jon", "Sansa"])
BAD_NAMES = st.sampled_from(["bad name", "1up", "x" * 21, "", "--who", "Lord:"])
REALMS = st.sampled_from(["", "", "", "", "@north", "@NORTH", "@ north ", "@", "@1x"])
JOIN = st.builds(lambda n, r: n + r, st.one_of(GOOD_NAMES, GOOD_NAMES, BAD_NAMES), REALMS)
COMMANDS = st.sampled_from(["--who", "--help", "--leave", "--dismiss", "--dismiss arya",
                            "--dismiss Lord", "--dismiss nobody", "--DISMISS BRAN",
                            "--whom", "--", "-- who", "--leave now"])
CHAT = st.one_of(st.sampled_from(["1", "2", "hello", "", "   ", "Lord: obey"]),
                 st.text(max_size=30))
SLOT = st.integers(0, 3)
STEP = st.one_of(
    st.tuples(st.just("join"), SLOT, JOIN, st.booleans()),
    st.tuples(st.just("join"), SLOT, JOIN, st.booleans()),
    st.tuples(st.just("line"), SLOT, CHAT, st.none()),
    st.tuples(st.just("line"), SLOT, CHAT, st.none()),
    st.tuples(st.just("line"), SLOT, COMMANDS, st.none()),
    st.tuples(st.just("bytes"), SLOT, st.binary(max_size=60), st.none()),
    st.tuples(st.just("close"), SLOT, st.none(), st.none()),
    st.tuples(st.just("tick"), SLOT, st.sampled_from([0.5, 1, 5, 40]), st.none()),
)


@FUZZ
@given(script=st.lists(STEP, min_size=5, max_size=80), auth=st.booleans(),
       seed=st.integers(0, 9), playing=st.booleans())
def test_random_scripts_keep_the_realms_consistent(
        script: list[tuple[str, int, Any, Any]], auth: bool, seed: int, playing: bool,
        logged_errors: Errors) -> None:
    checker = None
    if auth:
        config = Options()
        config.parseOptions(["--auth", f"memory:lord:{SECRET}"])
        checker = config["credCheckers"][0]
    clock = task.Clock()
    server = RealmServer(
        Settings(size=3, event_wait=5, max_rate=3, max_per_address=4, max_realms=2,
                 login_timeout=30, idle_timeout=60),
        clock, checker=checker, rng=random.Random(seed))
    slots: list[tuple[StreamLink, Transport] | None] = [None] * 4
    everyone: list[tuple[StreamLink, Transport]] = []
    if playing:  # a game in progress to start from, else an empty server
        opening = [("join", 0, "Lord", True), ("join", 1, "Arya", True),
                   ("join", 2, "Bran", True), ("line", 0, "1", None)]
        script = opening + script
    for kind, slot, value, right in script:
        link = slots[slot]
        if link is None or link[1].closed:
            link = slots[slot] = connect(server, f"10.0.0.{slot % 2}")
            everyone.append(link)
        proto, transport = link
        if kind == "join":  # with a password, right or wrong, if it is asked
            password = SECRET if right else "summer"
            proto.dataReceived(f"{value}\n".encode())
            if transport.value().endswith(b"password.\r\n"):
                proto.dataReceived(f"{password}\n".encode())
        elif kind == "line":
            proto.dataReceived(value.encode("utf-8", "replace") + b"\n")
        elif kind == "bytes":
            proto.dataReceived(value)
        elif kind == "close":
            transport.loseConnection()
        else:
            clock.advance(value)
        for _, each in everyone:
            check_output(each)
        check_state(server, everyone)
    for _, transport in everyone:
        transport.loseConnection()
    assert not server.realms and not server.sessions
    assert not logged_errors.seen
