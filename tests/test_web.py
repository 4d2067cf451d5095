"""The web client's site: the page, the Origin check, WebSocket lines, and
a WebSocket member playing with a TCP member.  No browser: real loopback
sockets with realm.testing's wsproto client (so that a test can choose
its `Origin` and send what a browser never would), and in-memory
transports where the point is the accounting (the slow-reader bound).
The HTTP server itself (limits, deadlines, pipelining) is test_http.py's."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator
from typing import Any

import pytest
import pytest_twisted
import twisted.test
from twisted.internet import defer, endpoints, reactor, ssl
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.filepath import FilePath
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)

from realm import web, wire
from realm.http import HTTPFactory
from realm.protocol import RealmFactory
from realm.routes import Request as HTTPRequest
from realm.server import RealmServer, Settings
from realm.tap import Options, makeService
from realm.testing import LineClient, bounded, eventually
from realm.testing_web import RawClient, WebSocketClient, attach

PEM = FilePath(twisted.test.__file__).sibling("server.pem").path.replace(":", "\\:")
GREETING = r"^\*\*\* What is your name\?"


class Rig:
    """A realm server on loopback: `--listen` and `--web`, one RealmServer."""

    def __init__(self, tls: bool = False, **settings: Any) -> None:
        self.tls = tls
        self.server = RealmServer(Settings(**settings), reactor)  # type: ignore[arg-type]
        self.ports: list[Any] = []
        self.clients: list[Any] = []

    @defer.inlineCallbacks
    def start(self) -> Generator[defer.Deferred[Any], Any, Rig]:
        tcp = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            RealmFactory(self.server))
        if self.tls:
            http_endpoint = endpoints.serverFromString(
                reactor, f"ssl:0:interface=127.0.0.1:privateKey={PEM}")
        else:
            http_endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.site = web.site(self.server)
        http = yield http_endpoint.listen(self.site)
        self.ports = [tcp, http]
        self.tcp_port = tcp.getHost().port
        self.web_port = http.getHost().port
        return self

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.web_port}"

    @defer.inlineCallbacks
    def ws(self, origin: str | None = "same", host: str | None = None,
           hang_up: bool = True) -> Generator[defer.Deferred[Any], Any, WebSocketClient]:
        host = host or f"127.0.0.1:{self.web_port}"
        client = WebSocketClient(host, self.origin if origin == "same" else origin, hang_up)
        endpoint: Any = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.web_port)
        if self.tls:  # a test certificate: no verification
            endpoint = endpoints.wrapClientTLS(ssl.CertificateOptions(), endpoint)
        yield bounded(endpoints.connectProtocol(endpoint, client), "a connection")
        self.clients.append(client)
        yield client.until(lambda: client.accepted or client.status or client.gone,
                           "the handshake's answer")
        return client

    @defer.inlineCallbacks
    def tcp(self, first: str | None = None) -> Generator[defer.Deferred[Any], Any, LineClient]:
        client = LineClient(first)
        yield attach(self.tcp_port, client)
        self.clients.append(client)
        return client

    @defer.inlineCallbacks
    def pair(self) -> Generator[defer.Deferred[Any], Any,
                                tuple[WebSocketClient, LineClient]]:
        """Arya on a WebSocket and Bran on TCP, both in the realm `web`."""
        other = yield self.tcp("Bran@web")
        yield other.wait_for("Bran has entered")
        client = yield self.ws()
        client.say("Arya@web")
        yield client.line("Arya has entered")
        return client, other

    @defer.inlineCallbacks
    def stop(self) -> Generator[defer.Deferred[Any], Any, None]:
        for client in self.clients:
            if client.transport is not None:
                client.transport.loseConnection()
        for client in self.clients:
            yield eventually(lambda c=client: c.gone if isinstance(c, WebSocketClient)
                             else c.lost.called, f"{client} to go")
        yield bounded(self.server.shutdown(grace=5.0), "the server to drain")
        for port in self.ports:
            yield port.stopListening()


def rig_test(**settings: Any) -> Callable[..., Any]:
    """Run an inlineCallbacks test body with a started `Rig`, stopped after."""

    def wrap(body: Callable[[Rig], Generator[Any, Any, None]]) -> Callable[[], Any]:
        @pytest_twisted.inlineCallbacks
        def test() -> Generator[Any, Any, None]:
            rig = yield Rig(**settings).start()
            try:
                yield from body(rig)
            finally:
                yield rig.stop()
        test.__name__ = body.__name__
        test.__doc__ = body.__doc__
        return test
    return wrap


def get(rig: Rig, path: str) -> Generator[Any, Any, tuple[int, dict[str, str], bytes]]:
    """GET `path` on a fresh connection (Connection: close): status, headers, body."""
    client = RawClient(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "\r\n".encode())
    yield attach(rig.web_port, client)
    yield client.until(lambda: client.gone, f"the answer to GET {path}")
    head, _, body = client.data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status.split()[1]), headers, body


# -- the page ------------------------------------------------------------------

@rig_test()
def test_the_page_is_served_at_root(rig: Rig) -> Generator[Any, Any, None]:
    """`GET /` answers 200 with the page, its hooks, and a strict CSP."""
    status, headers, body = yield from get(rig, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    for hook in ("name", "realm", "password", "join", "input", "log", "members"):
        assert f'data-realm="{hook}"'.encode() in body
    for path, kind in (("app.js", "text/javascript"), ("style.css", "text/css"),
                       ("favicon.svg", "image/svg+xml"), ("favicon.ico", "image/svg+xml")):
        status, headers, body = yield from get(rig, f"/{path}")
        assert status == 200 and body
        assert headers["content-type"].startswith(kind)
    status, _, _ = yield from get(rig, "/nope")
    assert status == 404


@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")
@rig_test(tls=True)
def test_the_page_is_served_over_tls(rig: Rig) -> Generator[Any, Any, None]:
    """`--web ssl:...`: the same page, and the connection closes cleanly."""
    client = RawClient(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    endpoint = endpoints.wrapClientTLS(ssl.CertificateOptions(), endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", rig.web_port))
    yield bounded(endpoints.connectProtocol(endpoint, client), "a TLS connection")
    yield client.until(lambda: client.gone, "the page and the close")
    assert client.data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'data-realm="join"' in client.data
    yield eventually(lambda: not rig.server.sessions, "the count to drop")


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No URL with a scheme or `//` host in any static file, no innerHTML."""
    from importlib import resources
    static = resources.files("realm").joinpath("static")
    names = sorted(p.name for p in static.iterdir())
    assert {"index.html", "app.js", "style.css"} <= set(names)
    for name in names:
        text = static.joinpath(name).read_text()
        if name == "favicon.svg":  # its xmlns is a name, not a fetch
            text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "innerHTML" not in text and "outerHTML" not in text, name
        assert "insertAdjacentHTML" not in text and "document.write" not in text, name
        assert "style=" not in text, name  # CSP: no inline style


