"""The checks every client line passes before it means anything.

Pure: no transport, no reactor.  `Gate.check(raw, now)` takes one line
(without its line end) and the time, and returns the line's text or a
`Refused` saying why.  A line is refused when it is longer than 1024
bytes, is not UTF-8, holds control characters (C0 but tab, DEL, C1: no
escape sequences reach other people's terminals; the Unicode line
separators and bidirectional overrides, which break or reorder what
others see of the rest of their line), or comes faster than
the connection's rate (a token bucket: `rate` lines a second, bursts of
twice that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from realm import wire

#: The first line of an HTTP request (`GET / HTTP/1.1`): what a browser
#: sends when a web page posts to the game's port or the console's.
_HTTP = re.compile(r"[A-Z]{3,10} \S+ HTTP/\d(\.\d)?\s*\Z")

#: C0 controls but tab, DEL, C1 controls, and the Unicode line separators
#: and bidirectional overrides and isolates (which reorder what a terminal shows).
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def has_control(text: str) -> bool:
    """Whether `text` holds a character no line may carry (see above)."""
    # isprintable() is False for every control character (and for some
    # harmless ones): the regex decides only for those lines.
    return not text.isprintable() and CONTROL_CHARACTERS.search(text) is not None


def is_http(text: str) -> bool:
    """Whether `text` is an HTTP request's first line.  A page on any web
    site can make a browser send one, its body's lines after it, to any
    address the browser reaches: such a connection is closed at once."""
    return _HTTP.match(text) is not None


@dataclass(frozen=True)
class Refused:
    """A refused line: `kind` for counting and logging, `line` for the client."""

    kind: str
    line: bytes


LINE_TOO_LONG = Refused("line_too_long", wire.LINE_TOO_LONG.notice(limit=wire.MAX_LINE))
NOT_UTF8 = Refused("not_utf8", wire.NOT_UTF8.notice())
CONTROL = Refused("control", wire.CONTROL.notice())
NOT_HTTP = Refused("not_http", wire.NOT_HTTP.notice())


class Gate:
    """One connection's line checks and token bucket."""

    __slots__ = ("rate", "_burst", "_tokens", "_last", "_too_fast")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate  # lines a second; 0: no limit
        self._burst = max(2.0 * rate, 1.0)  # below 0.5 a second, still one line
        self._tokens = self._burst
        self._last = now
        self._too_fast = Refused("too_fast", wire.TOO_FAST.notice(rate=f"{rate:g}"))

    def check(self, raw: bytes, now: float) -> str | Refused:
        """The text of `raw`, or why it is refused."""
        if len(raw) > wire.MAX_LINE:
            return LINE_TOO_LONG
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return NOT_UTF8
        if has_control(text):
            return CONTROL
        if self.rate:
            tokens = self._tokens + (now - self._last) * self.rate
            self._last = now
            if tokens > self._burst:
                tokens = self._burst
            if tokens < 1.0:
                self._tokens = tokens
                return self._too_fast
            self._tokens = tokens - 1.0
        return text
