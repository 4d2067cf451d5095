"""The bot's brain: a line from the server in, a reply or nothing out.

Pure logic, no I/O, no clock: `realm.client` feeds every line the server
sends to `Bot.hear` and sends back what it returns.  Randomness comes from
an injected `random.Random`, so tests choose the seed.

The rules:
- A bot answers only chat from the Lord (`Lord: text`), exactly once a line.
  The server stamps the sender's name, and no one else may be called Lord,
  so the prefix can be trusted.
- The last `*** [New Event] ... 1 A or 2 B?` line offers two options.  A
  message that picks one (`1`, `2`, or the option's word) earns delight, the
  largest gain in loyalty.
- Otherwise a message that names a known action (`lore.ACTIONS`), as the
  word or its `-ing` form, as a whole word in any case, earns approval; the
  reply says the word back.  A message without one earns distaste.  The
  line is read by `realm.decisions`, as the realm itself reads it.
- Only the Lord's first line after an event decides it, as the realm
  reads it: a later one that names an option or an action is talk, and is
  answered calmly (`lore.DECIDED`), loyalty unmoved; one that names
  nothing still earns distaste.
- Loyalty starts at `Temper.loyalty`, never exceeds `Temper.most`, and at
  zero the bot deserts: it says a `lore.DESERTION` line and leaves.
- While the realm waits to be full again (`*** The Lord's next decision
  waits until the realm is full again.`), the Lord's lines decide nothing:
  the bot answers with patience (`lore.PATIENCE`), its loyalty unmoved,
  until an entry shows the realm full (`(n/n)`).

The realm's fortunes (`*** [Realm] ` lines, read with `wire.read_report`)
move loyalty too, by `Temper.fortune`, but never answer and never make a
bot desert on their own (they stop at 1; only the Lord's words push it
over):
- a failing realm, where a holding is at or below `Temper.low` or fell by
  `Temper.steep` or more in one event, costs loyalty;
- otherwise a prospering one, where Favour (the court's regard) rose, or
  every holding is at least `Temper.high`, earns it.
While the last report shows a holding at or below `Temper.low`, the bot's
replies end with a worry about the lowest (`lore.WORRIES`).
A welcome and a `*** [Reign Ended] ` line say what the realm holds (a new
reign starts fresh; an ending that does not say clears them); a reign won
earns delight, a reign fallen costs distaste (again stopping at 1), an
abandoned one changes nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from realm import decisions, lore, wire

LEAVE = wire.LEAVE
#: The holding that is the court's regard for the Lord (realm.scenes.HOLDINGS).
FAVOUR = "Favour"


@dataclass(frozen=True)
class Temper:
    """How loyal a bot starts, how loyal it can get, and what moves it."""

    loyalty: int = 5
    most: int = 10
    delight: int = 2
    approval: int = 1
    distaste: int = 1
    #: How far one `[Realm]` report moves loyalty, either way.
    fortune: int = 1
    #: A holding at or below this is low: the realm is failing.
    low: int = 20
    #: Every holding at least this: the realm is prospering.
    high: int = 60
    #: A fall this large in one event: the realm is failing.
    steep: int = 15

    def __post_init__(self) -> None:
        if self.loyalty < 1:
            raise ValueError("starting loyalty must be at least 1")
        if self.most < self.loyalty:
            raise ValueError("the most loyalty must be at least the starting loyalty")
        if not self.delight > self.approval >= 0 or self.distaste < 1:
            raise ValueError("delight must beat approval, and distaste must hurt")
        if self.fortune < 0 or not 0 <= self.low < self.high <= 100 or self.steep < 1:
            raise ValueError("fortune must not be negative, low must lie below high "
                             "within 0..100, and a steep fall must be a fall")


@dataclass(frozen=True)
class Reply:
    """What a bot says; `leaves` means it sends `--leave` right after."""

    text: str
    leaves: bool = False


class Bot:
    """One bot's mood and memory of the current event and the realm."""

    def __init__(self, rng: random.Random, temper: Temper = Temper()) -> None:
        self.rng = rng
        self.temper = temper
        self.loyalty = temper.loyalty
        #: The current event's options, or () before the first event.
        self.options: tuple[str, ...] = ()
        #: Each holding as the last `[Realm]` line of this reign told it.
        self.holdings: dict[str, int] = {}
        self.deserted = False
        #: The realm is not full: the Lord's lines decide nothing now.
        self.paused = False
        #: The event in play has had the Lord's deciding line.
        self.decided = False

    def hear(self, line: str) -> Reply | None:
        """Take one line from the server; return the reply to send, if any."""
        if self.deserted:
            return None
        if wire.is_event(line):
            offered = wire.event_options(line)
            self.options = (offered[0].lower(), offered[1].lower()) if offered else ()
            self.decided = False
            return None
        report = wire.read_report(line)
        if report is not None:
            self._note_report(report[1])
            return None
        if wire.is_reign_ended(line):
            self._note_ending(line)
            return None
        said = wire.chat(line)
        if said is None:
            self._note_seats(line)
            return None
        if said[0] != wire.LORD:
            return None
        if self.paused:
            return Reply(self.rng.choice(lore.PATIENCE))
        return self._answer(said[1])

    def _note_seats(self, line: str) -> None:
        """The realm waits to be full again, or is full again (and a
        welcome says what it holds)."""
        self.holdings = wire.holdings_now(line) or self.holdings
        if wire.PAUSED.match(line) is not None:
            self.paused = True
            return
        entered = wire.ENTERED.match(line)
        if entered is not None and entered["n"] == entered["size"]:
            self.paused = False

    def _note_report(self, holdings: dict[str, tuple[int, int]]) -> None:
        temper = self.temper
        self.holdings = {name: value for name, (value, _) in holdings.items()}
        if any(value <= temper.low or change <= -temper.steep
               for value, change in holdings.values()):
            self._sway(-temper.fortune)
        elif (holdings.get(FAVOUR, (0, 0))[1] > 0
              or all(value >= temper.high for value, _ in holdings.values())):
            self._sway(temper.fortune)

    def _note_ending(self, line: str) -> None:
        self.holdings = wire.holdings_now(line) or {}  # the next reign's, if told
        ended = wire.REIGN_OVER.match(line)
        outcome = ended["outcome"] if ended else ""
        if outcome == "Won":
            self._sway(self.temper.delight)
        elif outcome == "Fallen":
            self._sway(-self.temper.distaste)

    def _sway(self, change: int) -> None:
        """Move loyalty by news, not by the Lord: never below 1."""
        self.loyalty = max(1, min(self.temper.most, self.loyalty + change))

    def _answer(self, text: str) -> Reply:
        decided, self.decided = self.decided, True
        if decided and self.options:  # talk: the event in play is decided already
            if decisions.picked(text, self.options) or decisions.named(text):
                return self._react(0, lore.DECIDED, "")
            return self._react(-self.temper.distaste, lore.DISTASTE, "")
        picked = decisions.picked(text, self.options) if self.options else None
        if picked is not None:
            return self._react(self.temper.delight, lore.DELIGHT, picked[1])
        named = decisions.named(text)
        if named is not None:
            return self._react(self.temper.approval, lore.APPROVAL, named[0])
        return self._react(-self.temper.distaste, lore.DISTASTE, "")

    def _react(self, change: int, templates: tuple[str, ...], word: str) -> Reply:
        self.loyalty = max(0, min(self.temper.most, self.loyalty + change))
        if self.loyalty == 0:
            self.deserted = True
            return Reply(self.rng.choice(lore.DESERTION), leaves=True)
        # The word heard starts the reply: a capital, however it was typed.
        text = self.rng.choice(templates).format(word=word[:1].upper() + word[1:])
        worry = self._worry()
        return Reply(f"{text} {worry}" if worry else text)

    def _worry(self) -> str | None:
        """A worry about the lowest holding, if one is low."""
        if not self.holdings:
            return None
        name = min(self.holdings, key=self.holdings.__getitem__)
        worries = lore.WORRIES.get(name)
        if self.holdings[name] > self.temper.low or not worries:
            return None
        return self.rng.choice(worries)


class NamePool:
    """Names for bots (`lore.NAMES`), drawn at random and never twice."""

    def __init__(self, rng: random.Random, names: tuple[str, ...] = lore.NAMES) -> None:
        self.left = list(names)
        rng.shuffle(self.left)

    def draw(self) -> str | None:
        """A name not drawn before, or None when none is left."""
        return self.left.pop() if self.left else None
