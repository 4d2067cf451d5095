"""The reign: a realm's holdings, the events that move them, and how it ends.

Pure rules: no Twisted, no I/O, no clock; randomness comes from an
injected `random.Random`.  The story itself (scenes, options, effects,
the reasons a reign ends) is data, in `realm.scenes`.

A round, as the server plays it:
    line = reign.tell(others)   # `*** [New Event] ...`, to every member
    reign.decide(lords_line)    # the Lord's deciding chat line
    settled = reign.settle()    # once every other member answered (or the wait
                                # is over): `settled.report` to every member,
                                # then, if the reign ended, the next `Reign`
                                # (fresh holdings, the same `Deck`, so no scene
                                # repeats until every scene has been told once)
                                # and `settled.ending.line(next.holdings)`

What a decision does (`decide`): the Lord's line picks one of the two
offered options by number or by word (`realm.decisions`); else, if it
names another action that is one of the scene's own options (one not
offered this time), that option's effect; else, if it names any other
action of `lore.ACTIONS`, that action's own effect; else the realm is
confused (`[confusion]` in the data: the court's Favour falls).  Each
holding stays within 0..100.

How a reign ends (`settle`): it falls when a holding reaches 0, and is won
when the Lord has seen it through `length` events without falling.  A
Lord who leaves abandons it (`abandon`).

The score:
    score = 10 x the events seen through (settled)
          + the sum of the final holdings, but for a reign abandoned
          + 400 if the reign was won
The bonus is the most the four holdings can add, so a won reign always
scores above a fallen or abandoned one of the same length.  A reign
walked away from keeps only its events' points: the Lord who leaves at
once must not rank above one who played a reign until it fell.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from realm import lore, wire
from realm.decisions import choice, named_action, read
from realm.records import EventRecord, ReignRecord
from realm.scenes import HIGHEST, HOLDINGS, LOWEST, STORY, Effect, Option, Scene, Story

__all__ = [
    "EVENT_POINTS", "HOLDINGS", "LENGTH", "NARROW", "START", "SPREAD", "WON_BONUS", "Deck",
    "Ending", "Reign", "ReignError", "Settled", "choice", "named_action", "score",
]

#: Each holding starts at START - SPREAD .. START + SPREAD, drawn.
START = 45
SPREAD = 5
#: Events in a reign the Lord wins (the server's `--reign-length`).
LENGTH = 12
#: Points for each event seen through.
EVENT_POINTS = 10
#: A reign won with a holding at or below this is won narrowly (its reason says so).
NARROW = 20
#: Points for a reign won: the most the holdings can add.
WON_BONUS = HIGHEST * len(HOLDINGS)

#: The outcomes (records.OUTCOMES) as the `[Reign Ended]` line names them.
_TOLD_AS = {"won": "Won", "fallen": "Fallen", "abandoned": "Abandoned"}


class ReignError(Exception):
    """The reign was asked for something out of turn (e.g. `settle` before
    `decide`, or anything after its end)."""


class Ending(NamedTuple):
    """How a reign ended.  (A tuple, as `Settled`: a reign of three events
    ends every third round.)"""

    outcome: str  # one of records.OUTCOMES: "won", "fallen", "abandoned"
    events: int  # the events seen through
    score: int
    why: str  # the story's sentence for it

    def line(self, then: Mapping[str, int]) -> bytes:
        """The `*** [Reign Ended] ` line, wire-ready, saying what the next
        reign begins with."""
        return wire.REIGN_OVER.notice(
            outcome=_TOLD_AS[self.outcome], why=self.why, events=self.events,
            event_s=wire.noun(self.events, "event"), score=self.score,
            then=wire.THEN.format(holdings=wire.holdings(then, {})))


class Settled(NamedTuple):
    """An event that is over: the `*** [Realm] ` line, and the ending if
    the reign ended with it.  (A tuple: one is made every round.)"""

    report: bytes
    ending: Ending | None


def score(events: int, holdings: Mapping[str, int], outcome: str) -> int:
    """A reign's score (see the module docstring); `outcome` is `won`,
    `fallen` or `abandoned`."""
    if outcome == "abandoned":
        return EVENT_POINTS * events
    return EVENT_POINTS * events + sum(holdings.values()) + (WON_BONUS if outcome == "won" else 0)


def _two(pick: Callable[[], float], n: int) -> tuple[int, int]:
    """Two different indexes below `n` (at least 2), uniformly drawn."""
    i = int(pick() * n)
    j = int(pick() * (n - 1))
    return i, j + (j >= i)


def _capital(sentence: str) -> str:
    """`sentence` with a capital first letter (a courtier may begin it)."""
    return sentence[:1].upper() + sentence[1:]


def _stranger(herald: str, pick: Callable[[], float]) -> str:
    """A stranger to bring the news with `herald`: `a stranger` where a
    herald does not begin with the name (as `A raven from {narrator}:`
    would not)."""
    who = lore.STRANGERS[int(pick() * len(lore.STRANGERS))]
    return who if herald.startswith("{narrator}") else who[0].lower() + who[1:]


class Deck:
    """A realm's scenes, drawn without repeats: every scene is told once
    before any is told again, and the last of one round is never the first
    of the next.  One deck lives across a realm's reigns."""

    def __init__(self, rng: random.Random, scenes: Sequence[Scene] = STORY.scenes) -> None:
        if not scenes:
            raise ValueError("a deck needs at least one scene")
        self._pick = rng.random
        self._scenes = list(scenes)
        #: scenes[:left] are still to be told this round.
        self._left = len(self._scenes)

    def draw(self) -> Scene:
        """The next scene: one random draw, a swap (a lazy Fisher-Yates)."""
        scenes, left = self._scenes, self._left
        if left:
            i = int(self._pick() * left)
        else:  # a new round; the scene told last lies at 0: not it again
            left = len(scenes)
            i = 1 + int(self._pick() * (left - 1)) if left > 1 else 0
        left -= 1
        scenes[i], scenes[left] = scenes[left], scenes[i]
        self._left = left
        return scenes[left]


