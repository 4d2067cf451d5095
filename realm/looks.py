"""How server lines look to the Lord: colours by kind, a colour for each
member present, and the realm's status row.  Pure: no terminal here
(`realm.console` draws).

- `render` colours one line by its kind (system, error, event, the
  realm's news, a reign's end, the Lord's own, each member's chat) unless
  colour is off (`NO_COLOR`, a pipe), and breaks it into rows at spaces
  for a terminal of a given width (`wrap`).
- `Palette` gives each member present a colour of its own, in order of
  first sight, as the web page does; a colour is shared only when more
  members are present than there are colours.
- `status` is the row kept above the Lord's prompt: the realm's holdings
  after each event, how a reign ended.
- `visible` writes a server's control characters out (`^[`, `^G`...), so
  that no terminal obeys them (realm.client applies it to every line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from realm import wire
from realm.editor import cells
from realm.gate import CONTROL_CHARACTERS


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ESC as ^[, BEL as ^G: as `cat -v` shows them
    if code == 0x7F:
        return "^?"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with its control characters written out, so that a terminal
    shows them instead of obeying them (tab is kept)."""
    return CONTROL_CHARACTERS.sub(_shown, text)


RESET = "\x1b[0m"
#: Colours (SGR parameters) of each kind of line.
COLOURS = {
    "error": "1;31",
    "event": "1;33",
    "system": "36",
    "own": "1;32",
    "report": "33",
    "ending": "1;35",
    "status": "7",  # reversed: the holdings' row above the prompt
}
#: Colours for members' chat, the Lord's own green left out.
MEMBER_COLOURS = ("34", "35", "94", "95", "96", "33", "91", "37")


def colour_wanted(environ: Mapping[str, str]) -> bool:
    """Colour unless `NO_COLOR` is set to anything (no-color.org) or TERM is dumb."""
    return not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


def terminal_colour() -> bool:
    """Whether the Lord's terminal gets colour, from the environment."""
    return colour_wanted(os.environ)


def reflows(environ: Mapping[str, str]) -> bool:
    """Whether the terminal re-wraps its lines when resized, as most do
    (VTE, iTerm2, kitty, Terminal.app, Windows Terminal, tmux), but xterm
    (which says `XTERM_VERSION`) and the Linux console."""
    if "TMUX" in environ:  # tmux re-wraps, whatever it runs in
        return True
    return "XTERM_VERSION" not in environ and environ.get("TERM") != "linux"


def kind(line: str) -> str:
    """The kind of a server line: `error`, `event`, `report` (`[Realm]`),
    `ending` (`[Reign Ended]`), `system` or `chat`."""
    if wire.is_error(line):
        return "error"
    if wire.is_event(line):
        return "event"
    if line.startswith(wire.NOTICE + wire.REPORT):
        return "report"
    if wire.is_reign_ended(line):
        return "ending"
    if line.startswith(wire.NOTICE.rstrip()):
        return "system"
    return "chat"


class Palette:
    """Each member present its own colour, in order of first sight.

    A member is present from its `entered` line (or, for those there
    before the Lord, its first chat line or a `--who` naming it) until its
    departure line.
    """

    def __init__(self, colours: tuple[str, ...] = MEMBER_COLOURS) -> None:
        self.colours = colours
        #: Each member present (lower case) and its colour, in order of arrival.
        self.present: dict[str, str] = {}

    def colour(self, name: str) -> str:
        """`name`'s colour, given it now if it is new."""
        key = name.lower()
        if key not in self.present:
            taken = set(self.present.values())
            free = [c for c in self.colours if c not in taken]
            self.present[key] = free[0] if free else self.colours[
                len(self.present) % len(self.colours)]
        return self.present[key]

    def see(self, line: str) -> None:
        """Follow who is present from a server line."""
        arrived = wire.entered(line)
        departed = wire.departed(line)
        listed = wire.who(line)
        if arrived is not None:
            if arrived != wire.LORD:
                self.colour(arrived)
        elif departed is not None:
            self.present.pop(departed.lower(), None)
        elif wire.LORD_LEFT.matches(line):
            self.present.clear()
        elif listed is not None:
            names = [n for n in listed if n != wire.LORD]
            here = {n.lower() for n in names}
            for gone in [key for key in self.present if key not in here]:
                del self.present[gone]
            for name in names:
                self.colour(name)


#: What a wrapped line's rows after its first begin with.
INDENT = "  "


def wrap(line: str, width: int) -> list[str]:
    """`line` in rows narrower than a terminal `width` columns wide,
    broken at spaces, the rows after the first indented: left to itself,
    a terminal breaks words.  A word no row can hold (a URL, a line of
    Chinese) goes on whole, for the terminal to wrap: it copies as one."""
    most = max(width - 1, len(INDENT) + 1)  # a full row may wrap by itself
    rows: list[str] = []
    row, used = "", 0
    for n, word in enumerate(line.expandtabs().split(" ")):
        size = sum(map(cells, word))
        space = 1 if n else 0
        fits = used + space + size <= most
        if not (fits or word):
            continue  # spaces where a row ends: the break stands for them
        if fits or size > most - len(INDENT):
            row += " " * space + word
            used = min(used + space + size, most)  # past the end: the next word breaks
        else:
            rows.append(row)
            row, used = INDENT + word, len(INDENT) + size
    rows.append(row)
    return rows


def render(line: str, colour: bool, own: bool = False,
           palette: Palette | None = None, width: int = 0) -> str:
    """`line` as the Lord sees it: coloured by kind, or as it is; in rows
    joined by newlines when a terminal's `width` is given (`wrap`)."""
    text = "\n".join(wrap(line, width)) if width else line
    if not colour:
        return text
    if own:
        code = COLOURS["own"]
    elif kind(line) == "chat":
        said = wire.chat(line)
        if said is None or palette is None:
            return text
        code = palette.colour(said[0])
    else:
        code = COLOURS[kind(line)]
    return f"\x1b[{code}m{text}{RESET}"


#: How the status row names the realm's holdings, when there is room.
HOLDINGS_HEAD = "The realm: "
_CHANGE = re.compile(r" \([+-]\d+\)")  # a holding's change, left out when there is no room


def fit(status: str, width: int) -> str:
    """The status row for a terminal `width` columns wide: without its
    head when it would not fit, then without the changes, then cut (never
    wrapped: a wrapped row is not erased as one)."""
    most = max(width - 1, 1)
    if len(status) > most and status.startswith(HOLDINGS_HEAD):
        status = status[len(HOLDINGS_HEAD):]
        if len(status) > most:
            status = _CHANGE.sub("", status)
    return status[:most]


def status(line: str, was: str) -> str:
    """The status row after `line`: the realm's holdings (as a `[Realm]`
    line, a welcome or a new reign says them), or nothing once the game
    is over."""
    report = wire.read_report(line)
    if report is not None:
        _, found = report
        values = {name: value for name, (value, _) in found.items()}
        changes = {name: change for name, (_, change) in found.items()}
        return HOLDINGS_HEAD + wire.holdings(values, changes)
    now = wire.holdings_now(line)  # a welcome, a new reign
    if now is not None:
        return HOLDINGS_HEAD + wire.holdings(now, {})
    ended = wire.REIGN_OVER.match(line)
    if ended is not None:  # from a server that does not say what the next reign holds
        return (f"The reign: {ended['outcome']} after {ended['events']} {ended['event_s']}, "
                f"score {ended['score']}; a new reign begins")
    if wire.LORD_LEFT.matches(line) or wire.realm_over(line) or wire.SHUTTING_DOWN.matches(line):
        return ""
    return was
