"""The command table: the single source for dispatch, `--help` and
"did you mean".

A command line is `--NAME [ARGUMENT]`; the name is case-insensitive.
Handlers take the member who typed it, its realm and the argument, and
raise `RealmError` to refuse.  A member is anything with a name that can
be sent lines and can leave: a connection here, or a proxy for one on
another process.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from realm import wire
from realm.chronicle import unread
from realm.realm import Member, Realm, RealmError
from realm.records import ReignRecord

log = Logger()


class Actor(Member, Protocol):
    """A member who can type commands."""

    def leave(self) -> None:
        """Say goodbye, leave the realm and close."""


Handler = Callable[[Actor, Realm, str], None]


@dataclass(frozen=True)
class Command:
    name: str  # without the leading --
    usage: str  # e.g. "--dismiss NAME"
    help: str
    run: Handler
    lord_only: bool = False


def _help(actor: Actor, realm: Realm, arg: str) -> None:
    actor.send(HELP)


def _who(actor: Actor, realm: Realm, arg: str) -> None:
    actor.send(realm.who())


def _dismiss(actor: Actor, realm: Realm, arg: str) -> None:
    realm.dismiss(actor, arg)


def _leave(actor: Actor, realm: Realm, arg: str) -> None:
    actor.leave()


def _chronicle(actor: Actor, realm: Realm, arg: str) -> None:
    chronicle = realm.chronicle
    if chronicle is None or not chronicle.keeps:
        actor.send(wire.CHRONICLE_OFF.notice())
        return
    best, latest = chronicle.best(5), chronicle.latest(realm.name, 5)
    read = gatherResults([best, latest], consumeErrors=True)

    def answer(found: list[list[ReignRecord]]) -> None:
        actor.send(wire.CHRONICLE_BEST.notice() + _rows(found[0])
                   + wire.CHRONICLE_LAST.notice(realm=realm.name) + _rows(found[1]))

    def failed(failure: Failure) -> None:
        why = unread(failure)
        if why is not None:  # a member may ask as often as the rate allows
            realm.stats.quiet.log(realm.clock, "chronicle_command", log.warn,
                                  "Reading the chronicle for --chronicle failed: {why}", why=why)
        actor.send(wire.CHRONICLE_FAILED.notice())

    read.addCallbacks(answer, failed)


def _rows(reigns: list[ReignRecord]) -> bytes:
    if not reigns:
        return wire.CHRONICLE_NONE.notice()
    return b"".join(wire.CHRONICLE_ROW.notice(
        realm=r.realm, outcome=r.outcome.capitalize(), events=len(r.events),
        event_s=wire.noun(len(r.events), "event"), score=r.score,
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r.ended))) for r in reigns)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "--help", "list the commands", _help),
        Command("who", "--who", "list the members present", _who),
        Command("dismiss", "--dismiss NAME", "send a member away", _dismiss,
                lord_only=True),
        Command("chronicle", "--chronicle", "the best reigns, and this realm's last", _chronicle),
        Command("leave", "--leave", "leave the realm", _leave),
    )
}
HELP = wire.HELP_HEAD.notice() + b"".join(
    wire.HELP_ROW.notice(usage=c.usage, help=c.help, who=" (Lord only)" if c.lord_only else "")
    for c in COMMANDS.values()) + wire.HELP_TAIL.notice()
_LISTING = ", ".join(c.usage for c in COMMANDS.values())


def suggest(word: str) -> str:
    """The closest real command to `word` (without its --)."""
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.0)
    return close[0] if close else "help"


def run(actor: Actor, realm: Realm, line: str) -> None:
    """Carry out a `--` command line; raise `RealmError` to refuse it."""
    word, _, arg = line[2:].strip().partition(" ")
    command = COMMANDS.get(word.lower())
    if command is None:
        raise RealmError(wire.UNKNOWN_COMMAND.notice(
            word=word[:30], closest=suggest(word.lower()), listing=_LISTING))
    if command.lord_only and realm.lord is not actor:
        raise RealmError(wire.LORD_ONLY.notice(command=command.name))
    command.run(actor, realm, arg.strip())
