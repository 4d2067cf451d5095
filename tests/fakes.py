"""Fakes shared by the tests: an in-memory transport for those that drive a
`realm.protocol.StreamLink` directly, and the checker `--auth memory:...` makes."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python import failure

from realm.tap import Options

SECRET = "Dragonglass-7"


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


def memory_checker(secret: str = SECRET) -> Any:
    """The checker twistd's `--auth memory:lord:SECRET` makes."""
    config = Options()
    config.parseOptions(["--auth", f"memory:lord:{secret}"])
    return config["credCheckers"][0]
