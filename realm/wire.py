"""The wire's words: every line the server sends, and how clients read them.

One home for the protocol's English.  The server formats its lines from
the templates here; `realm-client`, the bots and the tests recognise them
with the same templates, so a wording changed here changes both sides
(and `tests/test_page.py` holds the web page's patterns to them).

A `Line` is a named template: `ENTERED.notice(name="Arya", n=2, size=5)`
gives the wire-ready bytes `*** Arya has entered the realm (2/5)\\r\\n`;
`ENTERED.match(line)` gives back `{"name": "Arya", "n": "2", "size": "5"}`
for a line received.  A refusal a client must react to (a taken name, a
second Lord, a full realm, a password asked for or refused, a realm that
cannot be reached) is told apart by its template, not by a word in it:
`refusal(line)` names the template that matches.

Framing, server to client: one UTF-8 line ending `\\r\\n`.  Chat is
`NAME: text`, stamped by the server; everything else begins `*** `;
refusals `*** Error: `; story events `*** [New Event] `; the reign's news
`*** [Realm] ` and `*** [Reign Ended] `; an operator's word `*** [Herald] `.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LORD = "Lord"
#: A name or a realm: a letter, then up to 19 letters, digits, _ or -.
MAX_NAME = 20
NAME_RULE = rf"[A-Za-z][A-Za-z0-9_-]{{0,{MAX_NAME - 1}}}"
MAX_LINE = 1024  # the longest line a client may send, without its line end

NOTICE = "*** "
ERROR = "*** Error: "
EVENT = "[New Event] "
REPORT = "[Realm] "
REIGN_ENDED = "[Reign Ended] "
THEN = ". A new reign begins with {holdings}."  # `[Reign Ended]`'s `{then}`
HERALD = "[Herald] "
LEFT_WHY = "has left the realm"  # DEPARTED's `{gone}`: how a member went
DISMISSED_WHY = "has been dismissed by the Lord"
IDLE_WHY = "was silent too long and has been shown out"
GONE_WHYS = (LEFT_WHY, DISMISSED_WHY, IDLE_WHY)
LEAVE = "--leave"
CRLF = b"\r\n"


class Refusal(Exception):
    """Something a client asked for was refused; `line` tells it why."""

    def __init__(self, line: bytes) -> None:
        super().__init__(line.decode("utf-8").removeprefix(ERROR).rstrip())
        self.line = line


def notice(text: str) -> bytes:
    """A `*** ` line, wire-ready."""
    return b"*** " + text.encode("utf-8") + CRLF


#: What a template field matches when a line is read back; others: `.*?`.
_FIELDS = {
    "name": NAME_RULE, "realm": NAME_RULE, "n": r"\d+", "size": r"\d+", "limit": r"\d+",
    "realms": r"\d+ realms?", "missing": r"\d+", "events": r"\d+", "score": r"-?\d+",
    "seconds": r"\d+", "bytes": r"\d+", "outcome": "Won|Fallen|Abandoned", "event_s": "events?",
    "gone": "|".join(map(re.escape, GONE_WHYS)),
    "then": "(?:{})?".format(re.escape(THEN).replace(r"\{holdings\}", "(?P<holdings>.+)")),
}
_FIELD = re.compile(r"\{(\w+)(?:[^}]*)\}")


class Line:
    """One kind of server line: its template and how to read it back.

    `text` is a `str.format` template of the line after its `*** ` (or
    `*** Error: `, when `is_error`).  Reading back matches the whole line.
    """

    def __init__(self, key: str, text: str, is_error: bool = False) -> None:
        self.key = key
        self.text = text
        self.is_error = is_error
        self.head = ERROR if is_error else NOTICE
        pattern, at = [re.escape(self.head)], 0
        for field in _FIELD.finditer(text):
            pattern.append(re.escape(text[at:field.start()]))
            name = field.group(1)
            pattern.append(f"(?P<{name}>{_FIELDS.get(name, '.*?')})")
            at = field.end()
        pattern.append(re.escape(text[at:]))
        self._pattern = re.compile("".join(pattern) + r"\Z", re.DOTALL)

    def __call__(self, **fields: Any) -> str:
        """The line's text, without its `*** ` head."""
        return self.text.format(**fields)

    def notice(self, **fields: Any) -> bytes:
        """The whole line, wire-ready."""
        return (self.head + self.text.format(**fields)).encode("utf-8") + CRLF

    def match(self, line: str) -> dict[str, str] | None:
        """The fields of `line` (without its line end), if it is this kind."""
        found = self._pattern.match(line)
        return found.groupdict() if found else None

    def matches(self, line: str) -> bool:
        """Whether `line` (without its line end) is this kind."""
        return self._pattern.match(line) is not None

    def __repr__(self) -> str:
        return f"Line({self.key!r})"


