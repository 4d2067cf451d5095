"""The line the Lord is typing at a terminal: pure state, no drawing.

`LineEditor` holds the characters typed, the cursor and the history
(↑/↓), and edits them as shells do (Ctrl-U clears the line).  A line
holds at most `limit` bytes of UTF-8 (the server's, by default): what
would go past it is not typed.  `places` says where each character of a
prompt and its line stands on a terminal of a given width once it wraps
over several rows, so `realm.console` can redraw the whole input and put
the cursor back where it was.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from realm import wire

#: Characters that take no column of their own: combining and enclosing
#: marks (U+FE0F, the emoji marker, among them) and format characters
#: (U+200D, the joiner in emoji such as a family) but those that terminals
#: draw (the soft hyphen, Arabic number signs), as wcwidth counts them.
_NO_COLUMN = frozenset(("Mn", "Me", "Cf"))
_DRAWN = frozenset("\u00ad\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891"
                   "\u08e2\U000110bd\U000110cd")


def cells(char: str) -> int:
    """How many terminal columns `char` takes: 2 for wide East Asian
    characters and most emoji, 0 for marks and joiners, else 1."""
    if unicodedata.category(char) in _NO_COLUMN and char not in _DRAWN:
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def places(start: int, chars: Sequence[str], columns: int) -> list[tuple[int, int]]:
    """(row, column) of the cursor before each of `chars` and after the
    last, counted from the first row of the input, the text starting at
    column `start` of a terminal `columns` wide.

    Text that fills a row to its last column puts the cursor at the start
    of the next row: the caller moves it there (a terminal keeps such a
    cursor on the last column until more comes; `realm.console.NEXT_ROW`).
    """
    columns = max(columns, 2)
    row, column = divmod(start, columns)
    found = []
    for char in chars:
        width = cells(char)
        if column + width > columns:  # a wide character wraps whole
            row, column = row + 1, 0
        found.append((row, column))
        column += width
        if column >= columns:
            row, column = row + 1, 0
    found.append((row, column))
    return found


def size(text: str) -> int:
    """How many bytes `text` takes on the wire."""
    return len(text.encode("utf-8"))


class LineEditor:
    """The characters typed, the cursor (`at`), the history, and how many
    bytes the line takes (`size`, at most `limit`)."""

    def __init__(self, limit: int = wire.MAX_LINE) -> None:
        self.limit = limit
        self.chars: list[str] = []
        self.at = 0
        self.size = 0
        self.history: list[str] = []
        #: Which history line is shown: len(history) is the line being typed.
        self.recalled = 0
        self._draft = ""

    @property
    def text(self) -> str:
        return "".join(self.chars)

    @property
    def at_end(self) -> bool:
        return self.at == len(self.chars)

    def insert(self, text: str) -> bool:
        """Type `text` at the cursor, unless the line would grow past its limit."""
        grown = self.size + size(text)
        if grown > self.limit:
            return False
        self.chars[self.at:self.at] = list(text)
        self.at += len(text)
        self.size = grown
        return True

    def _remove(self, at: int) -> None:
        self.size -= size(self.chars.pop(at))

    def backspace(self) -> bool:
        if not self.at:
            return False
        self.at -= 1
        self._remove(self.at)
        return True

    def delete(self) -> bool:
        if self.at_end:
            return False
        self._remove(self.at)
        return True

    def left(self) -> bool:
        if not self.at:
            return False
        self.at -= 1
        return True

    def right(self) -> bool:
        if self.at_end:
            return False
        self.at += 1
        return True

    def home(self) -> bool:
        moved, self.at = self.at != 0, 0
        return moved

    def end(self) -> bool:
        moved, self.at = not self.at_end, len(self.chars)
        return moved

    def delete_word(self) -> bool:
        """Ctrl-W: the word before the cursor goes (and the spaces after it)."""
        start = self.at
        while start and self.chars[start - 1] == " ":
            start -= 1
        while start and self.chars[start - 1] != " ":
            start -= 1
        if start == self.at:
            return False
        while self.at > start:
            self.at -= 1
            self._remove(self.at)
        return True

    def clear(self) -> bool:
        """Ctrl-U: the whole line goes."""
        cleared = bool(self.chars)
        self._show("")
        return cleared

    def _show(self, text: str) -> None:
        self.chars = list(text)
        self.at = len(self.chars)
        self.size = size(text)

    def up(self) -> bool:
        """The history line before the one shown."""
        if not self.recalled:
            return False
        if self.recalled == len(self.history):
            self._draft = self.text
        self.recalled -= 1
        self._show(self.history[self.recalled])
        return True

    def down(self) -> bool:
        """The history line after the one shown, then the draft again."""
        if self.recalled >= len(self.history):
            return False
        self.recalled += 1
        self._show(self.history[self.recalled] if self.recalled < len(self.history)
                   else self._draft)
        return True

    def take(self, remember: bool = True) -> str:
        """The line typed, Enter pressed: the editor is empty again."""
        text = self.text
        if remember and text.strip() and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self.recalled = len(self.history)
        self._show("")
        self._draft = ""
        return text
