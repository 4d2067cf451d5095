"""One realm: its members, its Lord and its game.

A `Realm` owns membership (one dict of member objects, one method adds,
one removes) and the game's progress.  It knows nothing of transports:
members are anything with a `name`, `send(data)` and `close()`.  Time
comes from an injected `IReactorTime`, so tests drive it with
`task.Clock`.

Everything a realm sends is wire-ready bytes, one or more lines each
ending in CRLF; a WebSocket member splits them again.

The game, as the contract fixes it:
  gathering  -- not yet full; chat is relayed, no events.
  deciding   -- an event is posted; the Lord's next chat line while the
                realm is full is the decision.
  answering  -- the others answer; when each has sent a chat line, or
                `event_wait` seconds have passed, the next event is posted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from realm import lore
from realm.events import draw_event
from realm.names import LORD, JoinError

log = Logger()


class Member(Protocol):
    """What a realm needs of a member."""

    name: str
    prefix: bytes  # b"Name: ", stamped in front of the member's chat

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class RealmError(Exception):
    """A command was refused; `str(error)` tells the member why."""


def notice(text: str) -> bytes:
    """A `*** ` line, wire-ready."""
    return b"*** " + text.encode("utf-8") + b"\r\n"


class Realm:
    """Members of one realm and the state of their game."""

    def __init__(
        self,
        name: str,
        size: int,
        clock: IReactorTime,
        event_wait: float,
        rng: random.Random,
        on_empty: Callable[[Realm], None],
    ) -> None:
        self.name = name
        self.size = size
        self.clock = clock
        self.event_wait = event_wait
        self.rng = rng
        self.on_empty = on_empty
        self.members: dict[str, Member] = {}  # lower-case name -> member
        self.lord: Member | None = None
        self.started = False
        self.event = b""  # the current event line, once the game has started
        self.waiting: set[Member] | None = None  # still to answer the decision
        self._timer: IDelayedCall | None = None

    # -- membership --------------------------------------------------------
    @property
    def count(self) -> str:
        return f"{len(self.members)}/{self.size}"

    @property
    def full(self) -> bool:
        return len(self.members) >= self.size

    def check(self, name: str) -> None:
        """Raise `JoinError` if `name` could not join now."""
        if name == LORD and self.lord is not None:
            raise JoinError(f"The realm '{self.name}' already has a Lord; "
                            "join under another name, or another realm.")
        if name.lower() in self.members:
            raise JoinError(f"The name {name} is taken in the realm "
                            f"'{self.name}'; choose another.")
        if self.full:
            raise JoinError(f"The realm '{self.name}' is full ({self.count}); "
                            "try another with NAME@REALM.")
        if name != LORD and self.lord is None and len(self.members) == self.size - 1:
            raise JoinError(f"The last seat of the realm '{self.name}' is kept "
                            "for its Lord; try another with NAME@REALM.")

    def add(self, member: Member) -> None:
        """Seat `member`, announce it and start the game once full."""
        self.check(member.name)
        self.members[member.name.lower()] = member
        if member.name == LORD:
            self.lord = member
        log.info("{name} joined realm {realm} ({count})",
                 name=member.name, realm=self.name, count=self.count)
        self.broadcast(notice(f"{member.name} has entered the realm ({self.count})"))
        if not self.full:
            missing = self.size - len(self.members)
            lord = "" if self.lord else ", the Lord among them"
            member.send(notice(f"The game begins when the realm is full: "
                               f"waiting for {missing} more{lord}."))
        else:
            banner = notice(f"Welcome to the {lore.GAME_NAME}! {self.count} are "
                            "present. Type --help for the commands.")
            if not self.started:
                self.started = True
                self.broadcast(banner)
                self._post_event()
            else:
                member.send(banner + self.event)

    def remove(self, member: Member, why: str = "has left the realm",
               told: Member | None = None) -> None:
        """Unseat `member` (idempotent); a Lord's leaving ends the realm.

        The others hear `NAME why (n/SIZE)`, all but `told`, who knows.
        """
        if self.members.get(member.name.lower()) is not member:
            return
        del self.members[member.name.lower()]
        log.info("{name} left realm {realm}: {why}",
                 name=member.name, realm=self.name, why=why)
        if member is self.lord:
            self.lord = None
            self._end(member)
            return
        if self.members:
            self.broadcast(notice(f"{member.name} {why} ({self.count})"), but=told)
            self._answered(member)
            if self.lord is not None and len(self.members) == 1:
                self.lord.send(notice("You stand alone, my Lord: every other "
                                      "member has left the realm."))
            elif self.started and len(self.members) == self.size - 1:
                self.broadcast(notice("The Lord's next decision waits until "
                                      "the realm is full again."))
        else:
            self._discard()

    def _end(self, lord: Member) -> None:
        """The Lord has gone: tell everyone, close every connection."""
        goodbye = notice("The Lord has left the realm. The game is over.")
        lord.send(goodbye)
        others = list(self.members.values())
        self.members.clear()
        for other in others:
            other.send(goodbye)
            other.close()
        self._discard()

    def _discard(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        log.info("Realm {realm} ended", realm=self.name)
        self.on_empty(self)

    def broadcast(self, data: bytes, but: Member | None = None) -> None:
        for member in self.members.values():
            if member is not but:
                member.send(data)

    # -- what members do -----------------------------------------------------
    def chat(self, member: Member, text: bytes) -> None:
        """Relay a chat line to the others; it may decide or answer an event."""
        data = member.prefix + text + b"\r\n"
        waiting = self.waiting
        if waiting is not None and member is not self.lord:
            waiting.discard(member)
            if not waiting:
                # The last answer: the next event leaves with it, one write
                # a member instead of two (the same bytes, in the same order).
                event = self._draw_event()
                both = data + event
                for other in self.members.values():
                    other.send(event if other is member else both)
                return
        for other in self.members.values():
            if other is not member:
                other.send(data)
        if waiting is None and member is self.lord and self.started and self.full:
            waiting = self.waiting = set(self.members.values())
            waiting.discard(member)
            # One timer per realm, pushed back each decision: a decision a
            # round would otherwise schedule and cancel a DelayedCall each.
            timer = self._timer
            if timer is not None and timer.active():
                timer.reset(self.event_wait)
            else:
                self._timer = self.clock.callLater(self.event_wait, self._wait_over)

    def who(self) -> str:
        names = ", ".join(m.name for m in self.members.values())
        return f"In the realm '{self.name}' ({self.count}): {names}"

    def dismiss(self, lord: Member, name: str) -> None:
        """The Lord sends `name` away."""
        if lord is not self.lord:
            raise RealmError("Only the Lord may dismiss members.")
        if not name:
            raise RealmError("Whom? Use --dismiss NAME.")
        target = self.members.get(name.lower())
        if target is None:
            raise RealmError(f"There is no one in the realm named '{name}'.")
        if target is lord:
            raise RealmError("You cannot dismiss yourself; use --leave to "
                             "leave the realm.")
        target.send(notice("You have been dismissed by the Lord. Farewell."))
        left = f"{len(self.members) - 1}/{self.size}"
        lord.send(notice(f"You have dismissed {target.name}, {left} left on "
                         "your team."))
        self.remove(target, "has been dismissed by the Lord", told=lord)
        target.close()

    # -- the game ---------------------------------------------------------
    def _answered(self, member: Member) -> None:
        waiting = self.waiting
        if waiting is not None:
            waiting.discard(member)
            if not waiting:
                self._post_event()

    def _wait_over(self) -> None:
        """`event_wait` has passed since the last decision."""
        self._timer = None
        if self.waiting is not None:  # else every answer came in time
            self._post_event()

    def _post_event(self) -> None:
        self.broadcast(self._draw_event())

    def _draw_event(self) -> bytes:
        """End the wait and draw the next event (`self.event`)."""
        self.waiting = None
        names = [m.name for m in self.members.values() if m is not self.lord]
        self.event = notice(draw_event(self.rng, names))
        return self.event
