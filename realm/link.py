"""What every link (TCP, TLS, WebSocket) owes its session and the server.

- `Link`: what a session needs of what carries its lines.
- `Backlog`: the bound on what is queued for a client that stopped
  reading.  A link is its transport's push producer: the transport says
  when its buffer is full (`pause`) and empty again (`resume`); every
  byte the link queues meanwhile counts (lines, and for a WebSocket its
  control frames too), and past `limit` the link drops the client, so a
  client that never reads cannot grow the server's memory.
- `CLOSE_GRACE`: how long a graceful close may take before it is cut
  (a TLS peer that never finishes its handshake never lets one finish).
- `address_of`: who is at the other end, as the limits per address count.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Protocol

from twisted.internet.address import UNIXAddress
from twisted.logger import Logger

log = Logger()

#: Seconds a graceful close may take before the connection is aborted.
CLOSE_GRACE = 10.0
#: Seconds a TLS client has to finish its handshake.
HANDSHAKE_TIMEOUT = 10.0


def address_of(transport: Any) -> str:
    """The peer's IP address; on a UNIX socket, its user (`local uid 1000`,
    from SO_PEERCRED), so each local user is counted apart, not every
    local client as one."""
    peer = transport.getPeer()
    if not isinstance(peer, UNIXAddress):
        return getattr(peer, "host", None) or str(peer)
    try:
        handle = transport.getHandle()
        _, uid, _ = struct.unpack("3i", handle.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except (AttributeError, OSError):  # not Linux, or not a socket
        return "local"
    return f"local uid {uid}"


class Link(Protocol):
    """What carries a session's lines: a TCP or TLS stream, a WebSocket."""

    address: str

    def send(self, data: bytes) -> None:
        """Send wire-ready CRLF lines."""

    def close(self) -> None:
        """Send what is queued, then close; abort if that cannot finish."""

    def abort(self) -> None:
        """Drop the connection now, whatever is queued."""


class Backlog:
    """Bytes queued for one client while its transport is full."""

    __slots__ = ("limit", "paused", "queued", "dropped")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.paused = False  # the transport's buffer is full
        self.queued = 0  # bytes queued since it filled
        self.dropped = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.queued = 0

    def over(self, size: int, who: str) -> bool:
        """Count `size` more bytes queued; True when the client must be dropped
        (then nothing more may be sent to it)."""
        if self.dropped:
            return True
        self.queued += size
        if self.queued <= self.limit:
            return False
        self.dropped = True
        log.warn("Dropped {who}: it stopped reading and {queued} bytes queued up",
                 who=who, queued=self.queued)
        return True
