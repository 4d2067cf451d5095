"""`--listen haproxy:...`: connections that begin with a PROXY protocol
header, the player's own address in it.

A load balancer that passes the client's address (HAProxy's `send-proxy`
or `send-proxy-v2`) sends, before any byte of the client's, a header:
v1 is a text line (`PROXY TCP4 192.0.2.7 10.0.0.1 40001 2345\\r\\n`), v2 a
binary block (12 signature bytes, a version/command byte, a family byte,
a length, the addresses).  realm counts and admits a connection by its
address the moment it is connected, and greets it at once (a player on
`nc` sends nothing before the greeting), so `HeaderFirst` holds the
wrapped protocol back until the header is read: realm's link is
connected once, with the player's address.  A connection whose header
does not come within `HEADER_TIMEOUT` seconds, or is not a PROXY header,
is dropped before realm sees it.  A v2 `LOCAL` header (the balancer's
own health check) keeps the balancer's address.

Twisted's public `proxyEndpoint` (`haproxy:` endpoints) connects the
wrapped protocol before the header is read, and the rest of its support
is private, so realm parses the header itself (the format is small and
fixed: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt)
on `twisted.protocols.policies`' public wrapper.

`listening(description)` turns `haproxy:tcp:2346` into the endpoint under
it (`tcp:2346`), or None for any other description.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    ITransport,
)
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from realm.quiet import Quiet

log = Logger()

#: Seconds a connection has to send its PROXY header.
HEADER_TIMEOUT = 10.0
PREFIX = "haproxy:"
V1 = b"PROXY "
V1_MOST = 107  # the longest v1 line, CRLF included
V2 = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MOST = 16 + 216  # a v2 header with the longest address block we take


class BadHeader(Exception):
    """Not a PROXY protocol header."""


def listening(description: str) -> str | None:
    """The endpoint under a `haproxy:` description, or None."""
    if description.lower().startswith(PREFIX):
        return description[len(PREFIX):]
    return None


def parse(data: bytes) -> tuple[IAddress | None, int] | None:
    """(the client's address, or None to keep the connection's own; the
    header's length), or None if more bytes are needed; `BadHeader` if
    `data` does not begin with a PROXY header."""
    if data.startswith(V2[:len(data)]) and len(data) < 16:
        return None
    if data.startswith(V2):
        return _v2(data)
    if V1.startswith(data[:len(V1)]):
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) >= V1_MOST:
                raise BadHeader("a v1 header without its end")
            return None
        return _v1(data[:end].decode("ascii", "replace")), end + 2
    raise BadHeader("no PROXY header")


def _v1(line: str) -> IAddress | None:
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return None
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise BadHeader(f"a bad v1 header: {line[:60]!r}")
    version = 4 if parts[1] == "TCP4" else 6
    try:  # both ends as the spec has them: the family's addresses, no zone, ports
        ends = {ipaddress.ip_address(parts[2]).version, ipaddress.ip_address(parts[3]).version}
    except ValueError:
        ends = set()
    if (ends != {version} or "%" in parts[2] + parts[3]
            or not all(p.isdigit() and int(p) < 65536 for p in parts[4:])):
        raise BadHeader(f"a bad v1 address: {line[:60]!r}")
    kind = IPv4Address if version == 4 else IPv6Address
    return kind("TCP", str(ipaddress.ip_address(parts[2])), int(parts[4]))


def _v2(data: bytes) -> tuple[IAddress | None, int] | None:
    version, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if version >> 4 != 2 or version & 0x0F not in (0, 1):
        raise BadHeader("a bad v2 version or command")
    if 16 + length > V2_MOST:
        raise BadHeader("a v2 header too long")
    if len(data) < 16 + length:
        return None
    block = data[16:16 + length]
    if version & 0x0F == 0:  # LOCAL: the balancer itself
        return None, 16 + length
    if family in (0x11, 0x21) and length < (12 if family == 0x11 else 36):
        raise BadHeader("a v2 header shorter than its addresses")
    if family == 0x11:  # TCP over IPv4
        return IPv4Address("TCP", str(ipaddress.IPv4Address(block[:4])),
                           struct.unpack("!H", block[8:10])[0]), 16 + length
    if family == 0x21:  # TCP over IPv6
        return IPv6Address("TCP", str(ipaddress.IPv6Address(block[:16])),
                           struct.unpack("!H", block[32:34])[0]), 16 + length
    return None, 16 + length  # another family (UNIX, UDP): the connection's own


@implementer(IHalfCloseableProtocol)
class HeaderFirst(ProtocolWrapper):
    """A PROXY protocol connection whose wrapped protocol is connected only
    once the header has told who is at the other end.  A client's
    half-close reaches a wrapped protocol that takes it (the web's: it
    answers, then closes), as it would without the balancer."""

    factory: HeaderFirstFactory
    _peer: IAddress | None = None
    _timer: IDelayedCall | None = None
    _connected = False

    def makeConnection(self, transport: ITransport) -> None:
        # As ProtocolWrapper's, but the wrapped protocol waits for the header.
        directlyProvides(self, providedBy(transport))
        self.connected = 1
        self.transport = transport
        self.factory.registerProtocol(self)
        self._data = b""
        self._timer = self.factory.clock.callLater(HEADER_TIMEOUT, self._no_header)

    def dataReceived(self, data: bytes) -> None:
        if self._connected:
            self.wrappedProtocol.dataReceived(data)
            return
        self._data += data
        try:
            found = parse(self._data)
        except BadHeader as e:
            self._tell("proxy_bad_header", "Dropped a connection from {peer}: {why}", why=e)
            self._cancel()
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if found is None:
            return
        self._peer, length = found
        rest, self._data = self._data[length:], b""
        self._cancel()
        self._connected = True
        self.wrappedProtocol.makeConnection(self)  # type: ignore[arg-type]  # a transport, as in policies
        if rest and self._connected:
            self.wrappedProtocol.dataReceived(rest)

    def getPeer(self) -> IAddress:
        return self._peer or self.transport.getPeer()  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        wrapped = self.wrappedProtocol
        if self._connected and IHalfCloseableProtocol.providedBy(wrapped):
            wrapped.readConnectionLost()
        else:  # what Twisted does for a protocol that cannot be half-closed
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        if self._connected and IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.writeConnectionLost()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()
        self.factory.unregisterProtocol(self)
        if self._connected:
            self.wrappedProtocol.connectionLost(reason)  # type: ignore[arg-type]

    def _no_header(self) -> None:
        self._timer = None
        self._tell("proxy_no_header", "Dropped a connection from {peer}: no PROXY protocol "
                   "header in {s:g} s", s=HEADER_TIMEOUT)
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _tell(self, kind: str, format: str, **fields: object) -> None:
        """Log a dropped connection: one line of a `kind` a minute (realm.quiet)."""
        self.factory.quiet.log(self.factory.clock, kind, log.info, format,
                               peer=self.transport.getPeer(), **fields)  # type: ignore[union-attr]

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class HeaderFirstFactory(WrappingFactory):
    """Wraps a factory's protocols in `HeaderFirst`."""

    noisy = False  # no "Starting factory" line: realm logs what it serves, where

    protocol = HeaderFirst

    def __init__(self, wrapped: Any, clock: Any) -> None:
        super().__init__(wrapped)
        self.clock = clock
        # The wrapped factory's (the server's, told at its stop), else its own.
        self.quiet: Quiet = getattr(wrapped, "quiet", None) or Quiet()

    def logPrefix(self) -> str:
        return f"{type(self.wrappedFactory).__name__} (PROXY)"
