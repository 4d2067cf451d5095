"""In-memory fakes shared by the tests that drive `RealmProtocol` directly."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python import failure


class Transport(StringTransport):
    """A `StringTransport` from `host` whose closing reaches the protocol, once."""

    def __init__(self, host: str) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, 40000))
        self.closed = False

    def loseConnection(self) -> None:
        self.disconnecting = True
        if not self.closed:
            self.closed = True
            self.protocol.connectionLost(failure.Failure(ConnectionError()))

    abortConnection = loseConnection
