"""A small HTTP/1.1 server: h11 parses, a Twisted `Protocol` owns every byte.

It serves a route table: an exact path to a handler (`realm.routes`: a
`Request` in; a `Response`, a `Switch` to another protocol, or a
`Deferred` of either, out).  Nothing of the game is here: `realm.web`
builds the game's site on it; `--metrics` can serve other routes with it.
GET and HEAD (headers alone) only, else 405 with `Allow`; 404 for an
unknown path; 413 and a close for any request body; 400 for a malformed
request (431: headers over 16 KiB); 500 (logged) when a handler fails.
Every response carries the factory's headers (Content-Security-Policy,
`nosniff`, `no-referrer`...), `Content-Length` and `Date`, no `Server`.

Limits, per connection (`HTTPFactory`'s arguments; `timeout` 0 is off):
- one request at a time: pipelined ones wait unread (at most
  `MAX_PENDING` bytes parsed ahead, else dropped) while one is answered.
- `timeout` seconds for a request's headers, from the start or the last
  response's end: an idle keep-alive connection is closed then, and a
  request still coming gets 408 and a close.
- a client that stops reading: the transport says so (this is its push
  producer), reading stops until it drains, and a client still not
  reading `timeout` seconds on is dropped (logged); what is written
  meanwhile counts against `max_queue`, past which it is dropped at once.
- `counter.connected(channel)` counts it from its start (the realm server
  caps connections per address): refused, it gets 503 and is closed;
  `counter.disconnected(channel)` comes once, when it ends or switches
  protocols (the new protocol's owner counts it from then on).
- closing sends what is queued, half-closes and drops what the client
  still sends until it hangs up (its last bytes must not turn the close
  into a reset); it is aborted after `CLOSE_GRACE` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import h11
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from realm.link import CLOSE_GRACE, Backlog, address_of
from realm.routes import Answer, Request, Response, Site, Switch, Upgraded

log = Logger()

MAX_HEAD = 16 * 1024  # a request's line and headers, in bytes (h11: 431)
MAX_PENDING = 64 * 1024  # pipelined bytes held unparsed while one is answered
METHODS = ("GET", "HEAD")
BOTH_DONE = {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}
REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


@implementer(IPushProducer, IHalfCloseableProtocol)
class Channel(Protocol):
    """One HTTP connection: its requests one at a time, then maybe a switch."""

    address = "?"
    kind = "http"  # for the metrics: an HTTP connection, not (yet) a WebSocket

    def __init__(self, site: Site) -> None:
        self.clock = site.clock
        self._site = site
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._backlog = Backlog(site.max_queue)
        self._timer: IDelayedCall | None = None
        self._upgraded: Upgraded | None = None
        self._counted = False
        self._busy = False  # a request is being answered
        self._head = False  # ... and it is a HEAD
        self._serving = False  # inside _serve's loop
        self._reading = True
        self._read_closed = False  # the client half-closed
        self._closing = False  # the last response is out, or none will be
        self._close_asked = False  # close() came while busy
        self._gone = False
        self.requests = 0  # answered
        self.peak_queued = 0  # the most bytes queued for a client not reading

    # -- the connection ------------------------------------------------------------
    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        self.address = address_of(transport)
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)  # type: ignore[attr-defined]
        transport.registerProducer(self, True)  # type: ignore[attr-defined]
        self._site.channels.add(self)
        counter = self._site.counter
        if counter is not None:
            refusal = counter.connected(self)
            if refusal is not None:
                text = refusal.decode("utf-8").strip().removeprefix("*** ")
                self._send(Response.text(503, text), close=True)
                return
            self._counted = True
        self._expect_request()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._gone = self._closing = True
        self._cancel_timer()
        self._site.channels.discard(self)
        self._uncount()
        if self._upgraded is not None:
            self._upgraded.connection_lost()

    def readConnectionLost(self) -> None:
        """The client half-closed: answer what it asked, then close."""
        self._read_closed = True
        if self._closing or self._upgraded is not None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._h11.receive_data(b"")
        self._serve()

    def writeConnectionLost(self) -> None:
        pass

    # -- routes.Connection (what a switched-to protocol uses) and routes.Counted ---
    def write(self, data: bytes) -> None:
        """Send `data`; before a switch, counted while the client is not reading
        (after one, the new protocol counts its own)."""
        if self._closing:
            return
        if self._upgraded is None and self._backlog.paused:
            if self._backlog.over(len(data), self.address):
                self.abort()
                return
            self.peak_queued = max(self.peak_queued, self._backlog.queued)
        self.transport.write(data)  # type: ignore[union-attr]

    def send(self, data: bytes) -> None:
        """A line for line clients (the server's goodbye): HTTP has no place
        for it."""

    def close(self) -> None:
        """Close, after the response in hand if there is one."""
        if self._busy and self._upgraded is None:
            self._close_asked = True
        else:
            self._finish()

    def abort(self) -> None:
        self._closing = True
        self.transport.abortConnection()  # type: ignore[union-attr]

    # -- requests --------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._upgraded is not None:
            self._upgraded.data_received(data)
            return
        if self._closing:
            return  # after the last response, what comes is dropped
        if (self._busy or not self._reading) and (
                len(self._h11.trailing_data[0]) + len(data) > MAX_PENDING):
            self._tell("http_pending", "Dropped {address}: over {limit} bytes of requests "
                       "waiting", warn=True, limit=MAX_PENDING)
            self.abort()
            return
        self._h11.receive_data(data)
        self._serve()

    def _serve(self) -> None:
        """Answer the requests in hand, one at a time, while the client reads."""
        if self._serving:
            return  # an answer given inside the loop: the loop goes on
        self._serving = True
        try:
            while not (self._busy or self._closing or self._upgraded is not None
                       or self._backlog.paused):
                try:
                    event = self._h11.next_event()
                except h11.RemoteProtocolError as e:
                    self._tell("http_bad_request", "Bad request from {address}: {why}", why=e)
                    why = str(e).split(": bytearray(", 1)[0]  # not the bytes' repr
                    self._error(e.error_status_hint, f"Bad request: {why}")
                    return
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    if self._h11.states != BOTH_DONE:  # more of a request to come
                        self._read(event is h11.NEED_DATA)
                        return
                    self._h11.start_next_cycle()  # the next request may be in hand
                    self._expect_request()
                elif isinstance(event, h11.Request):
                    self._request(event)
                elif isinstance(event, h11.ConnectionClosed):
                    self._finish()
                # Data cannot come (a body is refused); EndOfMessage needs nothing.
            if self._busy or self._backlog.paused:
                self._read(False)
        finally:
            self._serving = False

    def _request(self, event: h11.Request) -> None:
        self._cancel_timer()
        self._busy = True
        self._head = event.method == b"HEAD"
        if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > MAX_HEAD:
            # h11 bounds only what is still incomplete: a whole head read at once passes.
            self._tell("http_head_too_long", "Refused headers over {limit} bytes from "
                       "{address}", limit=MAX_HEAD)
            self._error(431, f"Bad request: its line and headers are over {MAX_HEAD} bytes.")
            return
        request = Request.parse(event.method, event.target, event.headers, self.address,
                                ISSLTransport.providedBy(self.transport), event.http_version)
        if request.has_body:
            self._tell("http_body", "Refused a request body from {address}")
            self._error(413, "This server takes no request body.")
            return
        if request.method not in METHODS:
            self._answer(Response.text(405, f"{request.method} is not allowed here.",
                                       ("Allow", ", ".join(METHODS))))
            return
        handler = self._site.routes.get(request.path)
        if handler is None:
            self._answer(Response.text(404, f"Nothing here: {request.path}"))
            return
        try:
            answer = handler(request)
        except Exception:
            answer = self._failed(Failure(), request.path)
        if isinstance(answer, Deferred):
            self._read(False)  # pipelined requests wait in the kernel meanwhile
            answer.addErrback(self._failed, request.path).addCallback(self._answer)
        else:
            self._answer(answer)

    def _failed(self, failure: Failure, path: str) -> Response:
        log.failure("The handler of {path} failed", failure, path=path)
        return Response.text(500, "Internal server error.")

    # -- answers ---------------------------------------------------------------------
    def _answer(self, answer: Answer) -> None:
        """Send the answer to the request in hand, then go on to the next."""
        if self._gone:
            return  # a Deferred answer, too late
        if isinstance(answer, Switch):
            self._switch(answer)
            return
        self._send(answer, close=self._close_asked)
        self._busy = False
        self.requests += 1
        if self._h11.our_state is h11.MUST_CLOSE:
            self._finish()
        self._serve()  # inside _serve's loop (not a Deferred's answer): no-op

    def _error(self, status: int, text: str) -> None:
        """Answer with an error and close: what follows cannot be trusted."""
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._send(Response.text(status, text), close=True)
        self._finish()

    def _send(self, response: Response, close: bool = False) -> None:
        h = self._h11
        headers = response.head(self._site.headers, self.clock.seconds(), close)
        data = h.send(h11.Response(status_code=response.status, headers=headers,
                                   reason=REASONS.get(response.status, b""))) or b""
        if response.body and not self._head:  # HEAD: the headers alone
            data += h.send(h11.Data(data=response.body)) or b""
        data += h.send(h11.EndOfMessage()) or b""
        self._head = False
        self.write(data)
        if close:
            self._finish()

    def _switch(self, switch: Switch) -> None:
        """Hand the connection, and what is unread, to another protocol."""
        unread = self._h11.trailing_data[0]
        self._cancel_timer()
        self.write(switch.head)
        self._busy = False
        self.requests += 1
        self._uncount()  # its new owner counts it
        upgraded = self._upgraded = switch.take_over(self)
        self._read(True)
        if self._backlog.paused:
            upgraded.pause()
        if unread and not self._closing:
            upgraded.data_received(unread)

    # -- closing ---------------------------------------------------------------------
    def _finish(self) -> None:
        """Close: send what is queued, half-close, drop what still comes."""
        if self._closing:
            return
        self._closing = True
        self._busy = False
        transport = self.transport
        assert transport is not None
        transport.unregisterProducer()  # type: ignore[attr-defined]
        if self._read_closed or not ITCPTransport.providedBy(transport) or (
                ISSLTransport.providedBy(transport)):  # TLS closes its own way
            transport.loseConnection()
        else:
            self._read(True)
            transport.loseWriteConnection()  # type: ignore[attr-defined]
        self._set_timer(CLOSE_GRACE, self._close_stuck)

    def _close_stuck(self) -> None:
        self._tell("http_close_stuck", "Aborted {address}: it had not closed its end "
                   "{s:g} s after ours (idle, or not reading)", s=CLOSE_GRACE)
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _tell(self, kind: str, format: str, warn: bool = False, **fields: object) -> None:
        """Log what a stranger can cause as fast as they like: one line of a
        `kind` a minute (realm.quiet)."""
        self._site.quiet.log(self.clock, kind, log.warn if warn else log.info, format,
                             address=self.address, **fields)

    def _uncount(self) -> None:
        if self._counted and self._site.counter is not None:
            self._counted = False
            self._site.counter.disconnected(self)

    # -- deadlines and flow ------------------------------------------------------------
    def _expect_request(self) -> None:
        """The next request's headers have `timeout` seconds from now."""
        if self._site.timeout and not self._closing:
            self._set_timer(self._site.timeout, self._no_request)

    def _no_request(self) -> None:
        if self._h11.their_state is h11.IDLE and not self._h11.trailing_data[0]:
            self._finish()  # an idle keep-alive connection
            return
        self._tell("http_no_request", "Closed {address}: no complete request in {s:g} s",
                   s=self._site.timeout)
        self._error(408, "The request took too long.")

    def _stalled(self) -> None:
        self._tell("http_stalled", "Dropped {address}: it read nothing of its response "
                   "in {s:g} s", warn=True, s=self._site.timeout)
        self.abort()

    def _set_timer(self, seconds: float, then: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = self.clock.callLater(seconds, then)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _read(self, on: bool) -> None:
        """Start or stop reading from the client."""
        if on != self._reading and not self._gone:
            self._reading = on
            if on:
                self.transport.resumeProducing()  # type: ignore[union-attr]
            else:
                self.transport.pauseProducing()  # type: ignore[union-attr]

    # -- IPushProducer: the transport's buffer is full, or has drained ----------------
    def pauseProducing(self) -> None:
        self._backlog.pause()
        if self._upgraded is not None:
            self._upgraded.pause()  # a WebSocket counts, and keeps reading
            return
        self._read(False)
        if self._site.timeout and not self._closing:
            self._set_timer(self._site.timeout, self._stalled)

    def resumeProducing(self) -> None:
        self._backlog.resume()
        if self._upgraded is not None:
            self._upgraded.resume()
        elif not self._closing:
            self._cancel_timer()
            if self._h11.their_state is h11.IDLE:
                self._expect_request()
            self._serve()

    def stopProducing(self) -> None:
        pass



class HTTPFactory(Site):
    """Serves its routes (`realm.routes.Site`) with a `Channel` a connection.

    Another module adds a route with `factory.add("/path", handler)`.
    """

    def buildProtocol(self, addr: object) -> Channel:
        channel = Channel(self)
        channel.factory = self
        return channel
