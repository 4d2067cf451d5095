"""What the Lord sees: rendering, colours, the line editor, and the terminal
front end drawn onto a modelled screen (`realm_procs.ScreenBuffer`, an
`insults.helper.TerminalBuffer`).

The screen is what the tests read: after every redraw no stale copy of
what was typed may remain, however many rows it wrapped over, and the
cursor stands where the player left it.
"""

from __future__ import annotations

import pytest
from realm_procs import ScreenBuffer
from twisted.conch.insults.insults import ClientProtocol, ServerProtocol
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from realm import lore, wire
from realm.console import BELL, FULL, LordPipe, LordTerminal
from realm.editor import LineEditor, cells, places
from realm.looks import (
    INDENT,
    MEMBER_COLOURS,
    Palette,
    colour_wanted,
    fit,
    kind,
    reflows,
    render,
    wrap,
)

LEFT, RIGHT, UP, DOWN = b"\x1b[D", b"\x1b[C", b"\x1b[A", b"\x1b[B"
CTRL_U = b"\x15"


class Keys:
    """The Lord, as a front end sees it: lines said, and leaving."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.left = 0
        self.stopped = 0

    def say(self, text: str) -> None:
        self.said.append(text)

    def leave(self) -> None:
        self.left += 1

    def stop(self) -> None:
        self.stopped += 1


# -- kinds and colours ----------------------------------------------------------

@pytest.mark.parametrize(("line", "expected"), [
    ("*** Error: no", "error"), ("*** [New Event] x 1 a or 2 b?", "event"),
    ("*** Arya has entered the realm (1/5)", "system"), ("Arya: hi", "chat")])
def test_kinds_of_lines(line: str, expected: str) -> None:
    assert kind(line) == expected


def test_render_without_colour_is_the_line() -> None:
    for line in ["*** Error: no", "Arya: hi", "*** [New Event] x"]:
        assert render(line, colour=False, palette=Palette()) == line
        assert render(line, colour=False, own=True) == line


def test_render_colours_each_kind_and_the_lords_own_lines() -> None:
    looks = {render(line, colour=True).split("m")[0] for line in
             ["*** Error: no", "*** [New Event] x", "*** joined"]}
    assert len(looks) == 3
    palette = Palette()
    own = render("You: eat", colour=True, own=True).split("m")[0]
    assert own not in {render(f"{name}: eat", True, palette=palette).split("m")[0]
                       for name in lore.NAMES}
    assert all(render(x, True, palette=palette).endswith("\x1b[0m")
               for x in ["Arya: x", "*** y"])


def colour(line: str, palette: Palette) -> str:
    return render(line, True, palette=palette).split("m")[0]


def test_members_present_each_get_their_own_colour() -> None:
    palette = Palette()
    names = ["Arya", "Bran", "Sansa", "Hodor", "Grey-worm", "Jon", "Tyrion", "Varys"]
    for name in names:
        palette.see(f"*** {name} has entered the realm (2/9)")
    assert len({colour(f"{name}: hi", palette) for name in names}) == len(MEMBER_COLOURS)
    assert colour("Arya: hi", palette) == colour("Arya: again", palette)  # stable


def test_colours_in_order_of_first_sight_and_freed_on_departure() -> None:
    palette = Palette()
    first = colour("Arya: hi", palette)  # there before the Lord: first seen chatting
    palette.see("*** Bran has entered the realm (3/5)")
    second = colour("Bran: hi", palette)
    assert (first, second) == (f"\x1b[{MEMBER_COLOURS[0]}", f"\x1b[{MEMBER_COLOURS[1]}")
    palette.see("*** Arya has been dismissed by the Lord (2/5)")
    palette.see("*** Sansa has entered the realm (3/5)")
    assert colour("Sansa: hi", palette) == first  # Arya's colour, free again
    assert colour("Bran: hi", palette) == second


def test_a_colour_is_shared_only_when_more_are_present_than_colours() -> None:
    palette = Palette()
    names = [f"M{i}" for i in range(len(MEMBER_COLOURS) + 2)]
    for name in names:
        palette.see(f"*** {name} has entered the realm (2/20)")
    looks = [colour(f"{name}: hi", palette) for name in names]
    assert len(set(looks[:len(MEMBER_COLOURS)])) == len(MEMBER_COLOURS)


def test_who_tells_who_is_present() -> None:
    palette = Palette()
    palette.see("*** Arya has entered the realm (2/5)")
    palette.see("*** In the realm 'westeros' (3/5): Lord, Bran, Sansa")
    assert list(palette.present) == ["bran", "sansa"]


@pytest.mark.parametrize(("env", "wanted"), [({}, True), ({"NO_COLOR": "1"}, False),
                                             ({"NO_COLOR": ""}, True),
                                             ({"TERM": "dumb"}, False)])
def test_no_color(env: dict[str, str], wanted: bool) -> None:
    assert colour_wanted(env) is wanted


@pytest.mark.parametrize(("env", "wanted"), [
    ({"TERM": "xterm-256color", "VTE_VERSION": "7600"}, True), ({"TERM": "xterm-kitty"}, True),
    ({"TERM": "xterm", "XTERM_VERSION": "XTerm(390)"}, False), ({"TERM": "linux"}, False),
    ({"TERM": "tmux-256color", "TMUX": "/tmp/t", "XTERM_VERSION": "XTerm(390)"}, True)])
def test_which_terminals_re_wrap_their_lines_when_resized(env: dict[str, str],
                                                          wanted: bool) -> None:
    assert reflows(env) is wanted


# -- the editor ------------------------------------------------------------------

def test_editing_history_and_ctrl_u() -> None:
    editor = LineEditor()
    editor.insert("we eat")
    editor.left(), editor.left(), editor.left()
    editor.insert("shall ")
    assert (editor.text, editor.at) == ("we shall eat", 9)
    assert editor.take() == "we shall eat"
    editor.insert("draft")
    assert editor.up() and editor.text == "we shall eat"
    assert editor.down() and editor.text == "draft"
    assert editor.clear() and (editor.text, editor.at) == ("", 0)
    # Up after Ctrl-U recalls the line sent, the cursor at its end ...
    assert editor.up() and (editor.text, editor.at) == ("we shall eat", 12)
    # ... and is refused at the oldest line, which stays shown ...
    assert not editor.up() and (editor.text, editor.at) == ("we shall eat", 12)
    # ... and Down comes back to the draft as Ctrl-U left it: empty.
    assert editor.down() and (editor.text, editor.at) == ("", 0)
    assert not editor.down() and editor.text == ""


def test_places_over_wrapped_rows() -> None:
    assert places(5, list("ab"), 10) == [(0, 5), (0, 6), (0, 7)]
    assert places(5, list("abcde"), 10)[-1] == (1, 0)  # a full row: the cursor below
    assert places(8, ["a", "龍", "b"], 10) == [(0, 8), (1, 0), (1, 2), (1, 3)]  # wraps whole


# -- the terminal ------------------------------------------------------------------

class Wrapping(ScreenBuffer):
    """A screen that knows which rows it wrapped itself (soft) rather than
    by a line break, as terminals that re-wrap on a resize do."""

    def __init__(self) -> None:
        super().__init__()
        self._soft: dict[int, object] = {}  # each row the text ran on from, by id()

    def ran_on(self, row: object) -> bool:
        return self._soft.get(id(row)) is row  # the row itself kept: its id is not reused

    def mark(self, row: object, soft: bool = True) -> None:
        if soft:
            self._soft[id(row)] = row
        elif self.ran_on(row):
            del self._soft[id(row)]

    def insertAtCursor(self, b: bytes) -> None:
        if self.x >= self.width and b not in (b"\r", b"\n"):
            self.mark(self.lines[self.y])
        super().insertAtCursor(b)

    def eraseToLineEnd(self) -> None:
        self.mark(self.lines[self.y], soft=False)
        super().eraseToLineEnd()


class Screen:
    """A terminal screen in memory: the Lord's terminal writes to it."""

    def __init__(self, keys: Keys | None = None, colour: bool = False,
                 width: int = 80, height: int = 24) -> None:
        self.keys = keys or Keys()
        self.buffer = Wrapping()
        self.buffer.width, self.buffer.height = width, height
        parser = ClientProtocol(lambda: self.buffer)
        parser.makeConnection(StringTransport())
        self.raw = b""

        screen = self

        class Wire(StringTransport):
            def write(self, data: bytes) -> None:
                screen.raw += data
                parser.dataReceived(data)

        self.width = width
        self.server = ServerProtocol(LordTerminal, self.keys, colour, lambda: self.width)
        self.server.makeConnection(Wire())
        self.terminal: LordTerminal = self.server.terminalProtocol  # type: ignore[assignment]

    def type(self, keys: bytes) -> None:
        self.server.dataReceived(keys)

    def show(self, *lines: str) -> None:
        for line in lines:
            self.terminal.show(line)

    def rows(self) -> list[str]:
        return [row.rstrip() for row in bytes(self.buffer).decode().split("\n") if row.strip()]

    def cursor(self) -> tuple[int, int]:
        return self.buffer.x, self.buffer.y


