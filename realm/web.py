"""The web client: its page at `/` and a WebSocket at `/ws`.

A WebSocket member is a `Session` like a TCP one: every rule lives there.
This module only turns messages into lines and back:

    client -> server   one text message = one line, without a delimiter;
                       a message holding CR or LF, and any binary message,
                       is refused with `*** Error: ` (the session stays open);
                       invalid UTF-8 closes with 1007 (wsproto does that).
    server -> client   each CRLF line the session sends becomes one text
                       message, without its CRLF.

The handshake is refused with HTTP 403 when its `Origin` is not the page's
own (the `Host` it was asked for); a handshake without `Origin` is not
from a browser and is accepted.  The page and its files are package data
in `realm/static/`, served with a Content-Security-Policy that allows
nothing from any other origin.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from realm import wire
from realm.gate import Refused
from realm.link import Backlog
from realm.server import RealmServer
from realm.session import Session

MAX_LINE = wire.MAX_LINE

log = Logger()

# Bytes a client may send towards one message before it is delivered: a
# line is at most MAX_LINE bytes, so anything far beyond is not a line.
# Twisted buffers a fragmented message whole; this keeps that bounded.
MAX_MESSAGE = 16 * MAX_LINE

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self'; connect-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
STATIC = {  # path under / -> (file in realm/static, content type)
    b"": ("index.html", b"text/html; charset=utf-8"),
    b"app.js": ("app.js", b"text/javascript; charset=utf-8"),
    b"style.css": ("style.css", b"text/css; charset=utf-8"),
    b"favicon.svg": ("favicon.svg", b"image/svg+xml"),
}


@implementer(IPushProducer)
class WebSession:
    """A session over a WebSocket: Twisted's `WebSocketProtocol` shape."""

    transport: WebSocketTransport | None = None

    def __init__(self, server: RealmServer, request: Request) -> None:
        self.session = Session(server, self)
        self._backlog = Backlog(server.settings.max_queue)
        peer = request.getClientAddress()
        self.address = self.session.address = getattr(peer, "host", None) or str(peer)
        self._request = request
        self._stream = request.channel.transport  # the TCP (or TLS) link
        self._closing = False
        self._unread = 0  # bytes received since the last whole message

    # -- WebSocketProtocol ---------------------------------------------------
    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport
        self._guard_size()

    def negotiationFinished(self) -> None:
        # The upgrade request never finishes, so the HTTP channel passes
        # the link's pause/resume on to the request's producer: us.
        self._request.registerProducer(self, True)
        no_delay = getattr(self._stream, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self.session.opened()

    def textMessageReceived(self, message: str) -> None:
        self._unread = 0
        if self._closing:
            return  # --leave, dismissed, dropped: read nothing more
        if "\r" in message or "\n" in message:
            self.session.refuse(Refused("one_line", wire.ONE_LINE.notice()))
            return
        self.session.line_received(message.encode("utf-8"))

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._unread = 0
        if self._closing:
            return
        self.session.refuse(Refused("binary", wire.BINARY.notice()))

    def pongReceived(self, payload: bytes) -> None:
        pass

    def pauseProducing(self) -> None:
        self._backlog.pause()

    def resumeProducing(self) -> None:
        self._backlog.resume()

    def stopProducing(self) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self._closing = True
        self.session.lost()

    # -- Session's transport side --------------------------------------------
    def send(self, data: bytes) -> None:
        if self._closing or self.transport is None:
            return
        if self._backlog.paused and self._backlog.over(len(data), self.address):
            self.abort()
            return
        for line in data.split(b"\r\n")[:-1]:
            try:
                self.transport.sendTextMessage(line.decode("utf-8", "replace"))
            except LocalProtocolError:
                # The peer has closed; connectionLost is on its way.
                self._closing = True
                return

    def close(self) -> None:
        self._hang_up(1000)

    def abort(self) -> None:
        self._closing = True
        self._stream.abortConnection()  # type: ignore[union-attr]

    def _hang_up(self, code: int) -> None:
        """Send a Close frame with `code`, then close the link."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        try:
            self.transport.loseConnection(code)
        except LocalProtocolError:  # the peer closed first
            self._stream.loseConnection()  # type: ignore[union-attr]
        self._release()

    def _release(self) -> None:
        """Let a closing link close.

        The HTTP channel stays the link's producer after the upgrade, and
        TLS shuts down only once its producer is gone: without this, a
        close over `ssl:` would wait for the browser to hang up.
        """
        self._stream.unregisterProducer()  # type: ignore[union-attr]

    # -- a bound on what a client may send towards one message ---------------
    def _guard_size(self) -> None:
        """Count the bytes fed to the WebSocket parser between messages.

        Twisted delivers a message only once all its fragments have come,
        buffering them without limit; a client sending one endless message
        is closed with 1009 (message too big) instead.
        """
        channel = self._request.channel
        parse = channel.dataReceived  # the WebSocket parser, since the upgrade

        def received(data: bytes) -> None:
            if self._closing:
                return
            self._unread += len(data)
            if self._unread > MAX_MESSAGE:
                log.info("Closed {address}: a message over {limit} bytes",
                         address=self.address, limit=MAX_MESSAGE)
                self.send(wire.FAR_TOO_LONG.notice())
                self._hang_up(1009)
                return
            parse(data)
            if self._stream.disconnecting:  # type: ignore[union-attr]
                # The peer sent Close and Twisted answered it: hang up.
                self._closing = True
                self._release()

        channel.dataReceived = received  # type: ignore[method-assign]


class RealmWebSocket(WebSocketResource):
    """`/ws`: the WebSocket, for pages served from this same origin."""

    def __init__(self, server: RealmServer) -> None:
        super().__init__(self)  # this resource is its own protocol factory
        self.realm_server = server

    def buildProtocol(self, request: Request) -> WebSession:
        return WebSession(self.realm_server, request)

    def render_GET(self, request: Request) -> bytes | int:
        if not same_origin(request):
            log.info("Refused a WebSocket from {address}: Origin {origin!r} "
                     "is not this page's", address=getattr(request.getClientAddress(), "host", "?"),
                     origin=request.getHeader("origin"))
            request.setResponseCode(403)
            request.setHeader("content-type", "text/plain; charset=utf-8")
            return b"Forbidden: this WebSocket serves pages of its own origin.\n"
        return super().render_GET(request)


def same_origin(request: Request) -> bool:
    """True without an `Origin` (not a browser) or when it names `Host`."""
    origin = request.getHeader("origin")
    if origin is None:
        return True
    host = request.getHeader("host")
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (host is not None and parts.scheme in ("http", "https")
            and parts.netloc.lower() == host.strip().lower())


class StaticFile(Resource):
    """One file of `realm/static`, read once, served with strict headers."""

    isLeaf = True

    def __init__(self, name: str, content_type: bytes) -> None:
        super().__init__()
        self.body = resources.files("realm").joinpath("static", name).read_bytes()
        self.content_type = content_type

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"content-security-policy", CSP.encode("ascii"))
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"no-cache")
        return self.body


class Root(Resource):
    """`/`: the page, its files and `/ws`; nothing else."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return notFound()


def site(server: RealmServer) -> Site:
    """The web client's site: the page, its files and `/ws`."""
    root = Root()
    for path, (name, content_type) in STATIC.items():
        root.putChild(path, StaticFile(name, content_type))
    root.putChild(b"ws", RealmWebSocket(server))
    web = Site(root)
    web.displayTracebacks = False
    return web
