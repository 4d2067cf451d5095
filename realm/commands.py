"""The command table: the single source for dispatch, `--help` and
"did you mean".

A command line is `--NAME [ARGUMENT]`; the name is case-insensitive.
Handlers take the member's session and the argument, and raise
`RealmError` to refuse.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from realm.realm import RealmError, notice

if TYPE_CHECKING:
    from realm.session import Session


@dataclass(frozen=True)
class Command:
    name: str  # without the leading --
    usage: str  # e.g. "--dismiss NAME"
    help: str
    run: Callable[[Session, str], None]
    lord_only: bool = False


def _help(session: Session, arg: str) -> None:
    lines = [notice("Commands (anything else you type is said to the realm):")]
    for command in COMMANDS.values():
        who = " (Lord only)" if command.lord_only else ""
        lines.append(notice(f"  {command.usage:<15} {command.help}{who}"))
    session.send(b"".join(lines))


def _who(session: Session, arg: str) -> None:
    assert session.realm is not None
    session.send(notice(session.realm.who()))


def _dismiss(session: Session, arg: str) -> None:
    assert session.realm is not None
    session.realm.dismiss(session, arg)


def _leave(session: Session, arg: str) -> None:
    session.leave()


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "--help", "list the commands", _help),
        Command("who", "--who", "list the members present", _who),
        Command("dismiss", "--dismiss NAME", "send a member away", _dismiss,
                lord_only=True),
        Command("leave", "--leave", "leave the realm", _leave),
    )
}


def suggest(word: str) -> str:
    """The closest real command to `word` (without its --)."""
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.0)
    return close[0] if close else "help"


def run(session: Session, line: str) -> None:
    """Carry out a `--` command line; raise `RealmError` to refuse it."""
    word, _, arg = line[2:].strip().partition(" ")
    command = COMMANDS.get(word.lower())
    if command is None:
        listing = ", ".join(c.usage for c in COMMANDS.values())
        shown = word[:30] or ""
        raise RealmError(f"Unknown command '--{shown}'. Did you mean "
                         f"--{suggest(word.lower())}? Commands: {listing}")
    if command.lord_only and session.realm is not None and session.realm.lord is not session:
        raise RealmError(f"Only the Lord may use --{command.name}.")
    command.run(session, arg.strip())
