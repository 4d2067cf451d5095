"""The web client's bridge: page, Origin check, WebSocket lines, and a
WebSocket member playing with a TCP member.  No browser: real loopback
sockets with a small wsproto client (so that a test can choose its
`Origin` and send what a browser never would), and in-memory fakes for
the slow-reader bound."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
import twisted.test
from twisted.internet import defer, endpoints, reactor, ssl, task
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.web.client import Agent, readBody
from twisted.web.test.requesthelper import DummyRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    RejectConnection,
    Request,
    TextMessage,
)

from realm import web
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings
from realm.tap import Options, makeService

TIMEOUT = 5.0  # seconds: every wait in this file is bounded by it
PEM = FilePath(twisted.test.__file__).sibling("server.pem").path.replace(":", "\\:")


def bounded(d: defer.Deferred[Any], what: str) -> defer.Deferred[Any]:
    def late(result: Any, timeout: float) -> Any:
        raise AssertionError(f"waited {timeout:g}s for {what}")
    return d.addTimeout(TIMEOUT, reactor, onTimeoutCancel=late)  # type: ignore[arg-type]


class Waiting:
    """Deferreds that fire once a condition holds: checked on each event
    of the client, and every 10 ms for what happens on the server's side."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []
        self._poll = task.LoopingCall(self._check)

    def until(self, condition: Callable[[], Any], what: str) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((condition, d))
        self._check()
        if self._waiters and not self._poll.running:
            self._poll.start(0.01, now=False)
        return bounded(d, what).addBoth(self._forget, d)

    def _forget(self, result: Any, d: defer.Deferred[Any]) -> Any:
        self._waiters = [w for w in self._waiters if w[1] is not d]
        if not self._waiters and self._poll.running:
            self._poll.stop()
        return result

    def _check(self) -> None:
        for entry in list(self._waiters):
            condition, d = entry
            value = condition()
            if value and entry in self._waiters:
                self._waiters.remove(entry)
                d.callback(value)


