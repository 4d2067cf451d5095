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
  reply says the word back.  A message without one earns distaste.
- Loyalty starts at `Temper.loyalty`, never exceeds `Temper.most`, and at
  zero the bot deserts: it says a `lore.DESERTION` line and leaves.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from realm import lore

LORD_PREFIX = "Lord: "
EVENT_PREFIX = "*** [New Event] "
LEAVE = "--leave"

#: The two options at the end of an event line: `1 burn or 2 flee?`.
_OPTIONS = re.compile(r"\b1\s+([A-Za-z][\w-]*)\s+or\s+2\s+([A-Za-z][\w-]*)\s*\?\s*$")
#: A message that picks an option by number: `1`, `2!`, `1 - burn them`.
_PICK = re.compile(r"^\s*([12])(?![.,]?\d)")


def ing(word: str) -> str:
    """The `-ing` form of an action, from `lore.ING` when it is listed."""
    return lore.ING.get(word, word + "ing")


_BASE = {form: word for word, form in lore.ING.items()}


def _forms(words: tuple[str, ...]) -> dict[str, str]:
    """Map every spoken form (lower case) of each word to its plain form.

    A word given in its `-ing` form (events offer `1 burning or 2 fleeing`)
    is known by its plain form too.
    """
    forms: dict[str, str] = {}
    for word in words:
        base = _BASE.get(word.lower(), word.lower())
        forms[base] = base
        forms[ing(base)] = base
    return forms


def _find_word(text: str, forms: dict[str, str]) -> str | None:
    """The first whole word of `text` that is one of `forms`, as spoken."""
    for match in re.finditer(r"[A-Za-z][A-Za-z-]*", text):
        if match.group().lower() in forms:
            return match.group()
    return None


_ACTION_FORMS = _forms(lore.ACTIONS)


@dataclass(frozen=True)
class Temper:
    """How loyal a bot starts, how loyal it can get, and what moves it."""

    loyalty: int = 5
    most: int = 10
    delight: int = 2
    approval: int = 1
    distaste: int = 1

    def __post_init__(self) -> None:
        if self.loyalty < 1:
            raise ValueError("starting loyalty must be at least 1")
        if self.most < self.loyalty:
            raise ValueError("the most loyalty must be at least the starting loyalty")
        if not self.delight > self.approval >= 0 or self.distaste < 1:
            raise ValueError("delight must beat approval, and distaste must hurt")


@dataclass(frozen=True)
class Reply:
    """What a bot says; `leaves` means it sends `--leave` right after."""

    text: str
    leaves: bool = False


class Bot:
    """One bot's mood and memory of the current event."""

    def __init__(self, rng: random.Random, temper: Temper = Temper()) -> None:
        self.rng = rng
        self.temper = temper
        self.loyalty = temper.loyalty
        #: The current event's options, or () before the first event.
        self.options: tuple[str, ...] = ()
        self.deserted = False

    def hear(self, line: str) -> Reply | None:
        """Take one line from the server; return the reply to send, if any."""
        if self.deserted:
            return None
        if line.startswith(EVENT_PREFIX):
            self._note_event(line)
            return None
        if not line.startswith(LORD_PREFIX):
            return None
        return self._answer(line[len(LORD_PREFIX):])

    def _note_event(self, line: str) -> None:
        match = _OPTIONS.search(line)
        self.options = (match.group(1).lower(), match.group(2).lower()) if match else ()

    def _answer(self, text: str) -> Reply:
        picked = self._picked_option(text)
        if picked is not None:
            return self._react(self.temper.delight, lore.DELIGHT, picked)
        word = _find_word(text, _ACTION_FORMS)
        if word is not None:
            return self._react(self.temper.approval, lore.APPROVAL, word)
        return self._react(-self.temper.distaste, lore.DISTASTE, "")

    def _picked_option(self, text: str) -> str | None:
        """The option the Lord picked, as the bot will say it back."""
        if not self.options:
            return None
        number = _PICK.match(text)
        if number is not None:
            return self.options[int(number.group(1)) - 1]
        return _find_word(text, _forms(self.options))

    def _react(self, change: int, templates: tuple[str, ...], word: str) -> Reply:
        self.loyalty = max(0, min(self.temper.most, self.loyalty + change))
        if self.loyalty == 0:
            self.deserted = True
            return Reply(self.rng.choice(lore.DESERTION), leaves=True)
        return Reply(self.rng.choice(templates).format(word=word))


class NamePool:
    """Names for bots (`lore.NAMES`), drawn at random and never twice."""

    def __init__(self, rng: random.Random, names: tuple[str, ...] = lore.NAMES) -> None:
        self.left = list(names)
        rng.shuffle(self.left)

    def draw(self) -> str | None:
        """A name not drawn before, or None when none is left."""
        return self.left.pop() if self.left else None
