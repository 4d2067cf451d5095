"""realm.http over real loopback sockets: routes, HEAD, the errors and their
headers, keep-alive and pipelining, and the limits an attacker found
missing on twisted.web (each test here failed there):

1. a client that pipelines requests and never reads is not answered
   beyond what its transport holds, and is dropped (logged);
2. a client that pings and never reads is dropped at the bound; pings
   beyond the rate are not answered;
3. connections are counted per address from their first byte; headers
   have a deadline; an idle keep-alive connection is closed; a body is
   refused with 413;
5. every response, errors too, carries the CSP, nosniff, no-referrer,
   and no `Server`.

Every wait is bounded; deadlines use a short `--login-timeout`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import h11
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent

from realm import web
from realm.http import MAX_HEAD, MAX_PENDING, HTTPFactory
from realm.routes import PerAddress, Request, Response
from realm.server import RealmServer, Settings
from realm.testing import eventually
from realm.testing_web import RawClient, WebSocketClient, attach

Reply = tuple[int, dict[str, str], bytes]
STRICT = ("content-security-policy", "x-content-type-options", "referrer-policy")


def replies(data: bytes, methods: list[str]) -> list[Reply]:
    """The responses in `data` to requests made with `methods`, in order."""
    conn = h11.Connection(h11.CLIENT)
    if data:  # (b"" would tell h11 the connection closed)
        conn.receive_data(data)
    found: list[Reply] = []
    for method in methods:
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
        conn.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return found
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        found.append((status, headers, body))
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return found
        conn.start_next_cycle()
    return found


def strict(headers: dict[str, str]) -> None:
    """What every response must carry, and must not."""
    for name in STRICT:
        assert name in headers, (name, headers)
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers
    assert "content-length" in headers


class Served:
    """A site on loopback: realm's own (a `RealmServer` counts), or `routes`."""

    def __init__(self, routes: dict[str, Any] | None = None, **settings: Any) -> None:
        self.server = RealmServer(Settings(**settings), reactor)  # type: ignore[arg-type]
        s = self.server.settings
        self.site = (web.site(self.server) if routes is None else
                     HTTPFactory(routes, reactor, counter=self.server,  # type: ignore[arg-type]
                                 timeout=s.login_timeout))
        self.port: IListeningPort = reactor.listenTCP(  # type: ignore[attr-defined]
            0, self.site, interface="127.0.0.1")
        self.number = self.port.getHost().port
        self.clients: list[Any] = []

    def client(self, data: bytes = b"", rcvbuf: int | None = None) -> defer.Deferred[Any]:
        client = RawClient(data)
        self.clients.append(client)
        return attach(self.number, client, rcvbuf)

    @defer.inlineCallbacks
    def ask(self, data: bytes, methods: list[str]) -> Generator[Any, Any, list[Reply]]:
        """Send `data` on a fresh connection; the replies to `methods`."""
        client = yield self.client(data)
        yield client.until(lambda: len(replies(client.data, methods)) == len(methods)
                           or client.gone, f"{len(methods)} replies")
        return replies(client.data, methods)

    @defer.inlineCallbacks
    def stop(self) -> Generator[Any, Any, None]:
        for client in self.clients:
            if client.transport is not None:
                client.transport.abortConnection()
        yield eventually(lambda: not self.site.channels, "every channel to close")
        yield self.port.stopListening()


def served(routes: dict[str, Any] | None = None,
           **settings: Any) -> Callable[..., Callable[[], Any]]:
    def wrap(body: Callable[..., Generator[Any, Any, None]]) -> Callable[..., Any]:
        @pytest_twisted.inlineCallbacks
        def test(events: list[dict[str, Any]]) -> Generator[Any, Any, None]:
            site = Served(routes, **settings)
            try:
                yield from body(site, events)
            finally:
                yield site.stop()
        test.__name__, test.__doc__ = body.__name__, body.__doc__
        return test
    return wrap


def get(path: str, *extra: str, method: str = "GET") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def logged(events: list[dict[str, Any]], text: str) -> bool:
    return any(text in event.get("log_format", "") for event in events)