class Reign:
    """One reign of one realm: its holdings, the event in play, its record."""

    def __init__(self, rng: random.Random, deck: Deck, length: int = LENGTH,
                 story: Story = STORY) -> None:
        if length < 1:
            raise ValueError("a reign needs at least one event")
        self.rng = rng
        self.deck = deck
        self.length = length
        self.story = story
        pick = rng.random
        width = 2 * SPREAD + 1
        #: Each holding, in `HOLDINGS` order.
        self.holdings: dict[str, int] = {
            name: START - SPREAD + int(pick() * width) for name in HOLDINGS}
        #: Events told so far.
        self.told = 0
        #: What the chronicle keeps of each event seen through.
        self.events: list[EventRecord] = []
        self.ending: Ending | None = None
        # The event in play: its line, scene, offered options and `{other}`.
        self._line: bytes | None = None
        self._scene: Scene | None = None
        self._offered: tuple[Option, Option] | None = None
        self._other = ""
        self._text = ""  # the event in play, as its line says it after `*** `
        # The Lord's decision on it.
        self._decision = ""
        self._effect: Effect | None = None

    @property
    def event(self) -> bytes | None:
        """The event in play, as `tell` sent it, or None between events."""
        return self._line

    @property
    def scene(self) -> Scene | None:
        """The scene of the event in play, or None between events."""
        return self._scene

    @property
    def offered(self) -> tuple[Option, Option] | None:
        """The two options the event in play offers, as numbered."""
        return self._offered

    @property
    def decided(self) -> bool:
        """Whether the event in play has the Lord's decision."""
        return self._effect is not None

    @property
    def decision(self) -> str:
        """The Lord's deciding line of the event in play ("" before it)."""
        return self._decision if self._effect is not None else ""

    def tell(self, others: Sequence[str]) -> bytes:
        """The next event, wire-ready: a herald, a wording of the next scene,
        and two of its options.

        `others` are the names of the members other than the Lord; the
        narrator and the `{other}` of a scene are drawn from them, falling
        back to a stranger and a courtier when there are too few.
        """
        if self.ending is not None:
            raise ReignError("the reign is over; start a new one")
        if self._line is not None:
            raise ReignError("the event in play is not settled yet")
        pick = self.rng.random  # one call per draw
        n = len(others)
        herald = lore.HERALDS[int(pick() * len(lore.HERALDS))]
        if n >= 2:
            i, j = _two(pick, n)
            narrator, other = others[i], others[j]
        else:
            narrator = others[0] if n else _stranger(herald, pick)
            courtiers = [name for name in lore.COURTIERS if name not in others]
            other = courtiers[int(pick() * len(courtiers))]  # not a member's name
        scene = self.deck.draw()
        options = scene.options
        i, j = _two(pick, len(options))
        a, b = options[i], options[j]
        herald = herald.format(narrator=narrator)
        told = scene.told[int(pick() * len(scene.told))]
        if "{" in told:
            told = _capital(told.format(other=other))  # `the cook ...` starts one
        text = wire.event_text(f"{herald} {told}", a.offered, b.offered)
        line = wire.notice(text)
        self._line, self._scene, self._offered, self._other = line, scene, (a, b), other
        self._text = text
        self.told += 1
        return line

    def decide(self, text: str) -> None:
        """Take the Lord's deciding line for the event in play (once)."""
        offered, scene = self._offered, self._scene
        if offered is None or scene is None:
            raise ReignError("there is no event to decide")
        if self._effect is not None:
            raise ReignError("the event in play is decided already")
        index, action = read(text, (offered[0].action, offered[1].action))
        if index is not None:
            effect = offered[index].effect
        elif action is None:
            effect = self.story.confusion
        else:
            option = scene.option(action)
            effect = option.effect if option is not None else self.story.actions[action]
        self._decision = text
        self._effect = effect

    def settle(self) -> Settled:
        """End the event in play: apply the decision, record the event, and
        say what it did; the reign may end with it."""
        effect, line = self._effect, self._line
        if effect is None or line is None:
            raise ReignError("there is no decided event to settle")
        holdings = self.holdings
        changes: dict[str, int] = {}
        for name, change in effect.changes:
            was = holdings[name]
            now = was + change
            now = HIGHEST if now > HIGHEST else LOWEST if now < LOWEST else now
            if now != was:
                holdings[name] = now
                changes[name] = now - was
        says = effect.says
        said = says[int(self.rng.random() * len(says))] if len(says) > 1 else says[0]
        if "{" in said:
            said = _capital(said.format(other=self._other))
        report = wire.report(said, holdings, changes)
        self.events.append(EventRecord(self._text, self._decision, dict(holdings)))
        self._line = self._scene = self._offered = self._effect = None
        ending = None
        for name in changes:
            if holdings[name] == LOWEST:
                ending = self._end("fallen", self.story.fallen[name])
                break
        else:
            if self.told >= self.length:  # seen through: in style, or only just
                low = min(holdings.values()) <= NARROW
                ending = self._end("won", self.story.narrowly if low else self.story.won)
        return Settled(report, ending)

    def abandon(self) -> Ending:
        """The Lord has left: the reign ends, the event in play unsettled."""
        if self.ending is not None:
            raise ReignError("the reign is over already")
        self._line = self._scene = self._offered = self._effect = None
        return self._end("abandoned", self.story.abandoned)

    def record(self, realm: str, members: Sequence[str], started: float, ended: float,
               ending: Ending) -> ReignRecord:
        """What the chronicle keeps of this reign, once it has ended."""
        if ending != self.ending:
            raise ReignError("that is not how this reign ended")
        return ReignRecord(realm=realm, members=tuple(members), events=tuple(self.events),
                           outcome=ending.outcome, score=ending.score,
                           started=started, ended=ended)

    def _end(self, outcome: str, why: tuple[str, ...]) -> Ending:
        events = len(self.events)
        points = score(events, self.holdings, outcome)
        said = why[int(self.rng.random() * len(why))]
        self.ending = Ending(outcome, events, points, said)
        return self.ending
