"""Write straight to an idle TCP socket: the one place realm reads
Twisted's private state.

Twisted's `write()` queues, then has the reactor watch the socket until
the queue is flushed: two `epoll_ctl` calls and a callback per flush, a
large part of a busy server's CPU (bench/RESULTS.md).  When nothing is
queued for a connection, `direct_writer`'s function sends straight to the
socket (`getHandle()`, public) as asyncio would, and queues with
`write()` only what the kernel did not take.  Players' lines go so
(realm.protocol), and the messages between cluster processes
(realm.redis).

Whether anything is queued is not public API: it is read from
`FileDescriptor.dataBuffer` and `_tempDataLen`.  At import this module
checks that a `FileDescriptor` has them; when a Twisted release renames
them, `AVAILABLE` is False and `direct_writer` returns None, so every
line goes through `write()`: slower, never wrong.  tests/test_direct.py
checks both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import abstract, tcp


def _has_queue_state(kind: type = abstract.FileDescriptor) -> bool:
    """Whether a `kind` instance shows its queue as realm reads it."""
    try:
        probe = kind(reactor=object())
    except Exception:  # an unknown constructor: assume the worst
        return False
    return (isinstance(getattr(probe, "dataBuffer", None), bytes)
            and isinstance(getattr(probe, "_tempDataLen", None), int))


AVAILABLE = _has_queue_state()


def direct_writer(transport: Any) -> Callable[[bytes], None] | None:
    """A `send(data)` for `transport` that skips the queue when it is empty,
    or None when `transport` is not a plain TCP connection (TLS, a test's)
    or this Twisted does not show its queue."""
    if not AVAILABLE or not isinstance(transport, tcp.Connection):
        return None
    sock = transport.getHandle()
    write = transport.write

    def send(data: bytes) -> None:
        if not transport.dataBuffer and not transport._tempDataLen and not transport.disconnecting:
            try:
                sent = sock.send(data)
            except OSError:  # full, or gone: write() queues it, or finds out
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        write(data)

    return send
