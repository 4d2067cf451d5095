"""Bytes to lines over a stream transport (TCP, TLS, UNIX sockets).

Line grammar, client to server (UTF-8, `\\n` or `\\r\\n` ends a line):

    first line   NAME | NAME@REALM        (phase: naming)
    after `Lord` with --auth: PASSWORD    (phase: password)
    then         --COMMAND [ARGUMENT]     (see realm.commands)
               | TEXT                     chat, relayed as `NAME: TEXT`

Server to client: `*** ...` notices (`*** Error: ...`,
`*** [New Event] ...`) and `NAME: TEXT` chat, each ending `\\r\\n`.

A line over 1024 bytes is refused and skipped up to its end, and the
next line (even in the same packet) is handled: `LineOnlyReceiver`'s own
`dataReceived` would drop the rest of the packet, so this protocol
splits lines itself.
"""

from __future__ import annotations

from twisted.internet import tcp
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from realm.server import RealmServer
from realm.session import MAX_LINE, Session

HOLD = 16  # lines held for one member before they go out anyway


class Outbox:
    """Members with lines held for plain TCP sockets, sent once a turn.

    Twisted's `write()` queues, then has the reactor watch the socket
    until the queue is flushed: two `epoll_ctl` calls and a callback per
    flush, a large part of a busy server's CPU (bench/RESULTS.md).  Here
    `send()` holds a member's lines until the reactor has handled the
    events in hand (a `callLater(0)`, no wait), then writes them in one
    send straight to the socket, as asyncio would; only what the kernel
    does not take goes through `write()`.  Under load every line a
    member gets in one turn leaves in one send; an idle server pays one
    more reactor turn per burst.  TLS and test transports get `write()`.
    """

    def __init__(self) -> None:
        self._members: list[RealmProtocol] = []

    def hold(self, member: RealmProtocol, reactor: IReactorTime) -> None:
        if not self._members:
            reactor.callLater(0, self.flush)
        self._members.append(member)

    def flush(self) -> None:
        members, self._members = self._members, []
        for member in members:
            member.flush()


class RealmProtocol(LineOnlyReceiver, Session):
    """A session over a byte stream: `nc`, `realm-client`, TLS."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, server: RealmServer, outbox: Outbox | None = None) -> None:
        Session.__init__(self, server)
        self._discarding = False  # skipping the rest of an over-long line
        self._outbox = outbox or Outbox()
        self._tcp: tcp.Connection | None = None  # a plain TCP socket: see Outbox
        self._held: list[bytes] = []

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        no_delay = getattr(transport, "setTcpNoDelay", None)  # TLS passes it on
        if no_delay is not None:
            no_delay(True)  # Nagle would add ~40 ms to every exchange
        peer = transport.getPeer()
        self.address = getattr(peer, "host", None) or str(peer)
        transport.registerProducer(self, True)  # type: ignore[attr-defined]
        if isinstance(transport, tcp.Connection):
            self._tcp = transport
        self.opened()

    def dataReceived(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        transport = self.transport
        for line in lines:
            # Closing (--leave, dismissed, dropped): read nothing more.
            if transport.disconnecting or self.dropped:  # type: ignore[union-attr]
                return
            if self._discarding:
                self._discarding = False
                continue
            if line[-1:] == b"\r":
                line = line[:-1]
            self.line_received(line)
        if len(self._buffer) > MAX_LINE + 1:  # + 1 for a CR still to come
            if not self._discarding:
                self._discarding = True
                self.refuse(f"Line too long; the limit is {MAX_LINE} bytes. "
                            "It was not sent.")
            self._buffer = b""

    def send(self, data: bytes) -> None:
        if self.paused and self.stalled(len(data)):
            return
        if self._tcp is None:  # TLS, or a test's transport
            self.transport.write(data)  # type: ignore[union-attr]
            return
        held = self._held
        if not held:
            self._outbox.hold(self, self._tcp.reactor)  # type: ignore[arg-type]
        held.append(data)
        if len(held) >= HOLD:
            self.flush()

    def flush(self) -> None:
        """Send the held lines: straight to the socket if nothing is queued.

        While the transport has anything queued, the lines queue behind
        it, or they would overtake it.  The queue's attributes are not
        public API: tests/test_faults.py checks the hand-over both ways.
        """
        if not self._held:
            return
        data = b"".join(self._held)
        self._held = []
        direct = self._tcp
        if direct is None:
            return  # lost, or dropped: nothing more goes out
        if not direct.dataBuffer and not direct._tempDataLen and not direct.disconnecting:
            try:
                sent = direct.socket.send(data)
            except OSError:  # full, or gone: write() queues it, or finds out
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        direct.write(data)

    def abort(self) -> None:
        self._tcp = None  # write nothing more
        self.transport.abortConnection()  # type: ignore[union-attr]

    def close(self) -> None:
        transport = self.transport
        assert transport is not None
        if transport.disconnecting:  # type: ignore[attr-defined]
            return  # closing already
        self.flush()  # the last lines go before the goodbye
        # TLS closes only once its producer is gone: unregister us first.
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._tcp = None
        self.lost()


class RealmFactory(Factory):
    """Makes a `RealmProtocol` per connection, all sharing one server."""

    def __init__(self, server: RealmServer) -> None:
        self.server = server
        self.outbox = Outbox()

    def buildProtocol(self, addr: object) -> RealmProtocol:
        return RealmProtocol(self.server, self.outbox)
