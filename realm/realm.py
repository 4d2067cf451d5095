"""One realm: its members, its Lord and its game.

A `Realm` owns membership (one dict of member objects, one method adds,
one removes) and the game's progress.  It knows nothing of transports:
members are anything with a `name`, a `prefix`, `send(data)` and
`close()` -- a connection of this process, or a proxy for one on another
process.  Time comes from an injected `IReactorTime`, so tests drive it
with `task.Clock`.

Everything a realm sends is wire-ready bytes (`realm.wire`), one or more
lines each ending in CRLF; a WebSocket member splits them again.

The game, as the contract fixes it:
  gathering  -- not yet full; chat is relayed, no events.
  deciding   -- an event is posted; the Lord's next chat line while the
                realm is full is the decision.
  answering  -- the others answer; when each has sent a chat line, or
                `event_wait` seconds have passed, the next event is posted.
                After `NUDGE` seconds the realm is told who is awaited.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from realm import wire
from realm.names import LORD, JoinError
from realm.recording import Recorder, keep
from realm.reign import Deck, Ending, Reign
from realm.stats import Stats

log = Logger()

#: Seconds after a decision before the realm hears who it still waits for.
NUDGE = 5.0


class Member(Protocol):
    """What a realm needs of a member."""

    name: str
    prefix: bytes  # b"Name: ", stamped in front of the member's chat

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class RealmError(wire.Refusal):
    """A command was refused; `line` tells the member why."""


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
        reign_length: int = 12,
        chronicle: Recorder | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.name = name
        self.size = size
        self.clock = clock
        self.event_wait = event_wait
        self.rng = rng
        self.on_empty = on_empty
        self.reign_length = reign_length
        self.chronicle = chronicle
        self.stats = stats or Stats()
        self.members: dict[str, Member] = {}  # lower-case name -> member
        self.lord: Member | None = None
        self.started = False
        self.ended = False
        self.event = b""  # the current event line, once the game has started
        self.waiting: set[Member] | None = None  # still to answer the decision
        self._timer: IDelayedCall | None = None
        self._nudged = False  # the realm was told who it waits for
        self.deck = Deck(rng)  # no scene again until every one was told
        self.reign: Reign | None = None  # once the game has started
        self._reign_started = 0.0
        self._reign_members: dict[str, None] = {}  # who took part: `_note_members`
        self._joined = False  # someone joined since the members were noted
        self.recording = False  # an ended reign is being written to the chronicle
        self._deadline = 0.0  # when the wait for answers is over
        self._named: list[str] | None = None  # `_others()`, while the members stay

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
            raise JoinError(wire.LORD_TAKEN.notice(realm=self.name))
        if name.lower() in self.members:
            raise JoinError(wire.NAME_TAKEN.notice(name=name, realm=self.name))
        if self.full:
            raise JoinError(wire.REALM_FULL.notice(
                realm=self.name, n=len(self.members), size=self.size))
        if name != LORD and self.lord is None and len(self.members) == self.size - 1:
            raise JoinError(wire.LORDS_SEAT.notice(realm=self.name))

    def add(self, member: Member) -> None:
        """Seat `member`, announce it and start the game once full."""
        self.check(member.name)
        self.members[member.name.lower()] = member
        self._named = None
        if member.name == LORD:
            self.lord = member
        self._joined = True  # `_note_members`
        n = len(self.members)
        log.info("{name} joined realm {realm} ({n}/{size})",
                 name=member.name, realm=self.name, n=n, size=self.size)
        self.broadcast(wire.ENTERED.notice(name=member.name, n=n, size=self.size))
        if not self.full:
            among = "" if self.lord else wire.LORD_AMONG
            member.send(wire.WAITING.notice(missing=self.size - n, among=among))
            return
        begins, self.started = not self.started, True
        if begins:
            self._new_reign()
        reign = self.reign
        assert reign is not None
        # The banner: who is here, what the realm holds, how a reign goes.
        welcome = wire.WELCOME.notice(n=n, size=self.size, holdings=wire.holdings(
            reign.holdings, {}), events=self.reign_length,
            event_s=wire.noun(self.reign_length, "event"))
        if begins:
            self.broadcast(welcome)
            self._post_event()
            return
        if reign.decided and self.lord is not None:  # what was decided, as the others saw it
            member.send(welcome + self.event + self.lord.prefix
                        + reign.decision.encode("utf-8") + wire.CRLF)
        elif reign.offered:  # far up the others' screens, maybe
            member.send(welcome + self.event)
            a, b = reign.offered
            self.broadcast(wire.RESUMED.notice(a=a.offered, b=b.offered), but=member)
        else:  # between reigns: the next one's first event follows
            member.send(welcome)

    def remove(self, member: Member, why: str = wire.LEFT_WHY,
               told: Member | None = None) -> None:
        """Unseat `member` (idempotent); a Lord's leaving ends the realm.

        The others hear `NAME why (n/SIZE)`, all but `told`, who knows.
        """
        if self.members.get(member.name.lower()) is not member:
            return
        del self.members[member.name.lower()]
        self._named = None
        log.info("Realm {realm}: {name} {why}", name=member.name, realm=self.name, why=why)
        if member is self.lord:
            self.lord = None
            self.end(wire.LORD_LEFT.notice(), member)
            return
        if not self.members:
            self._discard()
            return
        self.broadcast(wire.DEPARTED.notice(
            name=member.name, gone=why, n=len(self.members), size=self.size), but=told)
        self._answered(member)
        if self.lord is not None and len(self.members) == 1:
            self.lord.send(wire.ALONE.notice())
        elif self.started and len(self.members) == self.size - 1:
            self.broadcast(wire.PAUSED.notice())

    def end(self, goodbye: bytes, told: Member | None = None) -> None:
        """End the realm: everyone gets `goodbye` and is closed (`told`, who
        is leaving already, only hears it)."""
        self._abandon()
        if told is not None:
            told.send(goodbye)
        others = list(self.members.values())
        self.members.clear()
        self._named = None
        self.lord = None
        for other in others:
            other.send(goodbye)
            other.close()
        self._discard()

    def _discard(self) -> None:
        if self.ended:
            return
        self.ended = True
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
    def chat(self, member: Member, text: bytes, heard: Collection[Member] = ()) -> None:
        """Relay a chat line to the others (but those who have `heard` it
        already: realm.relay); it may decide or answer an event."""
        data = member.prefix + text + b"\r\n"
        waiting = self.waiting
        if waiting is not None and member is not self.lord:
            waiting.discard(member)
            if not waiting:
                # The last answer: what the event did, and the next one, leave
                # with it: one write a member instead of three.
                news = self._event_over(member)
                both = data + news
                for other in self.members.values():
                    other.send(news if other is member or other in heard else both)
                return
        for other in self.members.values():
            if other is not member and other not in heard:
                other.send(data)
        if waiting is None and member is self.lord and self.full:
            reign = self.reign
            if reign is not None and reign.event is not None and not reign.decided:
                reign.decide(text.decode("utf-8"))
                self._decided(member)

    def _decided(self, lord: Member) -> None:
        """The Lord's decision: wait for every other member's answer."""
        waiting = self.waiting = set(self.members.values())
        waiting.discard(lord)
        # One timer per realm, pushed back each decision: a decision a
        # round would otherwise schedule and cancel a DelayedCall each.
        self._nudged = self.event_wait <= NUDGE
        self._deadline = self.clock.seconds() + self.event_wait
        delay = self.event_wait if self._nudged else NUDGE
        timer = self._timer
        if timer is not None and timer.active():
            timer.reset(delay)
        else:
            self._timer = self.clock.callLater(delay, self._wait_over)

    def who(self) -> bytes:
        names = ", ".join(m.name for m in self.members.values())
        return wire.WHO.notice(realm=self.name, n=len(self.members), size=self.size,
                               names=names)

    def dismiss(self, lord: Member, name: str) -> None:
        """The Lord sends `name` away."""
        if lord is not self.lord:
            raise RealmError(wire.LORD_ONLY.notice(command="dismiss"))
        if not name:
            raise RealmError(wire.DISMISS_WHOM.notice())
        target = self.members.get(name.lower())
        if target is None:
            raise RealmError(wire.DISMISS_NOBODY.notice(name=name))
        if target is lord:
            raise RealmError(wire.DISMISS_SELF.notice())
        target.send(wire.DISMISSED_YOU.notice())
        lord.send(wire.DISMISSED.notice(name=target.name, n=len(self.members) - 1,
                                        size=self.size))
        self.remove(target, wire.DISMISSED_WHY, told=lord)
        target.close()

    # -- the game ---------------------------------------------------------
    def _answered(self, member: Member) -> None:
        waiting = self.waiting
        if waiting is not None:
            waiting.discard(member)
            if not waiting:
                self.broadcast(self._event_over())

    def _wait_over(self) -> None:
        """The nudge, or `event_wait`, has passed since the last decision."""
        self._timer = None
        waiting = self.waiting
        if waiting is None:
            return  # every answer came in time
        if not self._nudged:
            self._nudged = True
            names = ", ".join(sorted(m.name for m in waiting))
            left = max(0.0, self._deadline - self.clock.seconds())
            self.broadcast(wire.AWAITED.notice(names=names, seconds=math.ceil(left)))
            self._timer = self.clock.callLater(left, self._wait_over)
            return
        self.broadcast(self._event_over())

    def _new_reign(self) -> None:
        """The next reign: it begins with its first event (`_tell`)."""
        self.reign = Reign(self.rng, self.deck, self.reign_length)
        self._reign_members = dict.fromkeys(m.name for m in self.members.values())
        self._joined = False

    def _others(self, but: Member | None = None) -> list[str]:
        """The names of the members but the Lord (made again once they
        change), and but `but` while two others are left to tell of."""
        named = self._named
        if named is None:
            named = self._named = [m.name for m in self.members.values() if m is not self.lord]
        if but is not None and len(named) > 2:
            return [name for name in named if name != but.name]
        return named

    def _post_event(self) -> None:
        self.broadcast(self._tell())

    def _tell(self, but: Member | None = None) -> bytes:
        """The reign's next event (`but` as for `_others`)."""
        assert self.reign is not None
        if not self.reign.told:
            self._reign_started = self.clock.seconds()
        self._note_members()
        self.stats.events += 1
        self.event = self.reign.tell(self._others(but))
        return self.event

    def _note_members(self) -> None:
        """Those here as an event is told or ends take part in the reign
        (not passers-by while it waits: the record stays size x events)."""
        if self._joined:
            self._joined = False
            self._reign_members.update(dict.fromkeys(m.name for m in self.members.values()))

    def _event_over(self, last: Member | None = None) -> bytes:
        """The decided event is over: what it did, and the next event; or,
        when the reign ended with it, what it did, and the ending and the
        next reign's first event once the chronicle has the reign: with
        these lines when it has it at once, else in a broadcast of their own.

        The `last` to answer does not bring the next event: its answer may
        be a farewell (a bot deserting), its `--leave` on its way."""
        self.waiting = None
        reign = self.reign
        assert reign is not None
        self._note_members()
        settled = reign.settle()
        if settled.ending is None:
            return settled.report + self._tell(last)
        self.event = b""
        ending = settled.ending
        recorded = self._record(ending)
        self._new_reign()  # what it holds is known now, for a newcomer meanwhile
        if recorded.called:  # no database that waits: the ending follows the report
            return settled.report + self._recorded(ending)
        recorded.addBoth(lambda _: self.broadcast(self._recorded(ending)))
        return settled.report

    def _recorded(self, ending: Ending) -> bytes:
        """The ended reign is in the chronicle (or could not be): how it
        ended, and the next reign's first event (none if the realm ended)."""
        self.recording = False
        if self.ended:
            return b""
        assert self.reign is not None
        return ending.line(self.reign.holdings) + self._tell()

    def _record(self, ending: Ending) -> Deferred[Any]:
        """Write the ended reign to the chronicle; a failure is logged and the
        game goes on."""
        reign = self.reign
        assert reign is not None
        self.stats.reigns_ended[ending.outcome] += 1
        record = reign.record(self.name, list(self._reign_members), self._reign_started,
                              self.clock.seconds(), ending)
        if self.chronicle is None:
            return succeed(None)
        self.recording = True
        return keep(self.chronicle, record, self.stats, self.clock)

    def _abandon(self) -> None:
        """The game stops here (the Lord left, the realm was ended)."""
        reign = self.reign
        if reign is not None and reign.ending is None and not self.recording:
            self._record(reign.abandon())
        self.reign = None