_LINES: dict[str, Line] = {}


def _line(key: str, text: str, is_error: bool = False) -> Line:
    line = _LINES[key] = Line(key, text, is_error)
    return line


def _refusal(key: str, text: str) -> Line:
    return _line(key, text, is_error=True)


# -- joining ---------------------------------------------------------------
GREETING = _line("greeting", "Hail, traveller! This is realm, a Game of Thrones.")
ASK_NAME = _line("ask_name", "What is your name? Send NAME or NAME@REALM "
                 "(Lord to rule the realm).")
ASK_PASSWORD = _line("ask_password", "This realm's Lord must prove it: send the Lord's password.")
ENTERED = _line("entered", "{name} has entered the realm ({n}/{size})")
WAITING = _line("waiting", "The game begins when the realm is full: waiting for "
                "{missing} more{among}.")
LORD_AMONG = ", the Lord among them"
WELCOME = _line("welcome", "Welcome to the Game of Thrones! {n}/{size} are present. "
                "The realm holds {holdings}; a reign lasts {events} {event_s}, and falls "
                "if a holding reaches 0. The Lord's first line after an event decides it. "
                "Type --help for the commands.")

NO_NAME = _refusal("no_name", "Please give a {what} (a letter, then up to 19 "
                   "letters, digits, _ or -).")
BAD_NAME = _refusal("bad_name", "'{word}' is not a valid {what}: use 1-20 ASCII "
                    "characters, a letter first, then letters, digits, _ or -.")
LOOKS_LIKE_LORD = _refusal("looks_like_lord", "The name {name} would read as the "
                           "Lord's; choose another.")
JOIN_FIRST = _refusal("join_first", "Join first: send your name (NAME or "
                      "NAME@REALM). Commands work once you are in a realm.")
LORD_TAKEN = _refusal("lord_taken", "The realm '{realm}' already has a Lord; join "
                      "under another name, or another realm.")
NAME_TAKEN = _refusal("name_taken", "The name {name} is taken in the realm "
                      "'{realm}'; choose another.")
REALM_FULL = _refusal("realm_full", "The realm '{realm}' is full ({n}/{size}); try "
                      "another with NAME@REALM.")
LORDS_SEAT = _refusal("lords_seat", "The last seat of the realm '{realm}' is kept "
                      "for its Lord; try another with NAME@REALM.")
TOO_MANY_REALMS = _refusal("too_many_realms", "This server holds its limit of "
                           "{realms}; join one already in play, or try later.")
ADDRESS_REALMS = _refusal("address_realms", "Your address has started {realms} "
                          "already; join one of them, or one in play.")
UNREACHABLE = _refusal("unreachable", "The realm '{realm}' cannot be reached now; "
                       "try again in a moment.")
DRAINING = _refusal("draining", "This server is not starting new realms now "
                    "(maintenance); join a realm in play, or try again soon.")
WRONG_PASSWORD = _refusal("wrong_password", "Wrong password; you are not the Lord. "
                          "Send a name to try again.")
LAST_PASSWORD = _refusal("last_password", "Wrong password, for the last time. Farewell.")
PASSWORD_WAIT = _line("password_wait", "Too many wrong passwords for the Lord lately: "
                      "yours is checked in {seconds} s.")
PASSWORD_IN_LINE = _line("password_in_line", "Passwords from your address are checked one "
                         "at a time: yours comes after {ahead}.")
WAIT_FOR_ANSWER = _refusal("wait_for_answer", "Your last lines still wait for an answer; "
                          "that line was not sent.")
TRY_AGAIN = _refusal("try_again", "That could not be done just now; try again.")
NOT_HTTP = _refusal("not_http", "This is realm's game, not a web server: play with nc, "
                   "telnet or realm-client, or on the web page. Farewell.")
TOO_MANY_CONNECTIONS = _refusal("too_many_connections", "Too many connections from "
                                "your address ({limit}); close one and try again.")

# -- lines, whatever the phase ------------------------------------------------
LINE_TOO_LONG = _refusal("line_too_long", "Line too long; the limit is {limit} "
                         "bytes. It was not sent.")
NOT_UTF8 = _refusal("not_utf8", "That line is not valid UTF-8 text; it was not sent.")
CONTROL = _refusal("control", "Control characters are not allowed; the line was not sent.")
TOO_FAST = _refusal("too_fast", "You are sending too fast (more than {rate} lines "
                    "a second); that line was not sent.")
ONE_LINE = _refusal("one_line", "Send one line a message: a message may not hold "
                    "a line break. It was not sent.")
BINARY = _refusal("binary", "Binary messages are not accepted: send text, one line "
                  "a message.")
