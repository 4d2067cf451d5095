"""How a line from the Lord is read: which option it picks, which action it names.

One reader for both sides of the game: `realm.reign` decides what a Lord's
line does to the realm with it, and `realm.bot` judges the same line with
it, so a bot is delighted exactly when the realm takes the line as a pick.

The rules:
- An option is picked by number when the line starts with `1` or `2` that
  is not part of a longer number: `1`, ` 2!`, `1 - burn them` pick;
  `10`, `1.5`, `12 ravens` do not.
- Otherwise by word: the first whole word of the line (letters and
  hyphens) that is one of the offered actions, in any case, as the plain
  word or its `-ing` form (`fight`, `FIGHTING`; `eaten` and `sweating`
  are not words of any action).
- An action is named the same way, among every action in `lore.ACTIONS`.
  `read` gives both readings in one pass, for the realm's hot path.

Pure and cheap: the patterns are compiled and the forms tabled once, at
import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from realm import lore

#: A line that picks an option by number: `1`, `2!`, `1 - burn them`.
_NUMBER = re.compile(r"\s*([12])(?![.,]?\d)")
#: A whole word: a letter, then letters or hyphens.
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*")


def ing(word: str) -> str:
    """The `-ing` form of an action, from `lore.ING` when it is listed."""
    return lore.ING.get(word, word + "ing")


#: Every `-ing` form of `lore.ING`, to its plain action.
_PLAIN = {form: word for word, form in lore.ING.items()}


def plain(word: str) -> str:
    """The plain form of an action word in any case or form (`Fleeing` → `flee`)."""
    lower = word.lower()
    return _PLAIN.get(lower, lower)


def forms(words: Iterable[str]) -> dict[str, str]:
    """Every spoken form (lower case) of each word, to its plain form.

    A word given in its `-ing` form (events offer `1 burning or 2 fleeing`)
    is known by its plain form too.
    """
    found: dict[str, str] = {}
    for word in words:
        base = plain(word)
        found[base] = base
        found[ing(base)] = base
    return found


#: Every spoken form of every action the Lord may name.
ACTION_FORMS = forms(lore.ACTIONS)


def find_word(text: str, known: dict[str, str]) -> tuple[str, str] | None:
    """The first whole word of `text` that is one of `known` (from `forms`):
    (the word as spoken, its plain form), or None."""
    for word in _WORD.findall(text):
        base = known.get(word.lower())
        if base is not None:
            return word, base
    return None


def number(text: str) -> int | None:
    """0 or 1 when `text` picks option 1 or 2 by number, else None."""
    found = _NUMBER.match(text)
    return None if found is None else int(found.group(1)) - 1


def picked(text: str, options: Sequence[str]) -> tuple[int, str] | None:
    """Which of the two offered `options` (actions, in either form) `text`
    picks: (its index, the word as the Lord wrote it, or the option as
    offered when picked by number), or None."""
    index = number(text)
    if index is not None:
        return (index, options[index]) if index < len(options) else None
    wanted = [plain(option) for option in options]
    known = ACTION_FORMS
    for word in _WORD.findall(text):
        lower = word.lower()
        # An offered word that is no known action is taken as it stands.
        base = known.get(lower, lower)
        if base in wanted:
            return wanted.index(base), word
    return None


def read(text: str, options: Sequence[str]) -> tuple[int | None, str | None]:
    """Both readings in one pass, for the realm's hot path: (the index of
    the offered option `text` picks, or None; when it picks none, the
    plain action it names first, or None).  The same as `choice` and
    `named_action`, each word looked at once."""
    index = number(text)
    if index is not None:
        return (index, None) if index < len(options) else (None, named_action(text))
    wanted = [plain(option) for option in options]
    known = ACTION_FORMS
    first = None
    for word in _WORD.findall(text):
        lower = word.lower()
        action = known.get(lower)
        base = lower if action is None else action
        if base in wanted:
            return wanted.index(base), None
        if first is None:
            first = action
    return None, first


def choice(text: str, options: Sequence[str]) -> int | None:
    """The index of the offered option `text` picks, or None."""
    found = picked(text, options)
    return None if found is None else found[0]


def named(text: str) -> tuple[str, str] | None:
    """The first action of `lore.ACTIONS` that `text` names:
    (the word as spoken, the plain action), or None."""
    return find_word(text, ACTION_FORMS)


def named_action(text: str) -> str | None:
    """The plain action (`lore.ACTIONS`) that `text` names first, or None."""
    found = find_word(text, ACTION_FORMS)
    return None if found is None else found[1]
