"""The Lord's screen: how server lines look, on a terminal or on pipes.

This module only draws; the Lord's driver is `realm.lord.LordDriver`.

How lines look is `realm.looks`'s.

- `LordTerminal` is the front end on a terminal (raw mode, through
  `twisted.conch.insults`): it owns the input line (`realm.editor`), with
  editing, history and Ctrl-U, shows a `You: ` prompt and prints incoming
  lines above it, and the realm's holdings on a row above the prompt.
  Whenever it draws it redraws the WHOLE input (the status row too), however
  many rows it wraps over, and puts the cursor back where it was; it can
  ask for a password with the echo hidden.  When the terminal is resized
  (SIGWINCH, or found at the next redraw), it works out where its rows
  went and draws them again at the new width (see `LordTerminal.resized`).
- `LordPipe` is the front end when stdin or stdout is not a terminal:
  plain lines in, plain lines out, no prompt, no colour; it sees the end
  of input through `IHalfCloseableProtocol`.

Both talk to a `Keyboard` (the Lord's driver): `say` a line, `leave` at
the end of input, `stop` at Ctrl-C.  What they show has been made visible
(`realm.looks.visible`): no server's control character reaches the
terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.conch.insults.insults import TerminalProtocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from realm import wire
from realm.editor import LineEditor, cells, places
from realm.looks import COLOURS, RESET, Palette, fit, render, status, visible

PROMPT = "You: "
CTRL_A = b"\x01"
CTRL_C = b"\x03"
CTRL_D = b"\x04"
CTRL_E = b"\x05"
CTRL_H = b"\x08"
CTRL_L = b"\x0c"
CTRL_U = b"\x15"
CTRL_W = b"\x17"
BELL = b"\x07"
#: From a row the input has filled to the next one, as the terminal's own
#: wrapping goes: a space wraps (the next character written takes its
#: place), a carriage return goes back to it.  A line break would split
#: the input into two lines, which a terminal that re-wraps its lines on
#: a resize keeps apart (`LordTerminal.resized`).
NEXT_ROW = b" \r"
#: Shown when the Lord types (or pastes) past the longest line the server takes.
FULL = f"*** Your line is full ({wire.MAX_LINE} bytes): the rest was not typed."

class Keyboard(Protocol):
    """What a front end drives: the Lord."""

    def say(self, text: str) -> None: ...

    def leave(self) -> None: ...

    def stop(self) -> None: ...


class LordTerminal(TerminalProtocol):
    """The Lord's keyboard and screen on a terminal (raw mode, insults)."""

    def __init__(self, lord: Keyboard, colour: bool,
                 columns: Callable[[], int] = lambda: 80, reflows: bool = True) -> None:
        self.lord = lord
        self.colour = colour
        self.columns = columns
        #: Whether the terminal re-wraps its lines when resized (see `resized`).
        self.reflows = reflows
        self.editor = LineEditor()
        self.palette = Palette()
        self.gone: Deferred[None] = Deferred()
        #: The row of the input the cursor is on (0: the first, the status's
        #: when there is one, else the prompt's).
        self._row = 0
        #: The width the input was drawn at, and its status row's columns.
        self._width = 0
        self._status_cells = 0
        #: The realm's holdings, kept on a row of their own above the prompt.
        self._status = ""
        self._utf8 = b""  # the first bytes of a character still being typed
        #: While a password is asked for: its answer, its prompt, the draft.
        self._secret: Deferred[str | None] | None = None
        self._secret_prompt = ""
        self._draft = LineEditor()
        self._told_full = False  # FULL was shown, and the line has not changed since

    def connectionMade(self) -> None:
        t = self.terminal
        edit = self._edit
        self.keys: dict[object, Callable[[], None]] = {
            b"\r": self._enter, b"\n": self._enter,
            t.BACKSPACE: edit(lambda e: e.backspace()),
            CTRL_H: edit(lambda e: e.backspace()),
            t.DELETE: edit(lambda e: e.delete()),
            t.LEFT_ARROW: edit(lambda e: e.left()),
            t.RIGHT_ARROW: edit(lambda e: e.right()),
            t.HOME: edit(lambda e: e.home()), CTRL_A: edit(lambda e: e.home()),
            t.END: edit(lambda e: e.end()), CTRL_E: edit(lambda e: e.end()),
            t.UP_ARROW: edit(lambda e: e.up()),
            t.DOWN_ARROW: edit(lambda e: e.down()),
            CTRL_U: edit(lambda e: e.clear()),
            CTRL_W: edit(lambda e: e.delete_word()),
            CTRL_L: self._clear_screen,
            t.TAB: lambda: self._type("    "),
            CTRL_C: self._interrupt,
            CTRL_D: self._end_of_input,
        }
        self._write_input()

    def _edit(self, change: Callable[[LineEditor], bool]) -> Callable[[], None]:
        """A key that makes `change` to the editor of the moment (another is
        swapped in while a password is typed), redrawn if it changed."""
        def key() -> None:
            if change(self.editor):
                self._told_full = False
                self._redraw()
        return key

    # -- keys ------------------------------------------------------------
    def keystrokeReceived(self, keyID: bytes | object, modifier: object) -> None:
        """Characters beyond ASCII too: the terminal sends a character as
        its UTF-8 bytes, one keystroke each; they go into the line as one."""
        if isinstance(keyID, bytes) and len(keyID) == 1 and keyID >= b"\x80":
            pending = self._utf8 + keyID
            try:
                char = pending.decode("utf-8")
            except UnicodeDecodeError as e:
                incomplete = e.reason == "unexpected end of data"
                self._utf8 = pending if incomplete else b""  # else not UTF-8: drop
                return
            self._utf8 = b""
            self._type(char)
            return
        handler = self.keys.get(keyID)
        if handler is not None:
            handler()
        elif isinstance(keyID, bytes) and len(keyID) == 1 and b" " <= keyID < b"\x7f":
            self._type(keyID.decode("ascii"))

    def _type(self, text: str) -> None:
        if visible(text) != text:
            return  # a control character: not part of a line
        at_end = self.editor.at_end
        if not self.editor.insert(text):
            if not self._told_full:  # once, not once for each key of a long paste
                self._told_full = True
                self.terminal.write(BELL)
                self.show(FULL)
            return
        self._told_full = False
        if self._secret is not None:
            return  # the echo is hidden
        if not at_end or self.columns() != self._width:
            self._redraw()
            return
        self.terminal.write(text.encode("utf-8"))
        row, column = self._places()[-1]
        row += self._above()
        if column == 0 and row > self._row:
            self.terminal.write(NEXT_ROW)  # the row is full: go to the next one
        self._row = row

    def _enter(self) -> None:
        asking = self._secret
        text = self.editor.take(remember=asking is None)
        self._clear_input()
        if asking is not None:
            self._secret, self.editor = None, self._draft
            self._write_input()
            asking.callback(text)
            return
        look = render(PROMPT + text, self.colour, own=True, width=self.columns())
        self.terminal.write(look.encode() + b"\n")
        self._write_input()
        if text.strip():
            self.lord.say(text)

    def _interrupt(self) -> None:
        self._give_up_secret()
        self.lord.stop()

    def _end_of_input(self) -> None:
        if self.editor.chars:
            return
        if self._secret is not None:
            self._give_up_secret()
        else:
            self.lord.leave()

    # -- drawing ---------------------------------------------------------
    def _prompt(self) -> tuple[str, bool]:
        """The prompt, and whether what is typed is shown."""
        if self._secret is not None:
            return self._secret_prompt, False
        return PROMPT, True

    def _places(self, width: int = 0) -> list[tuple[int, int]]:
        """Where each character of the input stands (`places`), on a
        terminal `width` wide (the terminal's width now by default)."""
        prompt, shown = self._prompt()
        return places(len(prompt), self.editor.chars if shown else [], width or self.columns())

    def _cursor(self, spots: list[tuple[int, int]]) -> tuple[int, int]:
        """Where the cursor stands among `spots` (at the end of a hidden
        password)."""
        return spots[self.editor.at] if self._prompt()[1] else spots[-1]

    def _clear_input(self) -> None:
        """Erase the whole input, every row of it; the cursor at its start."""
        width = self.columns()
        if self._width and width != self._width and self.reflows:
            self._row = self._row_reflowed(width)
        if self._row:
            self.terminal.cursorUp(self._row)
        self.terminal.write(b"\r")
        self.terminal.eraseToDisplayEnd()
        self._row = 0

    def _above(self) -> int:
        """Rows above the prompt's: the status row, if any."""
        return 1 if self._status else 0

    def _row_reflowed(self, width: int) -> int:
        """The cursor's row in the input once a terminal that re-wraps its
        lines has made them `width` wide: the status row may take several
        rows now, the prompt's line more or fewer."""
        above = -(-self._status_cells // width) if self._status else 0
        return above + self._cursor(self._places(width))[0]

    def _write_input(self) -> None:
        """Draw the status row, the prompt and the line from the cursor (at
        a row's start), then put the cursor where the editor has it."""
        self._width = self.columns()
        if self._status:
            status = fit(self._status, self._width)
            self._status_cells = sum(map(cells, status))
            look = f"\x1b[{COLOURS['status']}m{status}{RESET}" if self.colour else status
            self.terminal.write(look.encode("utf-8") + b"\r\n")
        prompt, shown = self._prompt()
        text = self.editor.text if shown else ""
        look = render(prompt, self.colour, own=True) if shown else prompt
        self.terminal.write(look.encode() + text.encode("utf-8"))
        spots = self._places()
        end_row, end_column = spots[-1]
        if end_column == 0 and end_row > 0:
            self.terminal.write(NEXT_ROW)  # the last row is full: stand below it
        row, column = self._cursor(spots)
        if end_row > row:
            self.terminal.cursorUp(end_row - row)
        if column != end_column or row != end_row:
            self.terminal.write(b"\r")
            if column:
                self.terminal.cursorForward(column)
        self._row = row + self._above()

    def _redraw(self) -> None:
        self._clear_input()
        self._write_input()

    def resized(self) -> None:
        """The terminal has a new size (SIGWINCH): draw the input at its
        new width.  A terminal that re-wraps its lines (VTE, iTerm2,
        kitty, tmux, Windows Terminal) has moved the input's rows; where
        to is worked out from what was drawn (`_row_reflowed`).  One that
        does not (xterm) left them where they were.  Either way no stale
        copy of the input stays above it; Ctrl-L is there for the rest."""
        if self.columns() != self._width:
            self._redraw()

    def _clear_screen(self) -> None:
        """Ctrl-L: a clean screen, the input at its top (after a resize
        left stale rows, say)."""
        self.terminal.cursorHome()
        self.terminal.eraseDisplay()
        self._row = 0
        self._write_input()

    # -- the Screen --------------------------------------------------------
    def show(self, line: str) -> None:
        """Print `line` above the input, then redraw the input whole."""
        self.palette.see(line)
        self._clear_input()
        self._status = status(line, self._status)
        look = render(line, self.colour, palette=self.palette, width=self.columns())
        self.terminal.write(look.encode() + b"\n")
        self._write_input()

    def ask_secret(self, prompt: str) -> Deferred[str | None] | None:
        """Ask for a password in the input line, the echo hidden."""
        if self._secret is None:
            self._secret, self._secret_prompt = Deferred(), prompt
            self._draft, self.editor = self.editor, LineEditor()
            self._redraw()
        return self._secret

    def _give_up_secret(self) -> None:
        asking = self._secret
        if asking is not None:
            self._secret, self.editor = None, self._draft
            self._redraw()
            asking.callback(None)

    def close(self) -> Deferred[None]:
        """Clear the input, so the shell's prompt starts on a clean line."""
        if not self.gone.called:
            self._clear_input()
            self.terminal.transport.loseConnection()  # not the terminal's: it resets
        return self.gone

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._give_up_secret()
        self.lord.leave()
        if not self.gone.called:
            self.gone.callback(None)


@implementer(IHalfCloseableProtocol)
class LordPipe(LineReceiver):
    """The Lord's keyboard and screen on pipes: plain lines both ways."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20  # longer than a line may be: the server says so, and play goes on

    def __init__(self, lord: Keyboard) -> None:
        self.lord = lord
        self.gone: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if text.strip():
            self.lord.say(text)

    def readConnectionLost(self) -> None:
        self._last_line()
        self.lord.leave()

    def writeConnectionLost(self) -> None:
        """Nobody reads our output any more; keep playing until input ends."""

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._last_line()
        self.lord.leave()
        if not self.gone.called:
            self.gone.callback(None)

    def _last_line(self) -> None:
        """Input that ends without a line end: its last line is a line too."""
        rest = self.clearLineBuffer()
        if rest:
            self.lineReceived(rest)

    def show(self, line: str) -> None:
        if self.transport is not None:
            self.transport.write(line.encode("utf-8", "replace") + b"\n")

    def ask_secret(self, prompt: str) -> None:
        """Pipes cannot hide what is typed: no password is asked for."""
        return None

    def close(self) -> Deferred[None]:
        """Flush what is written, then close."""
        if self.transport is not None and not self.gone.called:
            self.transport.loseConnection()
        return self.gone