LOGIN_TIMEOUT = _refusal("login_timeout", "You did not give a name in time. Farewell.")
IDLE_TIMEOUT = _refusal("idle_timeout", "You have been silent too long. Farewell.")

# -- in the realm ----------------------------------------------------------------
#: `{gone}` is one of `GONE_WHYS`.
DEPARTED = _line("departed", "{name} {gone} ({n}/{size})")
ALONE = _line("alone", "You stand alone, my Lord: every other member has left the realm.")
PAUSED = _line("paused", "The Lord's next decision waits until the realm is full again.")
RESUMED = _line("resumed", "The realm is full again: the event in play awaits the "
                "Lord's decision (1 {a} or 2 {b}).")
AWAITED = _line("awaited", "The next event waits for {names} to answer (at most "
                "{seconds} s more).")
LORD_LEFT = _line("lord_left", "The Lord has left the realm. The game is over.")
FAREWELL = _line("farewell", "Farewell, {name}.")
SHUTTING_DOWN = _line("shutting_down", "The server is shutting down. Farewell!")
REALM_ENDED = _line("realm_ended", "The realm '{realm}' has been ended by the "
                    "server's keeper. Farewell.")
REALM_GONE = _line("realm_gone", "The server running the realm '{realm}' is gone; "
                   "the game is over. Farewell.")
CUT_OFF = _line("cut_off", "The realm '{realm}' can no longer be reached from this "
                "server; the game is over for you. Farewell.")
REALM_MOVED = _line("realm_moved", "Another server has taken the realm '{realm}' over; "
                    "the game here is over. Farewell.")
HERALD_SAYS = _line("herald", HERALD + "{text}")

# -- commands ----------------------------------------------------------------------
HELP_HEAD = _line("help_head", "Commands (anything else you type is said to the realm):")
HELP_ROW = _line("help_row", "  {usage:<15} {help}{who}")
HELP_TAIL = _line("help_tail", "The Lord decides an event by sending 1 or 2, or the option's word.")
WHO = _line("who", "In the realm '{realm}' ({n}/{size}): {names}")
DISMISSED_YOU = _line("dismissed_you", "You have been dismissed by the Lord. Farewell.")
DISMISSED = _line("dismissed", "You have dismissed {name}, {n}/{size} left on your team.")
UNKNOWN_COMMAND = _refusal("unknown_command", "Unknown command '--{word}'. Did you mean "
                           "--{closest}? Commands: {listing}")
LORD_ONLY = _refusal("lord_only", "Only the Lord may use --{command}.")
DISMISS_WHOM = _refusal("dismiss_whom", "Whom? Use --dismiss NAME.")
DISMISS_NOBODY = _refusal("dismiss_nobody", "There is no one in the realm named '{name}'.")
DISMISS_SELF = _refusal("dismiss_self", "You cannot dismiss yourself; use --leave to "
                        "leave the realm.")


CHRONICLE_BEST = _line("chronicle_best", "The best reigns in the chronicle:")
CHRONICLE_LAST = _line("chronicle_last", "The last reigns of '{realm}':")
CHRONICLE_ROW = _line("chronicle_row", "  {realm}: {outcome}, {events} {event_s}, score {score} "
                      "({when})")
CHRONICLE_NONE = _line("chronicle_none", "  none yet")
CHRONICLE_OFF = _line("chronicle_off", "This server keeps no chronicle: reigns here are not "
                      "recorded.")
CHRONICLE_FAILED = _refusal("chronicle_failed", "The chronicle cannot be read just now; "
                            "try again later.")


# -- reading lines back ---------------------------------------------------------------
def kind(line: str) -> Line | None:
    """The template `line` was made from, if any (the first that matches)."""
    return next((template for template in _LINES.values() if template.matches(line)), None)


def refusal(line: str) -> str | None:
    """The key of the refusal `line` is (`"name_taken"`, ...), or None."""
    if not line.startswith(ERROR):
        return None
    found = kind(line)
    return found.key if found is not None and found.is_error else "error"


def is_error(line: str) -> bool:
    return line.startswith(ERROR)


def entered(line: str) -> str | None:
    """The NAME of a `*** NAME has entered the realm (n/SIZE)` line."""
    fields = ENTERED.match(line)
    return fields["name"] if fields else None


#: The realm is over for this member, by the server's doing.
_REALM_OVER = (REALM_ENDED, REALM_GONE, CUT_OFF, REALM_MOVED)


def realm_over(line: str) -> bool:
    """Whether the server says the realm has ended for this member (ended by
    its keeper, its server gone, cut off, taken over)."""
    return any(template.matches(line) for template in _REALM_OVER)


