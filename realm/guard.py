"""Bounds on what a stranger can take: connections, password guesses.
Pure: no I/O, and every method that needs the time takes it.

`AddressCount`: connections per address, at most `limit` (0: any number).

`Backoff`: failures counted per key (an address, or the Lord's account as
a whole); after `free` failures a key waits, twice as long after each
further failure, up to `cap` seconds.  A success clears the key.
(How much a stranger can make the server log: realm.quiet.)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass


class AddressCount:
    """Open connections per address, at most `limit` each (0: any number)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        """Count one more from `address`, unless it holds its limit."""
        if self.limit and self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def counts(self) -> dict[str, int]:
        return dict(self._open)


@dataclass
class _Failures:
    count: int
    until: float  # no try before this time


class Backoff:
    """Failures per key with a growing wait; at most `keys` keys are kept."""

    def __init__(self, free: int, base: float, cap: float, keys: int = 10000) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.keys = keys
        self._failures: dict[str, _Failures] = {}

    def wait(self, key: str, now: float) -> float:
        """Seconds `key` must still wait before it may try (0: it may)."""
        failures = self._failures.get(key)
        return max(0.0, failures.until - now) if failures else 0.0

    def failed(self, key: str, now: float) -> float:
        """Count a failure of `key`; return how long it must now wait."""
        failures = self._failures.pop(key, None) or _Failures(0, now)
        failures.count += 1
        over = failures.count - self.free
        wait = 0.0 if over < 0 else min(self.cap, self.base * 2.0 ** over)
        failures.until = now + wait
        self._failures[key] = failures  # the newest last: the oldest go first
        if len(self._failures) > self.keys:
            self._prune(now)
        return wait

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        """Forget keys long past their wait, then the oldest, to stay bounded."""
        for key, failures in list(self._failures.items()):
            if failures.until + self.cap < now:
                del self._failures[key]
        while len(self._failures) > self.keys:
            del self._failures[next(iter(self._failures))]


def whole_seconds(wait: float) -> int:
    """A wait as the client is told it: whole seconds, at least 1."""
    return max(1, math.ceil(wait))
