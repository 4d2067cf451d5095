"""The Lord's screen: how server lines look, and the two keyboards.

- `render` colours one line by its kind (system, error, event, the Lord's
  own, each member's chat) unless colour is off (`NO_COLOR`, a pipe).
- `LordTerminal` is the front end on a terminal: a
  `twisted.conch.recvline.HistoricRecvLine` that owns the input line, with
  editing and history, shows a `You: ` prompt and prints incoming lines
  above it, so what the player has half typed survives.
- `LordPipe` is the front end when stdin or stdout is not a terminal: plain
  lines in, plain lines out, no prompt, no colour; it sees the end of
  input through `IHalfCloseableProtocol`.

Both talk to a `Keyboard`, the `Lord` driver: `say` a line, `leave` at the
end of input or Ctrl-C; the Lord shows the server's lines on a `Screen`.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol, IReactorTime
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from realm.bot import LEAVE

if TYPE_CHECKING:
    from realm.client import RealmClient

PROMPT = "You: "
#: How long to wait for the server to close after `--leave`, in seconds.
LEAVE_GRACE = 5.0
CTRL_C = b"\x03"
CTRL_D = b"\x04"

RESET = "\x1b[0m"
#: Colours (SGR parameters) of each kind of line.
COLOURS = {
    "error": "1;31",
    "event": "1;33",
    "system": "36",
    "own": "1;32",
}
#: Colours for members' chat, one per name, the Lord's own green left out.
MEMBER_COLOURS = ("34", "35", "94", "95", "96", "33", "91", "37")


class Keyboard(Protocol):
    """What a front end drives: the Lord."""

    def say(self, text: str) -> None: ...

    def leave(self) -> None: ...


class Screen(Protocol):
    """What the Lord prints to."""

    def show(self, line: str) -> None: ...

    def close(self) -> Deferred[None]:
        """Flush what is shown and let go of the terminal or pipe."""


def colour_wanted(environ: Mapping[str, str]) -> bool:
    """Colour unless `NO_COLOR` is set to anything (no-color.org) or TERM is dumb."""
    return not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


def kind(line: str) -> str:
    """The kind of a server line: `error`, `event`, `system` or `chat`."""
    if line.startswith("*** Error: "):
        return "error"
    if line.startswith("*** [New Event] "):
        return "event"
    if line.startswith("***"):
        return "system"
    return "chat"


def _member_colour(name: str) -> str:
    return MEMBER_COLOURS[zlib.crc32(name.lower().encode()) % len(MEMBER_COLOURS)]


def render(line: str, colour: bool, own: bool = False) -> str:
    """`line` as the Lord sees it: coloured by kind, or as it is."""
    if not colour:
        return line
    if own:
        code = COLOURS["own"]
    elif kind(line) == "chat":
        name, colon, _ = line.partition(": ")
        if not colon:
            return line
        code = _member_colour(name)
    else:
        code = COLOURS[kind(line)]
    return f"\x1b[{code}m{line}{RESET}"


class LordTerminal(HistoricRecvLine):
    """The Lord's keyboard and screen on a terminal (raw mode, insults)."""

    def __init__(self, lord: Keyboard, colour: bool,
                 columns: Callable[[], int] = lambda: 80) -> None:
        self.lord = lord
        self.colour = colour
        self.columns = columns
        self.gone: Deferred[None] = Deferred()
        prompt = render(PROMPT, colour, own=True).encode()
        self.ps = (prompt, prompt)
        self._prompt_width = len(PROMPT)
        self._utf8 = b""  # the first bytes of a character still being typed

    def connectionMade(self) -> None:
        super().connectionMade()
        self.keyHandlers[CTRL_C] = self.lord.leave
        self.keyHandlers[CTRL_D] = self._end_of_input

    def initializeScreen(self) -> None:
        # RecvLine resets the terminal, wiping the screen; keep it.
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()

    def keystrokeReceived(self, keyID: bytes | object, modifier: object) -> None:
        """Take non-ASCII characters too: RecvLine keeps only ASCII.

        The terminal sends a character as its UTF-8 bytes, one keystroke
        each; they go into the line as one character, so the cursor and
        backspace move by characters.
        """
        if isinstance(keyID, bytes) and keyID >= b"\x80":
            pending = self._utf8 + keyID
            try:
                pending.decode("utf-8")
            except UnicodeDecodeError as e:
                incomplete = e.reason == "unexpected end of data"
                self._utf8 = pending if incomplete else b""  # else not UTF-8: drop
                return
            self._utf8 = b""
            self.characterReceived(pending, False)
            return
        super().keystrokeReceived(keyID, modifier)

    def _end_of_input(self) -> None:
        if not self.lineBuffer:
            self.lord.leave()

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        # The typed line stays on screen; redraw it in the Lord's colour.
        rows = max(1, -(-(self._prompt_width + len(text)) // max(self.columns(), 1)))
        self.terminal.cursorUp(rows)
        self.terminal.write(b"\r")
        self.terminal.eraseToDisplayEnd()
        self.terminal.write(render(PROMPT + text, self.colour, own=True).encode())
        self.terminal.write(b"\n" + self.ps[self.pn])  # the terminal adds the \r
        if text.strip():
            self.lord.say(text)

    def show(self, line: str) -> None:
        """Print `line` above the input line, then redraw what was typed."""
        self.terminal.write(b"\r")
        self.terminal.eraseToDisplayEnd()
        self.terminal.write(render(line, self.colour).encode() + b"\n")
        self.drawInputLine()
        behind = len(self.lineBuffer) - self.lineBufferIndex
        if behind:
            self.terminal.cursorBackward(behind)

    def close(self) -> Deferred[None]:
        """Clear the prompt, so the shell's prompt starts on a clean line."""
        if not self.gone.called:
            self.terminal.write(b"\r")
            self.terminal.eraseToLineEnd()
            self.terminal.transport.loseConnection()  # not the terminal's: it resets
        return self.gone

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lord.leave()
        if not self.gone.called:
            self.gone.callback(None)


@implementer(IHalfCloseableProtocol)
class LordPipe(LineReceiver):
    """The Lord's keyboard and screen on pipes: plain lines both ways."""

    delimiter = b"\n"

    def __init__(self, lord: Keyboard) -> None:
        self.lord = lord
        self.gone: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if text.strip():
            self.lord.say(text)

    def readConnectionLost(self) -> None:
        self.lord.leave()

    def writeConnectionLost(self) -> None:
        """Nobody reads our output any more; keep playing until input ends."""

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lord.leave()
        if not self.gone.called:
            self.gone.callback(None)

    def show(self, line: str) -> None:
        if self.transport is not None:
            self.transport.write(line.encode("utf-8", "replace") + b"\n")

    def close(self) -> Deferred[None]:
        """Flush what is written, then close."""
        if self.transport is not None and not self.gone.called:
            self.transport.loseConnection()
        return self.gone


def terminal_colour() -> bool:
    """Whether the Lord's terminal gets colour, from the environment."""
    return colour_wanted(os.environ)


def lord_left(line: str) -> bool:
    """Whether the server says the Lord has left (so the realm is over)."""
    return line.startswith("*** ") and "The Lord has left the realm" in line


def server_closing(line: str) -> bool:
    """Whether the server says it is shutting down (a goodbye, not a fault)."""
    return line.startswith("*** The server is shutting down")


class Lord:
    """The Lord's driver of a `realm.client.RealmClient`, fed by a keyboard.

    Lines typed before the join are held and sent after it (the name, and
    a password, must go first); end of input or Ctrl-C sends `--leave`.
    `done` fires with the exit code: 0 when the Lord left, 1 when the
    connection was lost or the server refused the Lord.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.client: RealmClient | None = None
        self.screen: Screen | None = None
        self.held: list[str] = []
        self.is_joined = False
        self.leaving = False
        self.ended = False
        #: Why the Lord could not play, when the screen has not said so.
        self.why = ""
        self.failed = False
        self._grace: IDelayedCall | None = None
        #: Fires with the process's exit code when the connection is gone.
        self.done: Deferred[int] = Deferred()
        self._early: list[str] = []

    def connected(self, client: RealmClient) -> None:
        self.client = client

    def attach(self, screen: Screen) -> None:
        """Show lines on `screen` from now on, starting with those so far."""
        self.screen = screen
        for line in self._early:
            screen.show(line)
        self._early = []

    def heard(self, line: str) -> None:
        if lord_left(line):
            self.ended = True
        if self.screen is None:
            self._early.append(line)
        else:
            self.screen.show(line)

    def joined(self) -> None:
        self.is_joined = True
        held, self.held = self.held, []
        for text in held:
            self._send(text)

    def refused(self, error: str) -> str | None:
        if not error.startswith("*** "):  # our own words, not the server's
            self.why = error
        self.failed = True
        return None

    def say(self, text: str) -> None:
        """A line the Lord typed."""
        if self.leaving:
            return
        if text.strip() == LEAVE:
            self.leave()
        elif self.is_joined:
            self._send(text)
        else:
            self.held.append(text)

    def leave(self) -> None:
        """End of input or Ctrl-C: say goodbye, and give the server a moment."""
        if self.leaving or self.client is None:
            return
        self.leaving = True
        if self.is_joined:
            self._send(LEAVE)
        else:
            self.held.append(LEAVE)
        self._grace = self.clock.callLater(LEAVE_GRACE, self.client.abort)

    def _send(self, text: str) -> None:
        if self.client is not None and self.client.connected:
            self.client.send(text)

    def lost(self, reason: Failure) -> None:
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        if self.failed:  # refused: the server's error, or `why`, says so
            self.done.callback(1)
        elif self.leaving or self.ended:
            self.done.callback(0)
        else:
            self.why = "The connection to the realm was lost."
            self.done.callback(1)