def departed(line: str) -> str | None:
    """The NAME of a `*** NAME has left the realm (n/SIZE)` line (any way of going)."""
    fields = DEPARTED.match(line)
    return fields["name"] if fields else None


def who(line: str) -> list[str] | None:
    """The names a `--who` line lists, or None."""
    fields = WHO.match(line)
    return [n for n in fields["names"].split(", ") if n] if fields else None


def chat(line: str) -> tuple[str, str] | None:
    """(NAME, text) of a chat line `NAME: text`; None for a `*** ` line."""
    if line.startswith(NOTICE):
        return None
    found = _CHAT.match(line)
    return (found.group(1), found.group(2)) if found else None


_CHAT = re.compile(rf"({NAME_RULE}): (.*)\Z", re.DOTALL)
#: The two options at the end of an event line: `1 burning or 2 fleeing?`.
_OPTIONS = re.compile(r"\b1 ([A-Za-z][\w-]*) or 2 ([A-Za-z][\w-]*)\?\Z")


def event_text(text: str, a: str, b: str) -> str:
    """An event line offering the options `a` and `b`, after its `*** `."""
    return f"{EVENT}{text} 1 {a} or 2 {b}?"


def is_event(line: str) -> bool:
    return line.startswith(NOTICE + EVENT)


def event_options(line: str) -> tuple[str, str] | None:
    """The two options an event line offers, as written, or None."""
    if not is_event(line):
        return None
    found = _OPTIONS.search(line)
    return (found.group(1), found.group(2)) if found else None


# -- the reign -------------------------------------------------------------------------
#: Between the holdings of a `[Realm]` line.
SEPARATOR = " \u00b7 "
REIGN_OVER = _line("reign_over", REIGN_ENDED + "{outcome}: {why} ({events} {event_s}, "
                   "score {score}){then}")
_HOLDING = re.compile(r"([A-Z][a-z]+) (\d+)(?: \(([+-]\d+)\))?\Z")


def noun(n: int, word: str) -> str:
    """`word` for one, its plural else (`event`, `events`: `{event_s}`)."""
    return word if n == 1 else word + "s"


def counted(n: int, word: str) -> str:
    """`1 event`, `2 events`."""
    return f"{n} {noun(n, word)}"


def holdings(values: Mapping[str, int], changes: Mapping[str, int]) -> str:
    """`Gold 45 (-5) · Food 50 · ...`: each holding (0..100), and its change if any."""
    return SEPARATOR.join([
        _SHOWN[name][value] + _CHANGE[changes[name]] if name in changes else _SHOWN[name][value]
        for name, value in values.items()])


class _Shown(dict[str, dict[int, str]]):
    """`Name N` for every holding and value, made once (the hot path's)."""

    def __missing__(self, name: str) -> dict[int, str]:
        table = self[name] = {value: f"{name} {value}" for value in range(101)}
        return table


_SHOWN = _Shown()
#: ` (+N)` for every change a holding can see; none for 0.
_CHANGE = {change: f" ({change:+d})" if change else "" for change in range(-100, 101)}


def report(text: str, values: dict[str, int], changes: dict[str, int]) -> bytes:
    """The `*** [Realm] ` line after an event: what it did, then the holdings."""
    return notice(f"{REPORT}{text} {holdings(values, changes)}")


def read_report(line: str) -> tuple[str, dict[str, tuple[int, int]]] | None:
    """(text, {holding: (value, change)}) of a `*** [Realm] ` line, or None."""
    if not line.startswith(NOTICE + REPORT):
        return None
    parts = line[len(NOTICE + REPORT):].split(SEPARATOR)
    head = _FIRST.match(parts[0])
    if head is None:
        return None
    parts[0] = head.group(2)
    found = _read_holdings(parts)
    return None if found is None else (head.group(1), found)


def _read_holdings(parts: list[str]) -> dict[str, tuple[int, int]] | None:
    found: dict[str, tuple[int, int]] = {}
    for part in parts:
        match = _HOLDING.match(part)
        if match is None:
            return None
        found[match.group(1)] = (int(match.group(2)), int(match.group(3) or 0))
    return found


def holdings_now(line: str) -> dict[str, int] | None:
    """What a welcome or a `[Reign Ended]` line says the realm holds now, or None."""
    fields = WELCOME.match(line) or REIGN_OVER.match(line)
    told = fields["holdings"] if fields else None
    found = _read_holdings(told.split(SEPARATOR)) if told else None
    return {name: value for name, (value, _) in found.items()} if found else None


_FIRST = re.compile(r"(.*) ([A-Z][a-z]+ \d+(?: \([+-]\d+\))?)\Z", re.DOTALL)


def is_reign_ended(line: str) -> bool:
    return line.startswith(NOTICE + REIGN_ENDED)