class WSClient(Protocol, Waiting):
    """A WebSocket client on wsproto, recording every message."""

    def __init__(self, host: str, origin: str | None, hang_up: bool = True) -> None:
        Waiting.__init__(self)
        self.hang_up = hang_up  # close TCP on a Close frame, or wait for the server
        self.host = host
        self.origin = origin
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[str | bytes] = []
        self.status: int | None = None  # of a refused handshake
        self.accepted = False
        self.close_code: int | None = None
        self.gone = False
        self._text = ""

    def connectionMade(self) -> None:
        headers = [(b"origin", self.origin.encode())] if self.origin else []
        self.transport.write(self.ws.send(  # type: ignore[union-attr]
            Request(host=self.host, target="/ws", extra_headers=headers)))

    def dataReceived(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    self.messages.append(self._text)
                    self._text = ""
            elif isinstance(event, BytesMessage):
                self.messages.append(bytes(event.data))
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                if self.ws.state is not ConnectionState.CLOSED:
                    self.transport.write(self.ws.send(event.response()))  # type: ignore[union-attr]
                if self.hang_up:
                    self.transport.loseConnection()  # type: ignore[union-attr]
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.gone = True
        self._check()

    # -- what a test does
    def say(self, text: str) -> None:
        self.transport.write(self.ws.send(Message(data=text)))  # type: ignore[union-attr]

    def say_bytes(self, data: bytes) -> None:
        self.transport.write(self.ws.send(Message(data=data)))  # type: ignore[union-attr]

    def close_tab(self) -> None:
        """What a browser does when its tab is closed: close 1001."""
        self.transport.write(self.ws.send(CloseConnection(code=1001)))  # type: ignore[union-attr]

    def line(self, pattern: str) -> defer.Deferred[Any]:
        """Wait for a text message matching `pattern`."""
        regex = re.compile(pattern)
        return self.until(lambda: next((m for m in self.messages if isinstance(m, str)
                                        and regex.search(m)), None),
                          f"a message matching {pattern!r}; got {self.messages!r}")


class TCPClient(LineOnlyReceiver, Waiting):
    """A plain line client, as `nc` would be."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        Waiting.__init__(self)
        self.lines: list[str] = []
        self.gone = False

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode())
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.gone = True
        self._check()

    def say(self, text: str) -> None:
        self.sendLine(text.encode())

    def line(self, pattern: str) -> defer.Deferred[Any]:
        regex = re.compile(pattern)
        return self.until(lambda: next((m for m in self.lines if regex.search(m)), None),
                          f"a line matching {pattern!r}; got {self.lines!r}")


class Rig:
    """A realm server on loopback: `--listen` and `--web`, one RealmServer."""

    def __init__(self, tls: bool = False, **settings: Any) -> None:
        self.tls = tls
        self.server = RealmServer(Settings(**settings), reactor)  # type: ignore[arg-type]
        self.ports: list[Any] = []
        self.clients: list[Protocol] = []

    @defer.inlineCallbacks
    def start(self) -> Generator[defer.Deferred[Any], Any, Rig]:
        tcp = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            RealmFactory(self.server))
        if self.tls:
            http_endpoint = endpoints.serverFromString(
                reactor, f"ssl:0:interface=127.0.0.1:privateKey={PEM}")
        else:
            http_endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        http = yield http_endpoint.listen(web.site(self.server))
        self.ports = [tcp, http]
        self.tcp_port = tcp.getHost().port
        self.web_port = http.getHost().port
        return self

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.web_port}"

    @defer.inlineCallbacks
    def ws(self, origin: str | None = "same", host: str | None = None,
           hang_up: bool = True) -> Generator[defer.Deferred[Any], Any, WSClient]:
        host = host or f"127.0.0.1:{self.web_port}"
        client = WSClient(host, self.origin if origin == "same" else origin, hang_up)
        endpoint: Any = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.web_port)
        if self.tls:  # a test certificate: no verification
            endpoint = endpoints.wrapClientTLS(ssl.CertificateOptions(), endpoint)
        yield bounded(endpoints.connectProtocol(endpoint, client), "a connection")
        self.clients.append(client)
        yield client.until(lambda: client.accepted or client.status or client.gone,
                           "the handshake's answer")
        return client

    @defer.inlineCallbacks
    def tcp(self) -> Generator[defer.Deferred[Any], Any, TCPClient]:
        client = TCPClient()
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.tcp_port)
        yield bounded(endpoints.connectProtocol(endpoint, client), "a connection")
        self.clients.append(client)
        return client

    @defer.inlineCallbacks
    def stop(self) -> Generator[defer.Deferred[Any], Any, None]:
        for client in self.clients:
            if client.transport is not None:
                client.transport.loseConnection()
        for client in self.clients:
            yield client.until(lambda c=client: c.gone, "the client to go")  # type: ignore[attr-defined]
        yield bounded(self.server.shutdown(grace=TIMEOUT), "the server to drain")
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


GREETING = r"^\*\*\* What is your name\?"


# -- the page ------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using readBody:DeprecationWarning")
@rig_test()
def test_the_page_is_served_at_root(rig: Rig) -> Generator[Any, Any, None]:
    """`GET /` answers 200 with the page, its hooks, and a strict CSP."""
    agent = Agent(reactor)
    response = yield bounded(agent.request(b"GET", f"{rig.origin}/".encode()), "GET /")
    body = (yield readBody(response)).decode()
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    [csp] = response.headers.getRawHeaders("content-security-policy")
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    for hook in ("name", "realm", "password", "join", "input", "log", "members"):
        assert f'data-realm="{hook}"' in body
    for path, kind in (("app.js", "text/javascript"), ("style.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):
        response = yield bounded(agent.request(b"GET", f"{rig.origin}/{path}".encode()), path)
        yield readBody(response)
        assert response.code == 200
        assert response.headers.getRawHeaders("content-type")[0].startswith(kind)
    response = yield bounded(agent.request(b"GET", f"{rig.origin}/nope".encode()), "404")
    yield readBody(response)
    assert response.code == 404


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


@rig_test()
def test_own_origin_and_no_origin_are_accepted(rig: Rig) -> Generator[Any, Any, None]:
    for origin in ("same", None):
        client = yield rig.ws(origin=origin)
        assert client.accepted
        yield client.line(GREETING)


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
    request = DummyRequest([b"ws"])
    if origin is not None:
        request.requestHeaders.setRawHeaders("origin", [origin])
    if host is not None:
        request.requestHeaders.setRawHeaders("host", [host])
    assert web.same_origin(request) is same


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
    assert not [m for m in client.messages if "\r" in m or "\n" in m]  # type: ignore[operator]


@rig_test()
def test_binary_message_is_refused_and_session_stays(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    client.say_bytes(b"Arya")
    yield client.line(r"^\*\*\* Error: Binary messages are not accepted")
    client.say("Arya@web")
    yield client.line(r"Arya has entered the realm")
    client.say_bytes(b"\x00\x01")
    yield client.until(lambda: len([m for m in client.messages
                                    if str(m).startswith("*** Error: Binary")]) == 2,
                       "a second refusal")
    assert not client.gone


@rig_test()
def test_line_break_is_refused_and_session_stays(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    other = yield rig.tcp()
    other.say("Bran@web")
    yield other.line("Bran has entered")
    client.say("Arya@web")
    yield client.line("Arya has entered")
    for text in ("one\ntwo", "one\r\ntwo", "one\r", "\n"):
        client.say(text)
    yield client.until(lambda: len([m for m in client.messages
                                    if str(m).startswith("*** Error: Send one line")]) == 4,
                       "four refusals")
    client.say("after")
    yield other.line("^Arya: after$")
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


@rig_test()
def test_invalid_utf8_closes_with_1007(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    mask = os.urandom(4)
    payload = b"Ary\xff"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    client.transport.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # type: ignore[union-attr]
    yield client.until(lambda: client.gone, "the close")
    assert client.close_code == 1007
    yield client.until(lambda: not rig.server.sessions, "the session to end")


@rig_test()
def test_endless_message_closes_with_1009(rig: Rig) -> Generator[Any, Any, None]:
    client = yield rig.ws()
    yield client.line(GREETING)
    for _ in range(20):  # 20 KiB and never finished
        client.transport.write(client.ws.send(  # type: ignore[union-attr]
            Message(data="x" * 1024, message_finished=False)))
    yield client.until(lambda: client.gone, "the close")
    assert client.close_code == 1009


# -- a WebSocket member is a member like any other ---------------------------------

@rig_test()
def test_websocket_and_tcp_members_chat(rig: Rig) -> Generator[Any, Any, None]:
    browser = yield rig.ws()
    terminal = yield rig.tcp()
    browser.say("arya@westeros")
    yield browser.line(r"^\*\*\* Arya has entered the realm \(1/5\)$")
    terminal.say("Bran@WESTEROS")
    yield terminal.line(r"Bran has entered the realm \(2/5\)")
    yield browser.line(r"^\*\*\* Bran has entered the realm \(2/5\)$")
    browser.say("Hail, <b>Bran</b>!")
    yield terminal.line("^Arya: Hail, <b>Bran</b>!$")
    terminal.say("Well met, Arya.")
    yield browser.line("^Bran: Well met, Arya.$")
    browser.say("--who")
    yield browser.line(r"^\*\*\* In the realm 'westeros' \(2/5\): Arya, Bran$")
    browser.close_tab()
    yield terminal.line(r"Arya has left the realm \(1/5\)")
    yield browser.until(lambda: browser.gone, "the tab's link to close")


@rig_test()
def test_leave_closes_the_websocket(rig: Rig) -> Generator[Any, Any, None]:
    browser = yield rig.ws()
    browser.say("Lord@court")
    yield browser.line("Lord has entered")
    browser.say("--leave")
    yield browser.until(lambda: browser.gone, "the close")
    assert browser.close_code == 1000
    assert any("Farewell" in str(m) for m in browser.messages)


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
        yield tab.until(lambda: not rig.server.sessions,
                        "the sessions to end")
    return test


test_server_closes_the_link = closes_the_link(tls=False)
test_server_closes_the_link_over_tls = pytest.mark.filterwarnings(
    "ignore:Passing pyOpenSSL:DeprecationWarning")(closes_the_link(tls=True))


@rig_test(max_per_address=1)
def test_limits_apply_to_websockets(rig: Rig) -> Generator[Any, Any, None]:
    first = yield rig.ws()
    yield first.line(GREETING)
    second = yield rig.ws()
    yield second.line(r"^\*\*\* Error: Too many connections")
    yield second.until(lambda: second.gone, "the refusal to close")


# -- the slow reader, in memory -------------------------------------------------------

class FakeWebSocket:
    """A `WebSocketTransport` recording what is sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: int | None = None

    def sendTextMessage(self, text: str) -> None:
        self.sent.append(text)

    def loseConnection(self, code: int = 1000) -> None:
        self.closed = code


class FakeRequest:
    """What a `WebSession` needs of its upgrade request."""

    def __init__(self) -> None:
        self.channel = SimpleNamespace(transport=StringTransport(),
                                       dataReceived=lambda data: None)
        # An HTTP channel is its link's producer, and stays so after the upgrade.
        self.channel.transport.registerProducer(self.channel, True)
        self.producers: list[tuple[Any, bool]] = []

    def getClientAddress(self) -> IPv4Address:
        return IPv4Address("TCP", "192.0.2.7", 50000)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producers.append((producer, streaming))


def make_session(server: RealmServer) -> tuple[web.WebSession, FakeWebSocket, StringTransport]:
    request = FakeRequest()
    session = web.WebSession(server, request)  # type: ignore[arg-type]
    socket = FakeWebSocket()
    session.negotiationStarted(socket)  # type: ignore[arg-type]
    session.negotiationFinished()
    assert request.producers == [(session, True)]
    assert session.address == "192.0.2.7"
    return session, socket, request.channel.transport


def test_a_reader_that_stalls_is_dropped(server: Callable[..., RealmServer]) -> None:
    realm_server = server(max_rate=0)
    session, socket, stream = make_session(realm_server)
    assert socket.sent[-1].startswith("*** What is your name?")
    session.textMessageReceived("Arya")
    session.pauseProducing()
    chunk = b"*** " + b"x" * 1000 + b"\r\n"
    for _ in range(realm_server.settings.max_queue // len(chunk) + 2):
        session.send(chunk)
    assert stream.disconnecting  # aborted: StringTransport marks it so
    sent = len(socket.sent)
    session.send(chunk)
    assert len(socket.sent) == sent  # nothing more once dropped


def test_a_reader_that_catches_up_is_kept(server: Callable[..., RealmServer]) -> None:
    realm_server = server()
    session, socket, stream = make_session(realm_server)
    chunk = b"*** " + b"x" * 1000 + b"\r\n"
    for _ in range(5):
        session.pauseProducing()
        for _ in range(realm_server.settings.max_queue // len(chunk) - 1):
            session.send(chunk)
        session.resumeProducing()
    assert not stream.disconnecting
    assert socket.sent[-1] == chunk.decode().rstrip("\r\n")


def test_sends_after_close_are_dropped(server: Callable[..., RealmServer]) -> None:
    session, socket, _ = make_session(server())
    session.close()
    assert socket.closed == 1000
    session.send(b"*** late\r\n")
    assert "*** late" not in socket.sent
    session.textMessageReceived("Arya")  # arrives after --leave: ignored
    assert socket.sent[-1].startswith("*** What is your name?")


# -- options ----------------------------------------------------------------------------

def test_web_option_serves_the_site_beside_listen() -> None:
    config = Options()
    config.parseOptions(["--listen", "tcp:0", "--web", "tcp:0", "--web", "tcp:0"])
    assert config["web"] == ["tcp:0", "tcp:0"]
    top = makeService(config)
    factories = [getattr(s, "factory", None) for s in top]
    sites = [f for f in factories if isinstance(f, web.Site)]
    tcp = [f for f in factories if isinstance(f, RealmFactory)]
    assert len(sites) == 2 and sites[0] is sites[1]
    ws = sites[0].resource.children[b"ws"]
    assert ws.realm_server is tcp[0].server  # one set of realms
    bare = Options()
    bare.parseOptions([])
    assert bare["web"] == []  # --web is optional