# -- routes, HEAD, errors ------------------------------------------------------------

@served()
def test_get_and_head(site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """HEAD answers GET's headers, Content-Length included, without a body;
    both on one keep-alive connection."""
    [(status, got, body), (head_status, headed, head_body)] = yield site.ask(
        get("/app.js") + get("/app.js", method="HEAD"), ["GET", "HEAD"])
    assert status == head_status == 200
    assert body and not head_body
    assert headed["content-length"] == got["content-length"] == str(len(body))
    assert headed["content-type"] == got["content-type"] == "text/javascript; charset=utf-8"
    strict(got)
    strict(headed)


@served()
def test_error_pages_carry_the_strict_headers(site: Served,
                                              events: list[Any]) -> Generator[Any, Any, None]:
    """404, 405 (with Allow), 413, 400, 403: each with the page's CSP,
    nosniff, no-referrer, a Content-Length, and no Server."""
    [(status, headers, _)] = yield site.ask(get("/nope"), ["GET"])
    assert status == 404
    strict(headers)
    [(status, headers, _)] = yield site.ask(get("/", method="DELETE"), ["DELETE"])
    assert status == 405 and headers["allow"] == "GET, HEAD"
    strict(headers)
    [(status, headers, _)] = yield site.ask(get("/", "Content-Length: 3") + b"abc", ["GET"])
    assert status == 413 and headers["connection"] == "close"
    strict(headers)
    [(status, headers, _)] = yield site.ask(get("/ws", "Origin: http://evil.example",
                                                "Upgrade: websocket",
                                                "Connection: Upgrade"), ["GET"])
    assert status == 403
    strict(headers)
    client = yield site.client(b"NOT HTTP AT ALL\r\n\r\n")
    yield client.until(lambda: client.gone, "the close")
    [(status, headers, _)] = replies(client.data, ["GET"])
    assert status == 400
    strict(headers)


def slow(request: Request) -> defer.Deferred[Response]:
    return task.deferLater(reactor, 0.05, lambda: Response(200, b"slow"))


def boom(request: Request) -> Response:
    raise RuntimeError("a handler's bug")


@served({"/": lambda request: Response(200, b"fast"), "/slow": slow, "/boom": boom})
def test_a_route_may_answer_later(site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """A Deferred answer; the request pipelined behind it waits its turn."""
    found = yield site.ask(get("/slow") + get("/"), ["GET", "GET"])
    assert [(status, body) for status, _, body in found] == [(200, b"slow"), (200, b"fast")]
    site.site.add("/later", lambda request: Response(200, b"added"))
    [(status, _, body)] = yield site.ask(get("/later"), ["GET"])
    assert (status, body) == (200, b"added")


@pytest_twisted.inlineCallbacks
def test_a_failing_route_answers_500(observe_errors: Any) -> Generator[Any, Any, None]:
    site = Served({"/boom": boom})
    try:
        [(status, headers, _)] = yield site.ask(get("/boom"), ["GET"])
    finally:
        yield site.stop()
    assert status == 500
    strict(headers)
    assert "a handler's bug" in observe_errors.describe()
    observe_errors.errors.clear()  # logged, as it must be


# -- 1. pipelining by a client that never reads ------------------------------------

@served(login_timeout=0.5)
def test_a_pipelining_client_that_never_reads_is_dropped(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """4,000 pipelined `GET /app.js` (52 MB of answers), never read: the
    server answers what the transport holds, stops reading, and drops the
    client `--login-timeout` seconds later, with a log line."""
    many = 4000
    client = yield site.client(get("/app.js") * many, rcvbuf=4096)
    client.transport.pauseProducing()  # it reads nothing
    yield eventually(lambda: site.site.channels, "the server's side")
    [channel] = site.site.channels
    # (The client, reading nothing, would not notice: the server's side is watched.)
    yield eventually(lambda: channel not in site.site.channels, "the drop")
    assert logged(events, "read nothing of its response")
    # It stopped far short of 4,000: what the kernel's buffers took (their
    # size is the machine's; the server's own queue stayed within its bound).
    assert channel.requests < many // 4, channel.requests
    assert channel.peak_queued <= site.server.settings.max_queue
    yield eventually(lambda: not site.server.sessions, "the count to drop")


@served(login_timeout=2)  # short, but no reactor's stall on a busy machine is as long
def test_a_client_that_reads_slowly_gets_every_answer(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """The same pipeline from a client that reads: every answer, in order."""
    many = 200
    found = yield site.ask(get("/app.js") * many, ["GET"] * many)
    assert len(found) == many and {status for status, _, _ in found} == {200}


# -- 2. pings from a client that never reads ----------------------------------------

@served(max_rate=0)
def test_a_ping_flood_from_a_non_reader_is_dropped_at_the_bound(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """Pongs are queued like lines: past 256 KiB queued, dropped, logged
    (the bytes the kernel holds come first: the flood goes on until then)."""
    client = WebSocketClient(f"127.0.0.1:{site.number}", None)
    site.clients.append(client)
    yield attach(site.number, client, rcvbuf=4096)
    yield client.line(r"What is your name\?")
    client.transport.pauseProducing()  # it reads nothing more
    batch = b"".join(client.ws.send(ping(b"p" * 125)) for _ in range(500))  # 500 pongs
    flood = task.LoopingCall(client.transport.write, batch)  # until the kernel's
    flood.start(0.01)  # buffers and the server's bound are full, whatever their size
    try:
        yield eventually(lambda: not site.site.channels, "the drop")
    finally:
        flood.stop()
    [drop] = [e for e in events if "it stopped reading" in e.get("log_format", "")]
    limit = site.server.settings.max_queue
    assert limit < drop["queued"] <= limit + 127  # dropped at the bound, by a pong
    yield eventually(lambda: not site.server.sessions, "the session to end")


def ping(payload: bytes) -> Any:
    from wsproto.events import Ping
    return Ping(payload=payload)


@served(max_rate=2)
def test_pings_beyond_the_rate_are_not_answered(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    client = WebSocketClient(f"127.0.0.1:{site.number}", None)
    site.clients.append(client)
    yield attach(site.number, client)
    yield client.line(r"What is your name\?")
    client.transport.write(b"".join(client.ws.send(ping(b"")) for _ in range(20)))
    client.say("Arya")  # after the pings: their pongs come before its answer
    yield client.line("Arya has entered")
    assert 4 <= client.pongs <= 6, client.pongs  # a burst of twice the rate (+ refill)
    assert logged(events, "Ignoring pings")


# -- 3. counted, with deadlines, no bodies -------------------------------------------

@served(max_per_address=10, login_timeout=30)
def test_the_eleventh_connection_from_an_address_is_refused(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """Counted from its start, before it sends a byte: the 11th gets 503."""
    idle = []
    for _ in range(10):
        idle.append((yield site.client()))
    yield eventually(lambda: len(site.server.sessions) == 10, "10 counted")
    refused = yield site.client()
    yield refused.until(lambda: refused.gone, "the refusal")
    [(status, headers, body)] = replies(refused.data, ["GET"])
    assert status == 503 and b"Too many connections from your address (10)" in body
    strict(headers)
    idle[0].transport.loseConnection()
    yield eventually(lambda: len(site.server.sessions) == 9, "one to go")
    [(status, _, _)] = yield site.ask(get("/"), ["GET"])
    assert status == 200


@served(login_timeout=0.5)
def test_headers_that_trickle_are_cut_at_the_deadline(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    """A byte now and then does not move the deadline: 408, then closed."""
    client = yield site.client(b"GET / HTTP/1.1\r\nHo")
    trickle = task.LoopingCall(lambda: client.transport.write(b"s"))
    trickle.start(0.1, now=False)
    try:
        yield client.until(lambda: client.gone, "the deadline")
    finally:
        trickle.stop()
    assert client.data.startswith(b"HTTP/1.1 408 ")
    assert logged(events, "no complete request")
    yield eventually(lambda: not site.server.sessions, "the count to drop")


@served(login_timeout=0.5)
def test_an_idle_keep_alive_connection_is_closed(
        site: Served, events: list[Any]) -> Generator[Any, Any, None]:
    client = yield site.client(get("/favicon.svg"))
    yield client.until(lambda: client.gone, "the idle close")
    [(status, headers, _)] = replies(client.data, ["GET"])
    assert status == 200 and "connection" not in headers  # kept alive, until idle


@served()
def test_a_body_is_refused_and_not_read(site: Served,
                                        events: list[Any]) -> Generator[Any, Any, None]:
    """A `GET /` announcing 10 GB: 413 and a close, whatever follows."""
    client = yield site.client(get("/", "Content-Length: 10000000000") + b"x" * 65536)
    yield client.until(lambda: client.gone, "the close")
    [(status, headers, _)] = replies(client.data, ["GET"])
    assert status == 413 and headers["connection"] == "close"
    assert logged(events, "Refused a request body")


# -- the channel's edges, in memory on a task.Clock -----------------------------------

def memory(routes: dict[str, Any], timeout: float = 5.0) -> tuple[Any, StringTransport, Clock]:
    clock = Clock()
    channel = HTTPFactory(routes, clock, timeout=timeout).buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.9", 40000))
    channel.makeConnection(transport)
    return channel, transport, clock


def later() -> tuple[defer.Deferred[Response], Callable[[Request], Any]]:
    answer: defer.Deferred[Response] = defer.Deferred()
    return answer, lambda request: answer


def test_deadlines_on_a_clock() -> None:
    """Headers not complete in time: 408; idle after an answer: closed, quietly."""
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n")
    clock.advance(4.9)
    channel.dataReceived(b"X-Slow: 1\r\n")  # a byte does not move the deadline
    clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 408 ") and transport.disconnecting
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    channel.dataReceived(get("/"))
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    assert [status for status, _, _ in replies(transport.value(), ["GET"])] == [200]


def test_a_client_not_reading_is_dropped_on_a_clock(events: list[dict[str, Any]]) -> None:
    channel, transport, clock = memory({"/": lambda r: Response(200, b"x" * 1000)})
    channel.dataReceived(get("/"))
    channel.pauseProducing()  # as a full transport does
    assert transport.producerState == "paused"  # reading stopped
    channel.dataReceived(get("/"))  # (a TLS record already read): waits
    assert channel.requests == 1
    clock.advance(5)
    assert transport.disconnecting and logged(events, "read nothing of its response")


def test_a_client_that_drains_gets_the_next_answer() -> None:
    channel, transport, clock = memory({"/": lambda r: Response(200, b"x" * 1000)})
    channel.dataReceived(get("/") + get("/"))
    assert channel.requests == 2
    channel.pauseProducing()
    channel.dataReceived(get("/"))
    assert channel.requests == 2
    channel.resumeProducing()
    assert channel.requests == 3 and transport.producerState == "producing"
    clock.advance(4)
    assert not transport.disconnecting


def test_too_much_waiting_behind_a_request_is_dropped(events: list[dict[str, Any]]) -> None:
    answer, route = later()
    channel, transport, clock = memory({"/": route})
    channel.dataReceived(get("/"))
    assert transport.producerState == "paused"  # answering: nothing more is read
    channel.dataReceived(get("/") * (MAX_PENDING // len(get("/"))))
    assert not transport.disconnecting
    channel.dataReceived(get("/") * 2)
    assert transport.disconnecting and logged(events, "of requests waiting")


def test_close_while_answering_closes_after_the_answer() -> None:
    answer, route = later()
    channel, transport, clock = memory({"/": route})
    channel.dataReceived(get("/") + get("/"))
    channel.close()  # the server is shutting down
    assert not transport.disconnecting
    answer.callback(Response(200, b"late"))
    [(status, headers, body)] = replies(transport.value(), ["GET", "GET"])
    assert (status, body, headers["connection"]) == (200, b"late", "close")
    assert transport.disconnecting and channel.requests == 1


def test_an_answer_after_the_client_left_is_dropped() -> None:
    answer, route = later()
    channel, transport, clock = memory({"/": route})
    channel.dataReceived(get("/"))
    channel.connectionLost(None)
    answer.callback(Response(200, b"late"))
    assert transport.value() == b""


def test_http_1_0_and_routes() -> None:
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    channel.dataReceived(b"GET /?q=1 HTTP/1.0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ") and transport.disconnecting
    site = HTTPFactory({}, Clock())
    site.add("/a", lambda r: Response(200))
    for bad in ("/a", "a", "/b?c"):
        with pytest.raises(ValueError):
            site.add(bad, lambda r: Response(200))


@pytest.mark.parametrize("pieces", [1, 40])
def test_headers_over_16_kib_are_refused_however_they_come(pieces: int) -> None:
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    request = get("/", f"X-Big: {'x' * MAX_HEAD}")
    step = len(request) // pieces + 1
    for at in range(0, len(request), step):
        channel.dataReceived(request[at:at + step])
    assert transport.value().startswith(b"HTTP/1.1 431 ") and transport.disconnecting
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    channel.dataReceived(get("/", f"X-Big: {'x' * (MAX_HEAD - 100)}"))
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_what_a_bad_request_is_told_reads_as_text() -> None:
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    channel.dataReceived("GET /café HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    [(status, _, body)] = replies(transport.value(), ["GET"])
    assert (status, body) == (400, b"Bad request: illegal request line\n")


def test_bad_requests_are_logged_once_a_minute_with_their_count(
        events: list[dict[str, Any]]) -> None:
    """A stranger's bad requests cannot flood the log (2,500 lines a second
    before): one line, then a minute on one line saying how many came."""
    clock = Clock()
    site = HTTPFactory({"/": lambda r: Response(200, b"hi")}, clock)
    for _ in range(50):
        channel = site.buildProtocol(None)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.9", 1)))
        channel.dataReceived(b"\x16garbage\r\n\r\n")

    def told() -> list[str]:
        return [formatEvent(e) for e in events if "Bad request" in formatEvent(e)]
    line = "Bad request from 192.0.2.9: illegal request line: bytearray(b'\\x16garbage')"
    assert told() == [line]
    clock.advance(60)
    assert told() == [line, f"49 such lines since the last, the last: {line}"]


def test_a_site_of_its_own_caps_connections_per_address() -> None:
    """`--metrics` has no game server to count its connections: one client
    must still not hold every file the process may open."""
    site = HTTPFactory({"/": lambda r: Response(200, b"hi")}, Clock(), counter=PerAddress(2))

    def connect(host: str) -> tuple[Any, bytes]:
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 1))
        channel = site.buildProtocol(None)
        channel.makeConnection(transport)
        return channel, transport.value()
    (first, _), (_, answer) = connect("192.0.2.9"), connect("192.0.2.9")
    _, answer = connect("192.0.2.9")
    assert answer.startswith(b"HTTP/1.1 503 ") and b"Too many connections" in answer
    assert connect("192.0.2.10")[1] == b""  # another address: served
    first.connectionLost(None)
    assert connect("192.0.2.9")[1] == b""


def test_a_zero_length_written_00_is_no_body() -> None:
    channel, transport, clock = memory({"/": lambda r: Response(200, b"hi")})
    channel.dataReceived(get("/", "Content-Length: 00"))
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_a_target_in_absolute_form_is_served() -> None:
    """RFC 9112 3.2.2: a server must take `GET http://host/path`."""
    seen: list[Request] = []

    def route(request: Request) -> Response:
        seen.append(request)
        return Response(200, b"hi")

    channel, transport, clock = memory({"/chronicle.json": route})
    channel.dataReceived(b"GET http://127.0.0.1:8080/chronicle.json?realm=x HTTP/1.1\r\n"
                         b"Host: 127.0.0.1:8080\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert [(r.path, r.target) for r in seen] == [("/chronicle.json", "/chronicle.json?realm=x")]