def wrapped(text: str, width: int = 80) -> list[str]:
    """`text` as a terminal `width` wide shows it, row by row (the line
    being typed)."""
    return [text[i:i + width].rstrip() for i in range(0, len(text), width)]


def echoed(text: str, width: int = 80) -> list[str]:
    """A line sent, as the screen keeps it: broken between words (a word
    longer than a row, by the terminal)."""
    return [part for row in wrap(text, width) for part in wrapped(row, width)]


def test_terminal_prompt_survives_incoming_lines() -> None:
    screen = Screen()
    assert screen.rows() == ["You:"]
    screen.type(b"we sh")
    screen.show("*** Lord has entered the realm (1/5)", "Arya: hi")
    assert screen.rows() == ["*** Lord has entered the realm (1/5)", "Arya: hi", "You: we sh"]
    screen.type(b"all eat\r")
    screen.show("Bran: eat? Proposal accepted!")
    assert screen.rows() == ["*** Lord has entered the realm (1/5)", "Arya: hi",
                             "You: we shall eat", "Bran: eat? Proposal accepted!", "You:"]
    assert screen.keys.said == ["we shall eat"]


@pytest.mark.parametrize("length", [75, 76, 80, 155, 160, 230])
def test_a_long_typed_line_is_redrawn_whole_when_lines_arrive(length: int) -> None:
    screen = Screen()
    typed = ("we ride north at dawn " * 12)[:length]
    screen.type(typed.encode())
    screen.show("Arya: hi", "Bran: eat? Proposal accepted!", "Sansa: what now?")
    assert screen.rows() == ["Arya: hi", "Bran: eat? Proposal accepted!",
                             "Sansa: what now?", *wrapped("You: " + typed)]
    x, y = screen.cursor()
    assert (y - 3) * 80 + x == len("You: " + typed)  # the cursor at its end
    screen.type(b"!\r")
    assert screen.keys.said == [typed + "!"]
    assert screen.rows() == ["Arya: hi", "Bran: eat? Proposal accepted!",
                             "Sansa: what now?", *echoed("You: " + typed + "!"), "You:"]


