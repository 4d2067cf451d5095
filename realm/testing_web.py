"""The web port's side of realm's test kit (realm.testing has the rest).

- `WebSocketClient`: a WebSocket client on wsproto, able to send what a
  browser never would; `RawClient` for plain HTTP bytes.
- `attach(port, client, rcvbuf=, source=)`: a loopback connection; a small
  receive buffer makes a client that stops reading fill up quickly.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

import wsproto.events as wse
from twisted.internet import defer, protocol
from twisted.python.failure import Failure
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState

from realm.testing import _WAITERS, WAIT, _wake, bounded


def attach(port: int, client: protocol.Protocol, rcvbuf: int | None = None,
           source: str | None = None) -> defer.Deferred[Any]:
    """Connect `client` to 127.0.0.1:`port`, from the loopback address
    `source` if given; with `rcvbuf`, its socket's receive buffer is that
    small from before the handshake (the window stays small)."""
    from twisted.internet import endpoints, reactor

    if rcvbuf is None:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port,
                                                bindAddress=(source, 0) if source else None)
        return bounded(endpoints.connectProtocol(endpoint, client), "a connection")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reactor.adoptStreamConnection(  # type: ignore[attr-defined]
        sock.fileno(), socket.AF_INET, protocol.Factory.forProtocol(lambda: client))
    sock.close()  # the reactor holds its own copy
    return defer.succeed(client)


class _Heard(protocol.Protocol):
    """A client whose `until` is checked whenever any client hears anything."""

    gone = False

    def until(self, test: Callable[[], Any], what: str) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if test():
            d.callback(None)
        else:
            _WAITERS.append((test, d))
        return bounded(d, what)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.gone = True
        _wake()


class RawClient(_Heard):
    """Bytes over a real socket: what it sent is up to the test."""

    def __init__(self, first: bytes = b"") -> None:
        self.first = first
        self.data = b""

    def connectionMade(self) -> None:
        if self.first:
            self.transport.write(self.first)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        _wake()


class WebSocketClient(_Heard):
    """A WebSocket client on wsproto, keeping every message it receives.

    `origin` None sends no `Origin`; `hang_up` closes the TCP connection on
    a Close frame (else the server must)."""

    def __init__(self, host: str, origin: str | None, hang_up: bool = True,
                 target: str = "/ws") -> None:
        self.host, self.origin, self.hang_up, self.target = host, origin, hang_up, target
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[str | bytes] = []
        self.status: int | None = None  # of a refused handshake
        self.accepted = False
        self.close_code: int | None = None
        self.pongs = 0
        self._text = ""

    def connectionMade(self) -> None:
        headers = [(b"origin", self.origin.encode())] if self.origin else []
        self.transport.write(self.ws.send(  # type: ignore[union-attr]
            wse.Request(host=self.host, target=self.target, extra_headers=headers)))

    def dataReceived(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, wse.AcceptConnection):
                self.accepted = True
            elif isinstance(event, wse.RejectConnection):
                self.status = event.status_code
            elif isinstance(event, wse.TextMessage):
                self._text += event.data
                if event.message_finished:
                    self.messages.append(self._text)
                    self._text = ""
            elif isinstance(event, wse.BytesMessage):
                self.messages.append(bytes(event.data))
            elif isinstance(event, wse.CloseConnection):
                self.close_code = event.code
                if self.ws.state is not ConnectionState.CLOSED:
                    self.write(event.response())
                if self.hang_up:
                    self.transport.loseConnection()  # type: ignore[union-attr]
            elif isinstance(event, wse.Pong):
                self.pongs += 1
        _wake()

    def write(self, event: Any) -> None:
        self.transport.write(self.ws.send(event))  # type: ignore[union-attr]

    def say(self, text: str | bytes) -> None:
        """A text message, or a binary one."""
        self.write(wse.Message(data=text))

    def close_tab(self) -> None:
        """What a browser does when its tab is closed: close 1001."""
        self.write(wse.CloseConnection(code=1001))

    def texts(self) -> list[str]:
        return [m for m in self.messages if isinstance(m, str)]

    def line(self, pattern: str) -> defer.Deferred[None]:
        """Until a text message matches `pattern`."""
        regex = re.compile(pattern)
        return self.until(lambda: any(regex.search(m) for m in self.texts()),
                          f"a message matching {pattern!r}; got {self.messages[-5:]!r}")
