"""The one place realm reads Twisted's private state, for measured gains
on every line: writing straight to an idle socket, handing a readable
socket to Twisted without a log context made for it, and sending a
turn's lines once the poll's events are handled, with no timer.

Writing.  Twisted's `write()` queues, then has the reactor watch the
socket until the queue is flushed: two `epoll_ctl` calls and a callback
per flush, a large part of a busy server's CPU (bench/RESULTS.md).  When
nothing is queued for a connection, `direct_writer`'s function sends
straight to the socket (`getHandle()`, public) as asyncio would, and
queues with `write()` only what the kernel did not take.  Players' lines
go so (realm.protocol), and the messages between cluster processes
(realm.redis).  Whether anything is queued is not public API: it is read
from `FileDescriptor.dataBuffer` and `_tempDataLen`.  At import this
module checks that a `FileDescriptor` has them; when a Twisted release
renames them, `AVAILABLE` is False and `direct_writer` returns None, so
every line goes through `write()`: slower, never wrong.

Reading.  For each socket a poll finds ready, the epoll reactor calls
`log.callWithLogger`, which copies a dict of the legacy log's context,
pushes and pops it, and asks the connection for its log prefix: about
2.6 µs an event, 8% of a busy server's CPU at R=100 (bench/RESULTS.md).  Only
the legacy `twisted.python.log` reads that context, for the system it
names; realm logs through `twisted.logger`, which never does.
`plain_dispatch` gives the reactor a poll that hands each ready socket
straight to the reactor's own `_doReadOrWrite`, which still catches and
logs what a read or write raises (with `-` for its system) and closes
that connection.  It does so only for the reactor class whose poll it
copies, with the attributes it reads; any other reactor is left as it is.

Calling soon.  The outbox (realm.protocol) sends the lines a turn held
once the reactor has handled the events in hand.  A `callLater(0)` does
that at the price of a DelayedCall made, sorted into the reactor's heap
and taken out again, every busy turn.  While the plain poll dispatches
its events, `call_soon` instead has the poll call it right after them:
the same moment, before the reactor's next turn; elsewhere (a timer, a
thread's result) it is `callLater(0)`.  The relay (realm.relay) waits
for one more look at the sockets, so that a round's answers leave in one
message: `call_soon(..., look_again=True)`, which the plain poll keeps
for after its next poll (and that poll does not wait), instead of two
nested `callLater(0)`s.

tests/test_direct.py checks each, each both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import abstract, tcp
from twisted.logger import Logger

try:
    from twisted.internet.epollreactor import EPollReactor as _EPoll
    EPOLL: type | None = _EPoll
except ImportError:  # not Linux: no epoll reactor to lighten
    EPOLL = None

log = Logger()


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


#: What `plain_dispatch` reads of an `EPollReactor`.
_POLL_STATE = ("_poller", "_selectables", "_doReadOrWrite")


def _known_poll(reactor: object) -> bool:
    """Whether `reactor` polls as `plain_dispatch`'s copy does."""
    return (EPOLL is not None and type(reactor) is EPOLL
            and all(hasattr(reactor, name) for name in _POLL_STATE))


def plain_dispatch(reactor: Any) -> bool:
    """Have `reactor` hand each ready socket straight to its `_doReadOrWrite`
    (see the module docstring); whether it now does.  Only an
    `EPollReactor` (not a subclass) showing `_POLL_STATE` is changed."""
    if not _known_poll(reactor):
        return False
    reactor.doIteration = reactor.doPoll = _PlainPoll(reactor)
    return True


class _PlainPoll:
    """`EPollReactor.doPoll`, less `log.callWithLogger` per event; then what
    `call_soon` asked for while the events were handled."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.dispatching = False
        self.after: list[Callable[[], None]] = []  # once this poll's events are handled
        self.after_next: list[Callable[[], None]] = []  # once the next poll's are

    def __call__(self, timeout: float | None = None) -> None:
        reactor = self._reactor
        selectables, dispatch = reactor._selectables, reactor._doReadOrWrite
        if self.after:  # calls wait for this poll: it must not wait for sockets
            timeout = 0
        try:
            ready = reactor._poller.poll(-1 if timeout is None else timeout, len(selectables))
        except InterruptedError:
            return
        self.dispatching = True
        try:
            for fd, event in ready:
                selectable = selectables.get(fd)
                if selectable is not None:
                    try:
                        dispatch(selectable, fd, event)
                    except Exception:  # as callWithLogger would: log, and the others go on
                        log.failure("Dispatching an event on {selectable}",
                                    selectable=selectable)
        finally:
            self.dispatching = False
        after, self.after, self.after_next = self.after, self.after_next, []
        for call in after:
            try:
                call()
            except Exception:  # as a DelayedCall's: log, and the others go on
                log.failure("After a poll, calling {call}", call=call)


def call_soon(reactor: Any, call: Callable[[], None], look_again: bool = False) -> None:
    """Call `call` once `reactor` has handled the events in hand, or with
    `look_again` once it has also looked at its sockets once more (and
    handled what it found: the relay's batching).

    Polling plainly (`plain_dispatch`), the poll calls it right after its
    events; else it is `callLater(0)` (a DelayedCall made and sorted), or
    two of them, one inside the other."""
    poll = getattr(reactor, "doIteration", None)
    if isinstance(poll, _PlainPoll):
        if poll.dispatching:
            (poll.after_next if look_again else poll.after).append(call)
            return
        if look_again:  # the next poll will not wait, then call
            poll.after.append(call)
            return
    if look_again:
        reactor.callLater(0, reactor.callLater, 0, call)
    else:
        reactor.callLater(0, call)
