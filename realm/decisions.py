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
from functools import lru_cache

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


#: `read`'s view of a line's bytes: an ASCII letter in lower case, a hyphen,
#: or else a space, so that `split()` gives `_WORD`'s words (in lower case),
#: but for hyphens in front (`--fight` is the word `fight`).
_WORDS_ONLY = bytes(c | 0x20 if chr(c).isascii() and chr(c).isalpha() else
                    c if c == ord("-") else ord(" ") for c in range(256))
#: ACTION_FORMS, by the bytes of each form.
_ACTION_BYTES = {form.encode(): action for form, action in ACTION_FORMS.items()}
#: Every known form of each plain action.
_FORMS_OF = {action: [form for form, plain_ in ACTION_FORMS.items() if plain_ == action]
             for action in set(ACTION_FORMS.values())}


@lru_cache(maxsize=1024)
def _picks(options: tuple[str, ...]) -> dict[bytes, int]:
    """Every word (as `read` sees it) that picks one of `options`, to its
    index: each form of a known action, an unknown word as it stands."""
    picks: dict[bytes, int] = {}
    for index, option in enumerate(options):
        base = plain(option)
        for form in _FORMS_OF.get(base, [base]):
            picks.setdefault(form.encode(), index)
    return picks


def read(text: str, options: Sequence[str]) -> tuple[int | None, str | None]:
    """Both readings in one pass, for the realm's hot path: (the index of
    the offered option `text` picks, or None; when it picks none, the
    plain action it names first, or None).  The same as `choice` and
    `named_action` (tests/test_decisions.py checks it on any text), with
    the words split in C instead of by `_WORD`: about half the time."""
    index = number(text)
    if index is not None:
        return (index, None) if index < len(options) else (None, named_action(text))
    picks = _picks(tuple(options))
    first = None
    for word in text.encode("utf-8", "surrogatepass").translate(_WORDS_ONLY).split():
        if word[0] == 0x2D:  # "-"
            word = word.lstrip(b"-")
            if not word:
                continue
        index = picks.get(word)
        if index is not None:
            return index, None
        if first is None:
            first = _ACTION_BYTES.get(word)
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
