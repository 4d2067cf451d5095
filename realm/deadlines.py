"""Deadlines for many connections at the cost of one attribute a line.

The login and idle timeouts move with every line a member sends.
Rescheduling a `DelayedCall` each time costs a heap operation per line,
which grows with the number of connections (bench/RESULTS.md).  Here a
connection only stores its new `due` time; a coarse timer per second of
deadlines (a bucket) fires, and each connection in the bucket whose
`due` has moved later is put back for the remainder, the others expire.
A deadline fires at most `resolution` seconds late.
"""

from __future__ import annotations

import math
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Watched(Protocol):
    """What a `Deadlines` watches: its `due` time (None: nothing due)."""

    due: float | None
    bucket: int | None  # set by Deadlines: the bucket it is in, if any

    def expired(self) -> None:
        """`due` has passed."""


class Deadlines:
    """Buckets of watched connections, one timer a bucket."""

    def __init__(self, clock: IReactorTime, resolution: float = 1.0) -> None:
        self.clock = clock
        self.resolution = resolution
        self._buckets: dict[int, set[Watched]] = {}
        self._timers: dict[int, IDelayedCall] = {}

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def watch(self, entry: Watched) -> None:
        """Watch `entry` for its `due` time (call again if it moves earlier)."""
        due = entry.due
        if due is None:
            self.forget(entry)
            return
        key = math.ceil(due / self.resolution)
        if entry.bucket is not None:
            if entry.bucket <= key:
                return  # it fires first, and puts the entry back for the rest
            self.forget(entry)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            delay = max(0.0, key * self.resolution - self.clock.seconds())
            self._timers[key] = self.clock.callLater(delay, self._fire, key)
        bucket.add(entry)
        entry.bucket = key

    def forget(self, entry: Watched) -> None:
        """Stop watching `entry` (a closed connection)."""
        key, entry.bucket = entry.bucket, None
        if key is None:
            return
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.discard(entry)
            if not bucket:
                del self._buckets[key]
                self._timers.pop(key).cancel()

    def stop(self) -> None:
        """Cancel every timer (the service is stopping)."""
        for timer in self._timers.values():
            timer.cancel()
        for bucket in self._buckets.values():
            for entry in bucket:
                entry.bucket = None
        self._buckets.clear()
        self._timers.clear()

    def _fire(self, key: int) -> None:
        del self._timers[key]
        now = self.clock.seconds()
        for entry in self._buckets.pop(key, ()):
            entry.bucket = None
            due = entry.due
            if due is None:
                continue
            if due <= now:
                entry.expired()
            else:
                self.watch(entry)
