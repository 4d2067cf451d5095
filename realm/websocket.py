"""A session's lines over a WebSocket: wsproto frames, our own bytes.

`WebSocketLink` is the `realm.link.Link` of one browser, made when
`realm.web`'s `/ws` switches an HTTP connection (a `realm.http.Channel`)
to the WebSocket.  Every byte in and out passes here:

    client -> server   one text message = one line, without a delimiter;
                       a message holding CR or LF is refused (`wire.ONE_LINE`),
                       a binary message too (`wire.BINARY`), and a message
                       over 1024 bytes (`LINE_TOO_LONG`, as over TCP: the rest
                       of it is read and dropped as it comes, never held);
                       the session stays; invalid UTF-8 closes with 1007
                       (wsproto finds it, also in what is dropped).
    server -> client   each CRLF line the session sends is one text message.
    control frames     a Ping is answered with a Pong, through the same
                       counted path as lines, at most `--max-rate` a second
                       (bursts of twice that; beyond it pings are ignored);
                       a Close is answered, then the connection closes.

Like `realm.protocol.StreamLink`, the link is told when its transport's
buffer is full (`pause`) and empty again (`resume`): every byte queued
meanwhile, lines and control frames alike, counts toward its `Backlog`,
and past `Settings.max_queue` bytes (256 KiB; `twistd realm` has no option
to change it) the client is dropped.  `close()` sends a Close frame, then
the channel half-closes and aborts after `CLOSE_GRACE`.  No extension is
accepted (no compression).
"""

from __future__ import annotations

from twisted.logger import Logger
from wsproto import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from realm import wire
from realm.gate import LINE_TOO_LONG, Gate, Refused
from realm.link import Backlog
from realm.routes import Connection as Channel
from realm.server import RealmServer
from realm.session import Session

log = Logger()

NORMAL = 1000
ONE_LINE = Refused("one_line", wire.ONE_LINE.notice())
BINARY = Refused("binary", wire.BINARY.notice())
OPEN = ConnectionState.OPEN


class WebSocketLink:
    """One browser's WebSocket: frames to lines, lines to frames."""

    kind = "websocket"  # for the metrics

    def __init__(self, server: RealmServer, channel: Channel, ws: Connection) -> None:
        self.channel = channel  # the HTTP connection it was switched from
        self.address = channel.address
        self.clock = server.clock
        self._ws = ws
        self._backlog = Backlog(server.settings.max_queue)
        # Pings are not lines, but a flood of them costs as much: their own
        # bucket, at the rate lines have.
        self._pings = Gate(server.settings.max_rate, self.clock.seconds())
        self._pings_ignored = 0
        self._parts: list[str] = []  # a text message's fragments so far
        self._size = 0  # bytes of the text message in progress
        self._dropping = False  # the rest of a message refused as too long
        self._closing = False  # no line in or out any more
        self._failed = False  # a broken stream: nothing more is read
        self.session = Session(server, self)
        self.session.opened()

    # -- bytes in (realm.http.Upgraded) ---------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        try:
            self._ws.receive_data(data)
        except LocalProtocolError:  # data after the closing handshake
            return
        for event in self._ws.events():
            kind = event.__class__
            if kind is TextMessage:
                self._text(event)  # type: ignore[arg-type]
            elif kind is BytesMessage:
                self._bytes(event)  # type: ignore[arg-type]
            elif kind is Ping:
                self._ping(event)  # type: ignore[arg-type]
            elif kind is CloseConnection:
                self._close_received(event)  # type: ignore[arg-type]
            if self._failed:
                return

    def _text(self, event: TextMessage) -> None:
        if event.message_finished and not self._parts and not self._dropping:
            self._line(event.data, event.data.encode("utf-8"))  # one frame: the usual case
            return
        if not self._dropping:
            # An empty fragment counts as a byte: a message of endless empty
            # continuation frames is over-long too, not a list that grows.
            self._size += len(event.data.encode("utf-8")) or 1
            if self._size <= wire.MAX_LINE:
                if event.data:
                    self._parts.append(event.data)
            else:
                self._parts, self._dropping = [], True
                if not self._closing:
                    self.session.refuse(LINE_TOO_LONG)
        if event.message_finished:
            text = "".join(self._parts)
            dropped = self._dropping
            self._parts, self._size, self._dropping = [], 0, False
            if not dropped:
                self._line(text, text.encode("utf-8"))

    def _line(self, text: str, raw: bytes) -> None:
        if self._closing:
            return  # --leave, dismissed, dropped: read nothing more
        if "\r" in text or "\n" in text:
            self.session.refuse(ONE_LINE)
        else:
            self.session.line_received(raw)  # the gate refuses one over 1024 bytes

    def _bytes(self, event: BytesMessage) -> None:
        if event.message_finished and not self._closing:
            self.session.refuse(BINARY)  # what came of it was never held

    def _ping(self, event: Ping) -> None:
        if self._closing or self._ws.state is not OPEN:
            return
        if isinstance(self._pings.check(b"", self.clock.seconds()), Refused):
            if not self._pings_ignored:
                self._tell("ws_pings", "Ignoring pings from {who}: more than {rate:g} a "
                           "second", rate=self._pings.rate)
            self._pings_ignored += 1
            return
        self._write(self._ws.send(event.response()))

    def _close_received(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:  # the client's Close: answer it
            self._closing = True
            self._write(self._ws.send(event.response()))
            self.channel.close()
        elif state is ConnectionState.CLOSED:  # the answer to ours
            self.channel.close()
        else:  # wsproto found the stream broken: 1002, 1007 (not UTF-8)...
            self._tell("ws_broken", "Closed {who}: {why} ({code})", why=event.reason,
                       code=event.code)
            self._fail(event.code, event.reason)

    def _fail(self, code: int, reason: str | None = None) -> None:
        """Close with `code` at once, reading nothing more."""
        if self._ws.state is OPEN:
            self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._failed = self._closing = True
        self.channel.close()

    # -- bytes out: realm.link.Link ---------------------------------------------------
    def send(self, data: bytes) -> None:
        if self._closing or self._ws.state is not OPEN:
            return
        ws = self._ws
        self._write(b"".join(ws.send(Message(data=line.decode("utf-8", "replace")))
                             for line in data.split(b"\r\n")[:-1]))

    def _write(self, data: bytes) -> None:
        """Every byte for the client, counted while its transport is full."""
        if self._backlog.paused and self._backlog.over(len(data), self._who()):
            self.abort()
            return
        self.channel.write(data)

    def close(self) -> None:
        """A Close frame (1000), then the channel closes."""
        if self._closing:
            return
        self._closing = True
        if self._ws.state is OPEN:
            self._write(self._ws.send(CloseConnection(code=NORMAL)))
        self.channel.close()

    def abort(self) -> None:
        self._closing = self._failed = True
        self.channel.abort()

    def _tell(self, kind: str, format: str, **fields: object) -> None:
        """Log what a client can cause as fast as it likes: one line of a
        `kind` a minute (realm.quiet)."""
        self.session.server.stats.quiet.log(self.clock, kind, log.info, format,
                                            who=self._who(), **fields)

    def _who(self) -> str:
        return f"{self.session.name or '-'} ({self.address})"

    # -- the transport's flow, and its end --------------------------------------------
    def pause(self) -> None:
        self._backlog.pause()

    def resume(self) -> None:
        self._backlog.resume()

    def connection_lost(self) -> None:
        self._closing = self._failed = True
        self.session.lost()