def test_the_cursor_stays_where_it_was_in_a_wrapped_line() -> None:
    screen = Screen()
    typed = "x" * 150
    screen.type(typed.encode() + LEFT * 100)  # into the first row
    screen.show("Arya: hi")
    assert screen.rows() == ["Arya: hi", *wrapped("You: " + typed)]
    assert screen.cursor() == (55, 1)
    screen.type(b"Y")
    screen.show("Bran: ho")
    assert screen.rows()[:2] == ["Arya: hi", "Bran: ho"]
    assert screen.rows()[2:] == wrapped("You: " + "x" * 50 + "Y" + "x" * 100)
    screen.type(b"\r")
    assert screen.keys.said == ["x" * 50 + "Y" + "x" * 100]
    assert screen.rows()[2:] == [*echoed("You: " + "x" * 50 + "Y" + "x" * 100), "You:"]


def test_editing_across_rows_leaves_nothing_stale() -> None:
    screen = Screen()
    screen.type(b"a" * 80 + b"\x7f" * 10 + LEFT * 5 + b"\x7f" * 5)
    assert screen.rows() == wrapped("You: " + "a" * 65)
    screen.type(UP)  # no history yet: nothing happens
    screen.type(b"\r" + b"b" * 3 + UP)
    assert screen.rows() == ["You: " + "a" * 65] * 2  # the line sent, and recalled
    screen.type(DOWN)
    assert screen.rows() == ["You: " + "a" * 65, "You: bbb"]


