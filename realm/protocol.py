"""Bytes to lines over a stream transport (TCP, TLS, UNIX sockets).

Line grammar, client to server (UTF-8, `\\n` or `\\r\\n` ends a line):

    first line   NAME | NAME@REALM        (phase: naming)
    after `Lord` with --auth: PASSWORD    (phase: password)
    then         --COMMAND [ARGUMENT]     (see realm.commands)
               | TEXT                     chat, relayed as `NAME: TEXT`

Server to client: `*** ...` notices (`*** Error: ...`,
`*** [New Event] ...`) and `NAME: TEXT` chat, each ending `\\r\\n`
(realm.wire has every one).

Telnet commands are removed before lines are split (realm.telnet).  A
line over 1024 bytes is refused and skipped up to its end, and the next
line (even in the same packet) is handled.

`StreamLink` is the `realm.link.Link` of one such connection: it carries
a `realm.session.Session`'s lines, bounds what it queues for a client
that stops reading, gives a TLS handshake `HANDSHAKE_TIMEOUT` seconds,
and aborts a close that cannot finish within `CLOSE_GRACE`.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from realm import wire
from realm._direct import call_soon, direct_writer
from realm.gate import LINE_TOO_LONG
from realm.link import CLOSE_GRACE, HANDSHAKE_TIMEOUT, Backlog, address_of
from realm.server import RealmServer
from realm.session import Session
from realm.telnet import TelnetFilter

log = Logger()

HOLD = 16  # lines held for one member before they go out anyway


class Outbox:
    """Links with lines held, sent once the reactor has handled the events
    in hand (`realm._direct.call_soon`, no wait): under load every line a
    member gets in one turn leaves in one send."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._links: list[StreamLink] = []

    def hold(self, link: StreamLink) -> None:
        if not self._links:
            call_soon(self.clock, self.flush)
        self._links.append(link)

    def flush(self) -> None:
        links, self._links = self._links, []
        for link in links:
            link.flush()


@implementer(IPushProducer, IHandshakeListener)
class StreamLink(Protocol):
    """One `nc`, telnet, PuTTY, realm-client or TLS connection."""

    address = "?"
    _direct: Callable[[bytes], None] | None = None  # see realm._direct
    _telnet: TelnetFilter | None = None
    _timer: IDelayedCall | None = None  # the handshake's or the close's deadline

    def __init__(self, server: RealmServer, outbox: Outbox) -> None:
        self.server = server
        self.clock = server.clock
        self._outbox = outbox
        self._buffer = b""
        self._discarding = False  # skipping the rest of an over-long line
        self._held: list[bytes] = []
        self._backlog = Backlog(server.settings.max_queue)
        self._closing = False
        self.session = Session(server, self)

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        no_delay = getattr(transport, "setTcpNoDelay", None)  # TLS passes it on
        if no_delay is not None:
            try:
                no_delay(True)  # Nagle would add ~40 ms to every exchange
            except OSError:
                pass  # a UNIX socket
        peer = transport.getPeer()
        self.address = self.session.address = address_of(transport)
        transport.registerProducer(self, True)  # type: ignore[attr-defined]
        self._direct = direct_writer(transport)
        if ISSLTransport.providedBy(transport):
            self.session.kind = "tls"
            self._timer = self.clock.callLater(HANDSHAKE_TIMEOUT, self._no_handshake)
        elif isinstance(peer, UNIXAddress):
            self.session.kind = "unix"
        self.session.opened()

    def handshakeCompleted(self) -> None:
        if self._timer is not None and self._timer.active() and not self._closing:
            self._timer.cancel()
            self._timer = None

    def _no_handshake(self) -> None:
        log.info("Dropped {address}: no TLS handshake in {s:g} s",
                 address=self.address, s=HANDSHAKE_TIMEOUT)
        self.abort()

    # -- bytes in ------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if b"\xff" in data or self._telnet is not None:
            data = self._untelnet(data)
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        line_received = self.session.line_received
        for line in lines:
            if self._closing:  # --leave, dismissed, dropped: read nothing more
                return
            if self._discarding:
                self._discarding = False
                continue
            if line[-1:] == b"\r":
                line = line[:-1]
            line_received(line)
        if len(self._buffer) > wire.MAX_LINE + 1:  # + 1 for a CR still to come
            if not self._discarding:
                self._discarding = True
                self.session.refuse(LINE_TOO_LONG)
            self._buffer = b""

    def _untelnet(self, data: bytes) -> bytes:
        """`data` without telnet commands; answer them as realm.telnet says."""
        if self._telnet is None:
            self._telnet = TelnetFilter()
        data, answers = self._telnet.feed(data)
        if answers and not self._closing:
            self.flush()
            self.transport.write(answers)  # type: ignore[union-attr]
        return data

    # -- bytes out: realm.link.Link --------------------------------------------
    def send(self, data: bytes) -> None:
        if self._closing:
            return
        if self._backlog.paused and self._backlog.over(len(data), self._who()):
            self.abort()
            return
        if self._direct is None:  # TLS, or a test's transport
            self.transport.write(data)  # type: ignore[union-attr]
            return
        held = self._held
        if not held:
            self._outbox.hold(self)
        held.append(data)
        if len(held) >= HOLD:
            self.flush()

    def flush(self) -> None:
        """Send the held lines in one write."""
        if self._held:
            data = b"".join(self._held)
            self._held = []
            if self._direct is not None:
                self._direct(data)

    def close(self) -> None:
        if self._closing:
            return
        self.flush()  # the last lines go before the goodbye
        self._closing = True
        transport = self.transport
        assert transport is not None
        # TLS closes only once its producer is gone: unregister us first.
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.clock.callLater(CLOSE_GRACE, self._close_stuck)

    def _close_stuck(self) -> None:
        log.info("Aborted {who}: closing took over {s:g} s", who=self._who(), s=CLOSE_GRACE)
        self._timer = None
        self.transport.abortConnection()  # type: ignore[union-attr]

    def abort(self) -> None:
        self._closing = True
        self._direct = None  # write nothing more
        self._held = []
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _who(self) -> str:
        return f"{self.session.name or '-'} ({self.address})"

    # -- a client that stops reading: IPushProducer ----------------------------
    def pauseProducing(self) -> None:
        self._backlog.pause()

    def resumeProducing(self) -> None:
        self._backlog.resume()

    def stopProducing(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        self._direct = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.session.lost()


class RealmFactory(Factory):
    """Makes a `StreamLink` per connection, all sharing one server."""

    noisy = False  # no "Starting factory" line: realm logs what it serves, where

    def __init__(self, server: RealmServer) -> None:
        self.server = server
        self.quiet = server.stats.quiet  # for realm.proxied's log lines
        self.outbox = Outbox(server.clock)

    def buildProtocol(self, addr: object) -> StreamLink:
        link = StreamLink(self.server, self.outbox)
        link.factory = self
        return link
