"""The bots' side of `realm-client`: one bot's driver, and a band of them.

- `BotDriver` drives a `realm.client.RealmClient` from a `realm.bot.Bot`
  brain, answering after a short think on an injected clock.  It knows
  itself by the name the server stored (`Grey-worm`, asked as
  `grey-WORM`), from its own `entered` line on.
- `Band` runs `--count` bots, one connection each, until the last is gone.
  With `keep`, a bot that leaves the realm while the game goes on
  (dismissed, deserted) is replaced by a fresh one under a new name, so a
  Lord never waits on an empty seat; once the Lord has left or the server
  has closed, no one is replaced and every bot still playing leaves.

A bot without a name draws one from `lore.NAMES` and draws again when the
server says it is taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from itertools import count

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from realm import wire
from realm.bot import Bot, NamePool, Reply
from realm.client import Ending, Player, RealmClient, Unreachable

#: Endings after which a kept band fills the seat again.
REPLACED = ("dismissed", "deserted")
#: Refusals that end the bot without a failure when it came to fill a
#: seat: someone else took it meanwhile.
SEAT_TAKEN = ("realm_full", "lords_seat")


class BotDriver(Player):
    """A bot: hears lines, thinks, and answers the Lord through its brain."""

    def __init__(self, brain: Bot, clock: IReactorTime, think: float,
                 pool: NamePool | None = None,
                 report: Callable[[str], None] = lambda text: None,
                 where: str = "", filling: bool = False) -> None:
        super().__init__(clock, where)
        self.brain = brain
        self.think = think
        self.pool = pool
        self.report = report
        #: Whether this bot came to fill a seat another one left, and found
        #: it taken by someone else meanwhile.
        self.filling = filling
        self.seat_taken = False
        self.pending: deque[Reply] = deque()

    def joined(self, name: str) -> None:
        super().joined(name)
        self.report(f"[{self.name}] joined the realm")

    def refused(self, line: str, key: str) -> str | None:
        if self.pool is not None and key == "name_taken":
            name = self.pool.draw()
            if name is not None:
                self.report(f"[{self.name}] is taken; trying {name}")
                self.name = name
                return name
        if self.filling and key in SEAT_TAKEN:
            self.seat_taken = True
            return None
        self.fail(f"{self.name}: {line.removeprefix(wire.ERROR)}")
        return None

    def secret(self) -> None:
        self.fail(f"{self.name}: the server asked for a password")
        return None

    def heard(self, line: str) -> None:
        self.note(line)
        reply = self.brain.hear(line)
        if reply is None:
            return
        self.pending.append(reply)
        if self.think <= 0:
            self._say_next()
        else:
            self.later(self.think * self.brain.rng.uniform(0.5, 1.5), self._say_next)

    def _say_next(self) -> None:
        """Say the oldest reply: replies keep their order whatever the delays."""
        reply = self.pending.popleft()
        if self.client is None or not self.client.connected or self.leaving:
            return
        self.client.send(reply.text)
        self.report(f"[{self.name}] {reply.text}")
        if reply.leaves:
            self.leave("deserted")

    def ending_for(self, reason: Failure) -> Ending:
        if not self.is_joined and self.seat_taken:
            return Ending("someone else took the seat")
        if not self.is_joined and self.leaving:  # stopped before it was in
            return Ending(self.ending)
        ending = super().ending_for(reason)
        if ending.failed:
            return Ending(f"{self.name}: {ending.why}", failed=True)
        return ending


def names(pool: NamePool | None, name: str | None,
          freed: list[str] | None = None) -> Iterator[str | None]:
    """Names for bots: drawn from `pool`, then those `freed` (names of bots
    gone from the realm), oldest first; or `name`, `name`2, `name`3..."""
    if pool is not None:
        while True:
            drawn = pool.draw()
            yield drawn if drawn is not None or not freed else freed.pop(0)
    assert name is not None
    yield name
    for i in count(2):
        yield f"{name}{i}"


class Band:
    """Bots in one process, until the last is gone (see the module).

    `connect(make)` connects one client made by `make`, or raises
    `Unreachable` with a one-line reason; `brain(i)` makes the i-th bot's brain.
    `tell` hears each failure as it happens; `finished` fires with them all.
    """

    def __init__(self, connect: Callable[[Callable[[], RealmClient]], Awaitable[object]],
                 clock: IReactorTime, brain: Callable[[int], Bot], think: float = 1.0,
                 pool: NamePool | None = None, name: str | None = None,
                 realm: str | None = None, keep: bool = False,
                 report: Callable[[str], None] = lambda text: None,
                 tell: Callable[[str], None] = lambda text: None,
                 where: str = "") -> None:
        self.connect = connect
        self.clock = clock
        self.brain = brain
        self.think = think
        self.pool = pool
        self.realm = realm
        self.keep = keep
        self.report = report
        self.tell = tell
        self.where = where
        #: Names of bots that left, to be drawn again once the pool is empty.
        self.freed: list[str] = []
        self._names = names(pool, name, self.freed)
        self.bots: list[BotDriver] = []  # those playing: a bot gone is let go
        self.seated = 0  # bots seated so far, each with a brain of its own
        self.failures: list[str] = []
        #: The game is over (the Lord has left, the server closed, stopped).
        self.over = False
        self.finished: Deferred[list[str]] = Deferred()
        self._waiting: list[Deferred[None]] = []

    def start(self, seats: int) -> Deferred[list[str]]:
        """Seat `seats` bots; `finished` fires once every bot is gone."""
        for _ in range(seats):
            self._seat()
        return self.finished

    def _seat(self, after: str | None = None) -> None:
        name = next(self._names)
        if name is None:
            self._failed("there are not enough names for so many bots")
            self._check_finished()
            return
        if after is not None:
            self.report(f"[{name}] takes the seat {after} left")
        bot = BotDriver(self.brain(self.seated), self.clock, self.think, self.pool,
                        self.report, self.where, filling=after is not None)
        self.seated += 1
        self.bots.append(bot)
        ensureDeferred(self._play(bot, name)).addCallback(self._ended, bot)

    async def _play(self, bot: BotDriver, name: str) -> Ending:
        try:
            await self.connect(lambda: RealmClient(bot, name, self.realm))
        except Unreachable as e:
            return Ending(str(e), failed=True)
        if self.over:
            bot.leave("stopped")
        return await bot.done

    def _ended(self, ending: Ending, bot: BotDriver) -> None:
        self.bots.remove(bot)  # a band replacing bots for days must not keep them all
        if ending.failed:
            self._failed(ending.why)
        else:
            self.report(f"[{bot.name}] is gone: {ending.why}")
            if ending.why not in REPLACED:
                if bot.is_joined:  # the Lord has left, the server closed...
                    self.stop(ending.why)
            elif self.keep and not self.over:
                self.freed.append(bot.name)
                self._seat(after=bot.name)
        self._check_finished()

    def _failed(self, why: str) -> None:
        self.failures.append(why)
        self.tell(why)

    def _check_finished(self) -> None:
        if not self.bots and not self.finished.called:
            self.finished.callback(self.failures)
            waiting, self._waiting = self._waiting, []
            for gone in waiting:
                gone.callback(None)

    def stop(self, why: str = "stopped") -> Deferred[None]:
        """No more seats filled; every bot still playing leaves.  The
        Deferred (a new one each call) fires once the last is gone."""
        self.over = True
        for bot in list(self.bots):  # a bot may be gone at once, and leave the list
            bot.leave(why if why == "stopped" else "the game is over")
        gone: Deferred[None] = Deferred()
        if self.finished.called:
            gone.callback(None)
        else:
            self._waiting.append(gone)
        return gone