# -- the handshake ---------------------------------------------------------------

@rig_test()
def test_foreign_origin_is_refused_with_403(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws(origin="http://evil.example")
    assert client.status == 403
    assert not client.accepted
    client = yield rig.ws(origin=f"http://127.0.0.1:{rig.web_port + 1}")  # another port
    assert client.status == 403
    client = yield rig.ws(origin="null")
    assert client.status == 403
    assert not rig.server.realms


@rig_test()
def test_own_origin_and_no_origin_are_accepted(rig: Rig) -> Generator[Any, Any, None]:
    for origin in ("same", None):
        client = yield rig.ws(origin=origin)
        assert client.accepted
        yield client.line(GREETING)


@rig_test()
def test_a_bad_handshake_is_refused_with_its_status(rig: Rig) -> Generator[Any, Any, None]:
    """The handshake's own errors: 400 (426 for another version); the
    session is never made."""
    status, headers, body = yield from get(rig, "/ws")  # no Upgrade
    assert status == 400 and b"Connection: Upgrade" in body
    assert "nosniff" in headers["x-content-type-options"]
    client = RawClient(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                       b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 8\r\n\r\n")
    yield attach(rig.web_port, client)
    yield client.until(lambda: b"\r\n\r\n" in client.data, "the refusal")
    assert client.data.startswith(b"HTTP/1.1 426 ")
    assert b"Sec-WebSocket-Version: 13" in client.data
    old = RawClient(b"GET /ws HTTP/1.0\r\nHost: a\r\nConnection: Upgrade\r\n"  # RFC 6455 4.1
                    b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
    yield attach(rig.web_port, old)
    yield old.until(lambda: b"\r\n\r\n" in old.data, "the refusal")
    assert old.data.startswith(b"HTTP/1.1 400 ") and b"it takes HTTP/1.1" in old.data
    assert not rig.server.sessions - rig.site.channels  # no Session was made


HANDSHAKE = ((b"host", b"a:1"), (b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
             (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
             (b"sec-websocket-version", b"13"))


@pytest.mark.parametrize(("header", "value", "status", "told"), [
    (b"sec-websocket-protocol", b"chat\xff", 400, "a header cannot be read"),
    (b"sec-websocket-extensions", b"\xe9", 400, "a header cannot be read"),
    (b"host", b"xn--a", 400, "a header cannot be read"),
    (b"sec-websocket-version", b"8", 426, "version '8' is not spoken here"),
    (b"sec-websocket-version", b"13, 8", 426, "version '13, 8' is not spoken here"),
    (b"sec-websocket-key", b"short", 400, "Sec-WebSocket-Key must be 16 bytes"),
    (b"sec-websocket-key", b"c2hvcnQ=", 400, "Sec-WebSocket-Key must be 16 bytes"),
])
def test_a_handshake_wsproto_cannot_take_is_told_why(
        server: Callable[..., RealmServer], header: bytes, value: bytes, status: int,
        told: str) -> None:
    """Not a 500 and a traceback (wsproto raises UnicodeError), nor wsproto's
    'Missing header' for a version that is there."""
    headers = (*((k, v) for k, v in HANDSHAKE if k != header), (header, value))
    answer = web.WebSocketRoute(server())(
        HTTPRequest("GET", "/ws", "/ws", headers, "192.0.2.7", False))
    assert isinstance(answer, web.Response)
    assert answer.status == status and told in answer.body.decode(), answer
    fine = web.WebSocketRoute(server())(HTTPRequest("GET", "/ws", "/ws", HANDSHAKE,
                                                    "192.0.2.7", False))
    assert isinstance(fine, web.Switch)


def request(origin: str | None, host: str | None) -> HTTPRequest:
    headers = [(b"origin", origin.encode())] if origin is not None else []
    if host is not None:
        headers.append((b"host", host.encode()))
    return HTTPRequest("GET", "/ws", "/ws", tuple(headers), "192.0.2.7", False)


@pytest.mark.parametrize(("origin", "host", "same"), [
    (None, "a:1", True),
    ("http://a:1", "a:1", True),
    ("https://A:1", "a:1", True),
    ("http://a:2", "a:1", False),
    ("http://b:1", "a:1", False),
    ("null", "a:1", False),
    ("ftp://a:1", "a:1", False),
    ("http://a:1", None, False),
])
def test_same_origin(origin: str | None, host: str | None, same: bool) -> None:
    assert web.same_origin(request(origin, host)) is same


# -- messages and lines -----------------------------------------------------------

@rig_test()
def test_one_line_a_message_both_ways(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    client.say("Arya@web")
    yield client.line(r"^\*\*\* Arya has entered the realm \(1/5\)$")
    client.say("--help")
    yield client.line(r"--leave")
    helps = [m for m in client.messages if isinstance(m, str) and "--" in m]
    assert len(helps) >= 4  # one message per line of --help
    assert not [m for m in client.messages if isinstance(m, bytes)]
    assert not [m for m in client.texts() if "\r" in m or "\n" in m]


@rig_test()
def test_binary_message_is_refused_and_session_stays(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    client.say(b"Arya")
    yield client.line(r"^\*\*\* Error: Binary messages are not accepted")
    client.say("Arya@web")
    yield client.line(r"Arya has entered the realm")
    client.say(b"\x00\x01")
    yield client.until(lambda: len([m for m in client.texts()
                                    if m.startswith("*** Error: Binary")]) == 2,
                       "a second refusal")
    assert not client.gone


@rig_test()
def test_line_break_is_refused_and_session_stays(rig: Rig) -> Generator[Any, Any, None]:
    client, other = yield rig.pair()
    for text in ("one\ntwo", "one\r\ntwo", "one\r", "\n"):
        client.say(text)
    yield client.until(lambda: len([m for m in client.texts()
                                    if m.startswith("*** Error: Send one line")]) == 4,
                       "four refusals")
    client.say("after")
    yield other.wait_for("Arya: after")
    assert [line for line in other.lines if line.startswith("Arya:")] == ["Arya: after"]


@rig_test()
def test_too_long_line_is_refused_and_session_stays(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    client.say("Arya@web")
    yield client.line("Arya has entered")
    client.say("é" * 513)  # 1026 bytes
    yield client.line(r"^\*\*\* Error: Line too long")
    client.say("--who")
    yield client.line(r"In the realm 'web' \(1/5\): Arya")


@rig_test(max_rate=0)
def test_many_messages_in_one_read_all_arrive(rig: Rig) -> Generator[Any, Any, None]:
    """17 lines of 1,000 bytes sent together (17 KB in one read): each is
    its own message, all relayed."""
    client, other = yield rig.pair()
    lines = [f"{i:02d} " + "x" * 997 for i in range(17)]
    client.transport.write(b"".join(client.ws.send(Message(data=line)) for line in lines))
    yield other.wait_for(lambda line: line.startswith("Arya: 16 "))
    assert [line for line in other.lines if line.startswith("Arya:")] == [
        f"Arya: {line}" for line in lines]
    assert not client.gone


@rig_test()
def test_a_fragmented_line_is_one_line(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    client.say("Arya@web")
    yield client.line("Arya has entered")
    for part, last in (("--w", False), ("h", False), ("o", True)):
        client.transport.write(client.ws.send(Message(data=part, message_finished=last)))
    yield client.line(r"In the realm 'web' \(1/5\): Arya")


@rig_test()
def test_invalid_utf8_closes_with_1007(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    mask = os.urandom(4)
    payload = b"Ary\xff"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    client.transport.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    yield client.until(lambda: client.gone, "the close")
    assert client.close_code == 1007
    yield eventually(lambda: not rig.server.sessions, "the session to end")


@rig_test()
def test_a_long_fragmented_message_is_refused_once_and_session_stays(
        rig: Rig) -> Generator[Any, Any, None]:
    """20 KiB in 20 fragments: one refusal, as for an over-long line over
    TCP; what follows is read and dropped until the message ends."""
    client = yield rig.ws()
    client.say("Arya@web")
    yield client.line("Arya has entered")
    for i in range(20):
        client.transport.write(client.ws.send(Message(data="x" * 1024,
                                                      message_finished=i == 19)))
    client.say("--who")
    yield client.line(r"In the realm 'web' \(1/5\): Arya")
    refusals = [m for m in client.texts() if m.startswith("*** Error: ")]
    assert len(refusals) == 1 and refusals[0].startswith("*** Error: Line too long")
    assert not client.gone


@rig_test()
def test_endless_empty_fragments_are_an_over_long_message(rig: Rig) -> Generator[Any, Any, None]:
    """Each empty continuation frame counts as a byte: a message of them
    is refused as too long, not held as a list that grows for ever."""
    client = yield rig.ws()
    client.say("Arya@web")
    yield client.line("Arya has entered")
    frames = [client.ws.send(Message(data="x", message_finished=False))]
    frames += [client.ws.send(Message(data="", message_finished=False))] * 2000
    client.transport.write(b"".join(frames) + client.ws.send(Message(data="y")))
    client.say("--who")
    yield client.line(r"In the realm 'web' \(1/5\): Arya")
    refusals = [m for m in client.texts() if m.startswith("*** Error: ")]
    assert len(refusals) == 1 and refusals[0].startswith("*** Error: Line too long")


@rig_test()
def test_a_huge_message_is_refused_and_session_stays(rig: Rig) -> Generator[Any, Any, None]:
    client, other = yield rig.pair()
    client.say("x" * 100_000)
    client.say("after")
    yield other.wait_for("Arya: after")
    assert [line for line in other.lines if line.startswith("Arya:")] == ["Arya: after"]
    assert [m for m in client.texts() if m.startswith("*** Error: ")] == [
        wire.LINE_TOO_LONG.notice(limit=wire.MAX_LINE).decode().rstrip()]


@rig_test()
def test_invalid_utf8_in_a_dropped_message_still_closes_with_1007(
        rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    client.transport.write(client.ws.send(Message(data="x" * 2000, message_finished=False)))
    mask = os.urandom(4)
    payload = b"x\xff"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    client.transport.write(bytes([0x80, 0x80 | len(payload)]) + mask + masked)  # continuation
    yield client.until(lambda: client.gone, "the close")
    assert client.close_code == 1007


# -- a WebSocket member is a member like any other ---------------------------------

@rig_test()
def test_websocket_and_tcp_members_chat(rig: Rig) -> Generator[Any, Any, None]:
    browser = yield rig.ws()
    browser.say("arya@westeros")
    yield browser.line(r"^\*\*\* Arya has entered the realm \(1/5\)$")
    terminal = yield rig.tcp("Bran@WESTEROS")
    yield terminal.wait_for("Bran has entered the realm (2/5)")
    yield browser.line(r"^\*\*\* Bran has entered the realm \(2/5\)$")
    browser.say("Hail, <b>Bran</b>!")
    yield terminal.wait_for("Arya: Hail, <b>Bran</b>!")
    terminal.say("Well met, Arya.")
    yield browser.line("^Bran: Well met, Arya.$")
    browser.say("--who")
    yield browser.line(r"^\*\*\* In the realm 'westeros' \(2/5\): Arya, Bran$")
    browser.close_tab()
    yield terminal.wait_for("Arya has left the realm (1/5)")
    yield browser.until(lambda: browser.gone, "the tab's link to close")


@rig_test()
def test_leave_closes_the_websocket(rig: Rig) -> Generator[Any, Any, None]:
    browser = yield rig.ws()
    browser.say("Lord@court")
    yield browser.line("Lord has entered")
    browser.say("--leave")
    yield browser.until(lambda: browser.gone, "the close")
    assert browser.close_code == 1000
    assert any("Farewell" in m for m in browser.texts())


def closes_the_link(tls: bool) -> Callable[[], Any]:
    @rig_test(tls=tls)
    def test(rig: Rig) -> Generator[Any, Any, None]:
        """The server closes the link itself: on --leave, and when the page
        closes (a closed tab); a client that waits is not left hanging."""
        leaver = yield rig.ws(hang_up=False)
        leaver.say("Arya@winterfell")
        yield leaver.line("Arya has entered")
        tab = yield rig.ws(hang_up=False)
        tab.say("Bran@winterfell")
        yield tab.line("Bran has entered")
        leaver.say("--leave")
        yield leaver.until(lambda: leaver.gone, "the server to close after --leave")
        assert leaver.close_code == 1000
        yield tab.line(r"Arya has left the realm \(1/5\)")
        tab.close_tab()
        yield tab.until(lambda: tab.gone, "the server to close after the tab's close")
        assert tab.close_code == 1001  # our own, echoed
        yield eventually(lambda: not rig.server.sessions, "the sessions to end")
    return test


test_server_closes_the_link = closes_the_link(tls=False)
test_server_closes_the_link_over_tls = pytest.mark.filterwarnings(
    "ignore:Passing pyOpenSSL:DeprecationWarning")(closes_the_link(tls=True))


@rig_test(max_per_address=1)
def test_limits_apply_to_websockets(rig: Rig) -> Generator[Any, Any, None]:
    """The upgraded connection is counted once (as its session); another
    from the same address is refused before any handshake."""
    first = yield rig.ws()
    yield first.line(GREETING)
    assert len(rig.server.sessions) == 1
    second = yield rig.ws()
    assert second.status == 503 and not second.accepted
    yield second.until(lambda: second.gone, "the refusal to close")
    first.say("Arya")
    yield first.line("Arya has entered")


# -- what the link queues, in memory ---------------------------------------------------

class Browser:
    """A WebSocket over an in-memory transport to a site's channel."""

    def __init__(self, server: RealmServer) -> None:
        self.site: HTTPFactory = web.site(server)
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
        self.channel.makeConnection(self.transport)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[str] = []
        self.close_code: int | None = None
        self.feed(self.ws.send(Request(host="a", target="/ws")))
        assert self.receive() and isinstance(self.events[0], AcceptConnection)
        [self.session] = server.sessions
        assert self.session.address == "192.0.2.7"

    def feed(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def say(self, text: str) -> None:
        self.feed(self.ws.send(Message(data=text)))

    def receive(self) -> bool:
        """Read what the server wrote; True if anything."""
        data = self.transport.value()
        self.transport.clear()
        self.ws.receive_data(data)
        self.events = list(self.ws.events())
        for event in self.events:
            if isinstance(event, TextMessage):
                self.messages.append(event.data)
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
        return bool(data)


def test_a_reader_that_stalls_is_dropped(server: Callable[..., RealmServer],
                                         events: list[dict[str, Any]]) -> None:
    realm_server = server(max_rate=0)
    browser = Browser(realm_server)
    browser.say("Arya")
    browser.channel.pauseProducing()  # as a full transport does
    chunk = b"*** " + b"x" * 1000 + b"\r\n"
    for _ in range(realm_server.settings.max_queue // len(chunk) + 2):
        browser.session.send(chunk)
    assert browser.transport.disconnecting  # aborted
    written = len(browser.transport.value())
    browser.session.send(chunk)
    assert len(browser.transport.value()) == written  # nothing more once dropped
    assert any("stopped reading" in e.get("log_format", "") for e in events)


def test_a_reader_that_catches_up_is_kept(server: Callable[..., RealmServer]) -> None:
    realm_server = server()
    browser = Browser(realm_server)
    chunk = b"*** " + b"x" * 1000 + b"\r\n"
    for _ in range(5):
        browser.channel.pauseProducing()
        for _ in range(realm_server.settings.max_queue // len(chunk) - 2):
            browser.session.send(chunk)
        browser.channel.resumeProducing()
    assert not browser.transport.disconnecting
    browser.receive()
    assert browser.messages[-1] == chunk.decode().rstrip("\r\n")


def test_pongs_count_toward_the_bound(server: Callable[..., RealmServer]) -> None:
    """A client that pings and never reads: its pongs are queued like lines,
    and past the bound it is dropped."""
    realm_server = server(max_rate=0, max_queue=4096)
    browser = Browser(realm_server)
    browser.channel.pauseProducing()
    ping = browser.ws.send(Ping(b"p" * 125))
    for _ in range(4096 // 127):
        browser.feed(ping)
    assert not browser.transport.disconnecting  # 32 pongs: 4,064 bytes, just under
    browser.feed(ping)
    assert browser.transport.disconnecting


def test_sends_after_close_are_dropped(server: Callable[..., RealmServer]) -> None:
    browser = Browser(server())
    late_name = browser.ws.send(Message(data="Arya"))  # framed before the Close
    browser.session.close()
    browser.receive()
    assert browser.close_code == 1000
    browser.session.send(b"*** late\r\n")
    browser.feed(late_name)  # arrives after --leave: ignored
    browser.receive()
    assert "*** late" not in browser.messages
    assert browser.messages[-1].startswith("*** What is your name?")
    assert wire.entered(browser.messages[-1]) is None


# -- options ----------------------------------------------------------------------------

def test_web_option_serves_the_site_beside_listen() -> None:
    config = Options()
    config.parseOptions(["--listen", "tcp:0", "--web", "tcp:0", "--web", "tcp:0",
                         "--chronicle", "none"])  # no realm.sqlite where the tests run
    assert config["web"] == ["tcp:0", "tcp:0"]
    top = makeService(config)
    factories = [getattr(s, "factory", None) for s in top]
    sites = [f for f in factories if isinstance(f, HTTPFactory)]
    tcp = [f for f in factories if isinstance(f, RealmFactory)]
    assert len(sites) == 2 and sites[0] is sites[1]
    assert sites[0].routes["/ws"].server is tcp[0].server  # type: ignore[attr-defined]
    assert sites[0].counter is tcp[0].server  # one count per address for both
    bare = Options()
    bare.parseOptions([])
    assert bare["web"] == []  # --web is optional
