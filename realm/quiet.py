"""Log lines that strangers, or a failing database, can cause as fast as
they like: at most one a minute per kind for the whole server, with how
many there were.

`Quiet.tell(clock, kind, say)` counts one more of `kind`: `say(1)` is
called now if no line of that kind was logged within `interval`, else
`say(n)` once the interval is over, with the n that came meanwhile (the
last one's `say`, which names it).  `Quiet.log(clock, kind, log.info,
format, ...)` does so for one log line.  `stop()` says what still waits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall, IReactorTime

Say = Callable[[int], None]


def since_last(n: int, one: str, many: str) -> str:
    """What a quiet line counts: `one` (a line) for one, else `N many
    since the last such line, the last`."""
    return one if n == 1 else f"{n} {many} since the last such line, the last"


@dataclass
class _Kind:
    told: float  # when a line of this kind was logged last
    waiting: int = 0  # how many came since, not logged yet
    say: Say | None = None  # the last one's
    timer: IDelayedCall | None = None  # when they will be


class Quiet:
    """One line a kind an `interval`, and the count of the rest."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._kinds: dict[str, _Kind] = {}

    def tell(self, clock: IReactorTime, kind: str, say: Say) -> None:
        """One more of `kind`: `say(1)` now, or `say(n)` when its minute is over."""
        now = clock.seconds()
        found = self._kinds.get(kind)
        if found is None or (found.timer is None and now - found.told >= self.interval):
            self._kinds[kind] = _Kind(told=now)
            say(1)
            return
        found.waiting += 1
        found.say = say
        if found.timer is None:
            found.timer = clock.callLater(found.told + self.interval - now,
                                          self._due, clock, found)

    def log(self, clock: IReactorTime, kind: str, emit: Callable[..., None], format: str,
            **fields: object) -> None:
        """`emit(format, **fields)` (a Logger's `info`, `warn`...) as one
        more of `kind` (`tell`): the last line of a minute says how many."""
        self.tell(clock, kind, lambda n: emit(
            format if n == 1 else f"{n} such lines since the last, the last: " + format,
            **fields))

    def _due(self, clock: IReactorTime, kind: _Kind) -> None:
        kind.timer = None
        kind.told = clock.seconds()
        self._say(kind)

    @staticmethod
    def _say(kind: _Kind) -> None:
        waiting, kind.waiting = kind.waiting, 0
        if waiting and kind.say is not None:
            kind.say(waiting)

    def stop(self) -> None:
        """Log what still waits, now (the server is stopping)."""
        for kind in self._kinds.values():
            if kind.timer is not None and kind.timer.active():
                kind.timer.cancel()
            kind.timer = None
            self._say(kind)
