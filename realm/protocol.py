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
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from realm.server import RealmServer
from realm.session import MAX_LINE, Session


class RealmProtocol(LineOnlyReceiver, Session):
    """A session over a byte stream: `nc`, `realm-client`, TLS."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, server: RealmServer) -> None:
        Session.__init__(self, server)
        self._discarding = False  # skipping the rest of an over-long line
        self._tcp: tcp.Connection | None = None  # a plain TCP socket: see send()

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
        """Write `data`: straight to the socket when nothing is queued.

        Twisted's `write()` always queues, then has the reactor watch the
        socket until the queue is flushed: two `epoll_ctl` calls and a
        callback per write, a fifth of the server's CPU in the benchmark
        (bench/RESULTS.md).  Like asyncio, a line for a plain TCP socket
        with nothing queued goes out at once; whatever the kernel does not
        take, and every line after it until the queue is flushed, is
        queued by `write()` as before.  The queue's attributes are not
        public API: tests/test_faults.py checks the hand-over both ways.
        """
        if self.paused and self.stalled(len(data)):
            return
        direct = self._tcp
        if (direct is not None and not direct.dataBuffer and not direct._tempDataLen
                and not direct.disconnecting):
            try:
                sent = direct.socket.send(data)
            except OSError:  # full, or gone: write() queues it, or finds out
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        self.transport.write(data)  # type: ignore[union-attr]

    def abort(self) -> None:
        self._tcp = None  # write nothing more
        self.transport.abortConnection()  # type: ignore[union-attr]

    def close(self) -> None:
        transport = self.transport
        assert transport is not None
        if transport.disconnecting:  # type: ignore[attr-defined]
            return  # closing already
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

    def buildProtocol(self, addr: object) -> RealmProtocol:
        return RealmProtocol(self.server)
