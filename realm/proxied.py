"""`--listen haproxy:...`: connections that begin with a PROXY protocol
header, the player's own address in it.

Twisted's `haproxy:` endpoint connects the wrapped protocol at once and
reads the header with the first bytes that come; until then `getPeer()`
is the proxy's address.  realm counts and admits a connection by its
address the moment it is connected (and greets it: a player on `nc` sends
nothing before the greeting), so with Twisted's wrapper every player
would be counted as HAProxy, and `--max-per-address` would refuse all but
a few.  `HeaderFirst` holds the wrapped protocol back until the header is
read: realm's link is connected once, with the player's address.  A
connection whose header does not come within `HEADER_TIMEOUT` seconds,
or is not a PROXY header, is dropped before realm sees it.

`listening(description)` turns `haproxy:tcp:2346` into the endpoint under
it (`tcp:2346`), or None for any other description.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, ITransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

# Twisted makes public only `proxyEndpoint`, which is what connects too soon;
# its wrapper is the one to build on (it parses the header, v1 and v2).
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper, HAProxyWrappingFactory
from twisted.python.failure import Failure

log = Logger()

#: Seconds a connection has to send its PROXY header.
HEADER_TIMEOUT = 10.0
PREFIX = "haproxy:"


def listening(description: str) -> str | None:
    """The endpoint under a `haproxy:` description, or None."""
    if description.lower().startswith(PREFIX):
        return description[len(PREFIX):]
    return None


class _Early(Protocol):
    """Stands in for the wrapped protocol until the header is read."""

    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data  # what came with the header's last bytes


class HeaderFirst(HAProxyProtocolWrapper):
    """A PROXY protocol connection whose wrapped protocol is connected only
    once the header has told who is at the other end."""

    _held: Any = None  # the wrapped protocol, until the header is read
    _early: _Early | None = None
    _timer: IDelayedCall | None = None

    def makeConnection(self, transport: ITransport) -> None:
        self._early = _Early()
        self._held, self.wrappedProtocol = self.wrappedProtocol, self._early
        super().makeConnection(transport)
        self._timer = self.factory.clock.callLater(HEADER_TIMEOUT, self._no_header)

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)  # parses the header, then passes lines on
        held = self._held
        if held is not None and self._proxyInfo is not None:
            early, self._held, self._early = self._early, None, None
            self._cancel()
            self.wrappedProtocol = held
            held.makeConnection(self)
            if early is not None and early.data:
                held.dataReceived(early.data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()
        super().connectionLost(reason)  # to _Early if the header never came

    def _no_header(self) -> None:
        self._timer = None
        assert self.transport is not None
        log.info("Dropped a connection from {peer}: no PROXY protocol header in {s:g} s",
                 peer=self.transport.getPeer(), s=HEADER_TIMEOUT)
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class HeaderFirstFactory(HAProxyWrappingFactory):
    """Wraps a factory's protocols in `HeaderFirst`."""

    protocol = HeaderFirst  # type: ignore[assignment]

    def __init__(self, wrapped: Any, clock: Any) -> None:
        super().__init__(wrapped)
        self.clock = clock