def test_ctrl_u_clears_the_line_however_long() -> None:
    screen = Screen()
    screen.show("Arya: hi")
    screen.type(b"garbage " * 20 + CTRL_U)
    assert screen.rows() == ["Arya: hi", "You:"]
    screen.type(b"we ride\r")
    assert screen.keys.said == ["we ride"]


def test_a_line_holds_what_the_server_takes_and_a_paste_past_it_says_so() -> None:
    screen = Screen()
    screen.type(b"x" * 100_000)  # pasted: each character a keystroke
    assert screen.rows()[0] == FULL
    assert screen.raw.count(BELL) == 1  # once, not once for each key
    screen.type(b"\x7f" + "é".encode())  # a character of two bytes: no room
    screen.type(b"\x7fy\r")
    assert screen.keys.said == ["x" * (wire.MAX_LINE - 2) + "y"]
    assert screen.rows()[-1] == "You:"
    screen.type(("é" * wire.MAX_LINE).encode() + b"\r")  # counted in bytes, as the server does
    assert screen.keys.said[1] == "é" * (wire.MAX_LINE // 2)
    assert screen.raw.count(BELL) == 3


def test_terminal_keeps_the_cursor_where_the_player_left_it() -> None:
    screen = Screen()
    screen.type(b"we eat" + LEFT * 3)
    screen.show("Arya: hi")
    screen.type(b"shall \r")
    assert screen.keys.said == ["we shall eat"]


def test_terminal_takes_characters_beyond_ascii_but_no_controls() -> None:
    screen = Screen()
    screen.type("Ser Jöran eats crème brûlée 🐉".encode())
    screen.type(b"\x7f")  # backspace takes the whole dragon, not one byte
    screen.type("\u009b\u202e!\r".encode())  # a C1 control and an override: dropped
    assert screen.keys.said == ["Ser Jöran eats crème brûlée !"]
    screen.type(UP + b"?\r")  # history keeps whole characters
    assert screen.keys.said[-1] == "Ser Jöran eats crème brûlée !?"


def test_terminal_colours_and_ctrl_keys() -> None:
    screen = Screen(colour=True)
    screen.show("*** Lord has entered the realm (1/5)", "*** [New Event] x 1 a or 2 b?")
    assert b"\x1b[1;33m*** [New Event]" in screen.raw
    screen.type(b"eat\x04")  # Ctrl-D with text typed: not the end
    assert not screen.keys.left
    screen.type(b"\r")
    assert b"\x1b[1;32mYou: eat" in screen.raw
    screen.type(b"\x03")  # Ctrl-C
    assert screen.keys.said == ["eat"] and screen.keys.stopped and not screen.keys.left


def test_terminal_ctrl_d_on_an_empty_line_leaves() -> None:
    screen = Screen()
    screen.type(b"\x04")
    assert screen.keys.left


def test_the_password_is_typed_unseen_and_forgotten() -> None:
    screen = Screen()
    screen.type(b"hello")  # a draft, typed before the question came
    asked = screen.terminal.ask_secret("The Lord's password (not shown): ")
    assert asked is not None
    given: list[str | None] = []
    asked.addCallback(given.append)
    screen.type(b"s3cret")
    screen.show("*** Hail, traveller!")
    assert screen.rows() == ["*** Hail, traveller!", "The Lord's password (not shown):"]
    screen.type(b"\r")
    assert given == ["s3cret"] and screen.keys.said == []
    assert b"s3cret" not in screen.raw
    assert screen.rows()[-1] == "You: hello"  # the draft is back
    screen.type(CTRL_U + UP)
    assert screen.rows()[-1] == "You:"  # not in the history


@pytest.mark.parametrize("key", [b"\x03", b"\x04"])
def test_giving_up_the_password(key: bytes) -> None:
    screen = Screen()
    asked = screen.terminal.ask_secret("Password: ")
    assert isinstance(asked, Deferred)
    screen.type(key)
    assert asked.called and asked.result is None


def test_pipe_front_end_plain_lines_and_end_of_input() -> None:
    keys = Keys()
    pipe = LordPipe(keys)
    out = StringTransport()
    pipe.makeConnection(out)
    pipe.show("*** Lord has entered the realm (1/5)")
    pipe.show("Arya: hi")
    assert out.value() == b"*** Lord has entered the realm (1/5)\nArya: hi\n"
    assert pipe.ask_secret("Password: ") is None  # pipes cannot hide it
    pipe.dataReceived(b"we ride\r\n\n  \nsail\n")
    assert keys.said == ["we ride", "sail"]
    pipe.readConnectionLost()
    assert keys.left
    gone = pipe.close()
    assert out.disconnecting and not gone.called  # flushing first
    pipe.connectionLost()
    assert gone.called


REPORT = ("*** [Realm] The wall holds. Gold 45 (-5) \u00b7 Food 50 \u00b7 Men 62 (+12) "
          "\u00b7 Favour 55")
STATUS = "The realm: Gold 45 (-5) \u00b7 Food 50 \u00b7 Men 62 (+12) \u00b7 Favour 55"


def test_a_narrow_terminal_keeps_every_holding_on_the_status_row() -> None:
    screen = Screen(width=50)
    screen.show(REPORT)
    holdings = STATUS.removeprefix("The realm: ")
    assert len(holdings) < 50 and holdings in screen.rows()
    narrower = Screen(width=40)  # room for the holdings without their changes
    narrower.show(REPORT)
    assert "Gold 45 \u00b7 Food 50 \u00b7 Men 62 \u00b7 Favour 55" in narrower.rows()
    narrowest = Screen(width=30)
    narrowest.show(REPORT)
    assert "Gold 45 \u00b7 Food 50 \u00b7 Men 62 \u00b7" in narrowest.rows()  # cut, not wrapped


@pytest.mark.parametrize("length", [0, 12, 76, 160])
def test_the_holdings_stay_on_a_row_above_the_prompt(length: int) -> None:
    screen = Screen()
    typed = ("we ride north at dawn " * 12)[:length]
    screen.type(typed.encode())
    screen.show(REPORT)
    assert screen.rows() == [REPORT, STATUS, *wrapped("You: " + typed)]
    screen.show("Arya: hi", "Bran: eat? Proposal accepted!")
    assert screen.rows() == [REPORT, "Arya: hi", "Bran: eat? Proposal accepted!", STATUS,
                             *wrapped("You: " + typed)]  # one status row, no stale copy
    screen.type(b"!\r")
    assert screen.keys.said == [typed + "!"]
    assert screen.rows()[-2:] == [STATUS, "You:"]


def test_the_end_of_a_reign_shows_and_the_game_over_clears_the_row() -> None:
    """(From a server that does not say what the next reign holds.)"""
    screen = Screen()
    screen.show(REPORT, "*** [Reign Ended] Won: the realm endures (12 events, score 857)")
    assert screen.rows()[-2:] == [
        "The reign: Won after 12 events, score 857; a new reign begins", "You:"]
    screen.show("*** The Lord has left the realm. The game is over.")
    assert screen.rows()[-1] == "You:"
    assert not any(row.startswith("The re") for row in screen.rows())


def test_the_holdings_show_from_the_welcome_and_each_new_reign() -> None:
    """The first decision of a reign is not made blind: the welcome, and a
    reign's end, say what the realm holds."""
    screen = Screen()
    screen.show("*** Welcome to the Game of Thrones! 5/5 are present. The realm holds Gold 45 "
                "\u00b7 Food 50 \u00b7 Men 62 \u00b7 Favour 55; a reign lasts 12 events, and "
                "falls if a holding reaches 0. The Lord's first line after an event decides it. "
                "Type --help for the commands.")
    assert screen.rows()[-2] == "The realm: Gold 45 \u00b7 Food 50 \u00b7 Men 62 \u00b7 Favour 55"
    screen.show(REPORT, "*** [Reign Ended] Won: the realm endures (12 events, score 857). A new "
                "reign begins with Gold 41 \u00b7 Food 47 \u00b7 Men 52 \u00b7 Favour 44.")
    assert screen.rows()[-2] == "The realm: Gold 41 \u00b7 Food 47 \u00b7 Men 52 \u00b7 Favour 44"


def test_the_realms_news_and_a_reigns_end_have_their_own_colours() -> None:
    assert kind(REPORT) == "report"
    assert kind("*** [Reign Ended] Won: x (1 events, score 2)") == "ending"
    assert render(REPORT, True) != render("*** Arya has entered the realm (1/5)", True)


EVENT = ("*** [New Event] A raven from Bran: the Night's Watch at Castle Black begs for "
         "men and steel before the winter storms close the passes, my Lord. "
         "1 sending men or 2 forging?")


@pytest.mark.parametrize("width", [40, 80, 120])
def test_a_long_line_breaks_between_words_not_within_them(width: int) -> None:
    screen = Screen(width=width)
    screen.show(EVENT, "Arya: hi")
    rows = screen.rows()
    shown = rows[:rows.index("Arya: hi")]
    assert len(shown) > 1
    assert all(len(row) < width for row in shown)
    assert all(row.startswith(INDENT) for row in shown[1:])
    assert " ".join(row.strip() for row in shown) == EVENT  # every word whole, in order
    assert rows[-1] == "You:"


def test_wrapping_cuts_only_a_word_longer_than_a_row_and_counts_wide_characters() -> None:
    assert wrap("short", 80) == ["short"]
    # A word no row can hold goes on whole, for the terminal to wrap (a URL
    # copies as one); the next word starts a row of its own.
    assert wrap("Arya: " + "x" * 30 + " see", 20) == ["Arya: " + "x" * 30, INDENT + "see"]
    assert wrap("Arya: a " + "x" * 15, 20) == ["Arya: a", INDENT + "x" * 15]  # it fits a row
    assert wrap("abc   ", 4) == ["abc"] and wrap("a" * 9 + "  bbb", 10) == ["a" * 9, "  bbb"]
    assert wrap("Arya:\there", 80) == ["Arya:   here"]  # a tab is the spaces it shows as
    realm = "\u738b\u56fd"  # two characters, four columns
    assert wrap(f"{realm} " * 5, 12) == [f"{realm} {realm}", f"{INDENT}{realm} {realm}",
                                         f"{INDENT}{realm} "]
    assert "\n".join(wrap("a  b", 80)) == "a  b"  # spaces within a row are kept


def test_emoji_joiners_and_markers_take_no_column() -> None:
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # man, joiner, woman, joiner, girl
    heart = "\u2764\ufe0f"
    assert sum(map(cells, family)) == 6 and sum(map(cells, heart)) == 1
    assert cells("\u00ad") == 1  # a soft hyphen: terminals draw it
    assert places(0, list(family * 13), 80)[-1] == (0, 78)  # 13 of them fit a row


def test_ctrl_w_deletes_the_word_before_the_cursor() -> None:
    screen = Screen()
    screen.type(b"we ride north  ")
    screen.type(b"\x17")
    assert screen.rows() == ["You: we ride"]
    screen.type(b"\x17\x17\x17")
    assert screen.rows() == ["You:"] and screen.terminal.editor.size == 0


def test_ctrl_l_clears_the_screen_and_keeps_the_line() -> None:
    screen = Screen()
    screen.show("Arya: hi", REPORT)
    screen.type(b"we ride")
    screen.type(b"\x0c")
    assert screen.rows() == [STATUS, "You: we ride"]
    screen.type(b" north\r")
    assert screen.keys.said == ["we ride north"]


def test_a_wrapped_line_keeps_its_colour_on_every_row() -> None:
    look = render(EVENT, True, width=40)
    assert look.startswith("\x1b[1;33m") and look.endswith("\x1b[0m")
    assert look.count("\n") == len(wrap(EVENT, 40)) - 1


# -- a resized terminal ----------------------------------------------------------

def resize(screen: Screen, width: int, reflow: bool) -> None:
    """Resize `screen` as a terminal does, then tell the Lord's terminal.
    One that re-wraps joins the rows a line filled (soft-wrapped) and
    wraps them again at `width`, the cursor staying on its character; one
    that does not (xterm) cuts each row."""
    buffer, void = screen.buffer, screen.buffer.void
    x, y = buffer.x, buffer.y
    lines: list[list[tuple[object, object]]] = []  # the rows a line took, joined
    for i, row in enumerate(buffer.lines):
        if reflow and i and buffer.ran_on(buffer.lines[i - 1]):  # it ran on
            if i == y:
                x, y = x + len(lines[-1]), len(lines) - 1
            lines[-1] = lines[-1] + row
        else:
            y = len(lines) if i == y else y
            lines.append(list(row))
    del lines[y + 1:]  # rows below the input hold nothing
    rows, ran_on = [], []
    for n, line in enumerate(lines):
        while line and line[-1][0] is void and (n != y or len(line) > x):
            line.pop()  # what a row did not fill, up to the cursor
        if n == y:
            x, y = (x % width, len(rows) + x // width) if reflow else (min(x, width - 1), len(rows))
        parts = [line[i:i + width] for i in range(0, len(line) or 1, width)][:None if reflow else 1]
        rows += parts
        ran_on += [True] * (len(parts) - 1) + [False]
    rows = [row + buffer._emptyLine(width - len(row)) for row in rows]
    top = max(0, len(rows) - buffer.height)  # rows that went up into the scrollback
    buffer.lines = rows[top:] + [buffer._emptyLine(width) for _ in range(buffer.height)]
    del buffer.lines[buffer.height:]
    for row, soft in zip(rows[top:], ran_on[top:], strict=True):
        buffer.mark(row, soft)  # for the next resize
    buffer.x, buffer.y, buffer.width = x, y - top, width
    screen.width, screen.terminal.reflows = width, reflow
    screen.terminal.resized()


@pytest.mark.parametrize("reflow", [True, False])
@pytest.mark.parametrize(("wide", "narrow", "typed"), [
    (80, 40, ""), (80, 40, "we ride north at dawn"), (80, 30, "x" * 100), (40, 80, "y" * 70),
    (80, 100, "z" * 150), (80, 60, "this is a long line typed by the lord that does not get "
                              "sent until later on, for the resize")])
def test_a_resized_terminal_keeps_one_input_at_its_new_width(
        reflow: bool, wide: int, narrow: int, typed: str) -> None:
    screen = Screen(width=wide)
    screen.show("Arya: hi", REPORT)
    screen.type(typed.encode())
    resize(screen, narrow, reflow)
    above = [part for line in ("Arya: hi", REPORT) for row in wrap(line, wide)
             for part in (wrapped(row, narrow) if reflow else [row[:narrow].rstrip()])]
    status = fit(STATUS, narrow).rstrip()
    assert screen.rows() == [*above, status, *wrapped("You: " + typed, narrow)]
    x, y = screen.cursor()
    assert (x, y - len(above) - 1) == (len("You: " + typed) % narrow,
                                       len("You: " + typed) // narrow)
    resize(screen, wide, reflow)  # and back: drawn clean again
    if reflow:  # a cut row does not come back whole; a re-wrapped one does
        assert screen.rows()[-1 - len(wrapped("You: " + typed, wide)):] == [
            fit(STATUS, wide).rstrip(), *wrapped("You: " + typed, wide)]
    resize(screen, narrow, reflow)
    screen.show("Bran: ho")
    screen.type(b"!\r")
    assert screen.keys.said == [typed + "!"]
    assert screen.rows() == [*above, "Bran: ho", *echoed("You: " + typed + "!", narrow),
                             status, "You:"]
