"""Lines between processes: at most one Redis message per destination
process per reactor turn, whatever the number of lines; and the two ends
of a member whose realm runs on another process than its connection.

A message is JSON: `[SENDER, [OP, ...]]`, each op a list whose first item
names it (realm.cluster handles them):

    from a member's process to the realm's owner
      ["check", RID, REALM, NAME, ADDRESS, FENCE]   may NAME join?
      ["join", SID, REALM, NAME, ADDRESS, FENCE]    seat SID as NAME
      ["line", SID, TEXT]                           a line SID typed
      ["line", SID, TEXT, [SID, ...]]               a chat line SID typed, which
                                                    these members (of the sender)
                                                    have heard already
      ["gone", SID, WHY]                            SID has gone
    from the owner back
      ["checked", RID, ANSWER]                      "" (yes), a refusal line, or "moved"
      ["joined", SID, ANSWER]                       the same
      ["send", [SID, ...], DATA]                    wire-ready lines for each SID
      ["close", SID]                                close SID's connection
      ["near"]                                      lines may come with who heard
                                                    them (before each "joined"; an
                                                    older release sends none)
    either way
      ["bye"]                                       the sender is shutting down
      ["cut"]                                       the sender has let go of everything
                                                    it shared with you (it lost Redis,
                                                    or gave up on you): do the same

Lines sent to several members of one process in the same turn travel
once: consecutive `send` ops with the same data merge.  A chat line
between two members of one process does not travel at all: their
process hands it over (`Neighbours`), and the owner sends it only to
the others.  Redis does not answer a `PUBLISH` (realm.redis): a
destination that is dead is found by its heartbeat lapsing
(realm.cluster), one that lost Redis says so once back ("cut").
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from realm import leases, wire
from realm._direct import call_soon
from realm.redis import Unreachable
from realm.server import is_chat

if TYPE_CHECKING:
    from realm.realm import Realm
    from realm.server import Player

log = Logger()

Op = list[Any]


def decode(payload: bytes) -> tuple[str, list[Op]]:
    """(sender, ops) of one message, each op a list led by its name;
    ValueError if it is not one (anyone who can reach Redis can publish)."""
    try:
        sender, ops = json.loads(payload)
    except (TypeError, RecursionError):  # JSON, but not a pair; nested past Python's stack
        raise ValueError("not a realm relay message") from None
    if not (isinstance(sender, str) and isinstance(ops, list) and all(
            op.__class__ is list and op and op[0].__class__ is str for op in ops)):
        raise ValueError("not a realm relay message")
    return sender, ops


class Relay:
    """Ops held per destination process until the reactor has looked at
    its sockets once more: lines that come a moment apart (the answers of
    one round) leave in one message.  At R=1 over two processes that is
    4.2 messages a round instead of 5.9, each a Redis wake-up and a
    receiver's saved (bench/RESULTS.md)."""

    def __init__(self, clock: IReactorTime, node: str,
                 publish: Callable[[bytes, bytes], None]) -> None:
        self.clock = clock
        self.node = node
        self.publish = publish
        self.relayed = 0  # ops sent to other processes, for the metrics
        self._pending: dict[str, list[Op]] = {}

    def send(self, node: str, op: Op) -> None:
        pending = self._pending.get(node)
        if pending is None:
            if not self._pending:  # once the next poll's events are handled too
                call_soon(self.clock, self.flush, look_again=True)
            pending = self._pending[node] = []
        pending.append(op)

    def deliver(self, node: str, sid: int, data: bytes) -> None:
        """`data` for the member `sid` of process `node`."""
        pending = self._pending.get(node)
        if pending:
            last = pending[-1]
            if last[0] == "send" and last[2] is data:  # one broadcast, many members
                last[1].append(sid)
                return
        self.send(node, ["send", [sid], data])

    def flush(self) -> None:
        """Publish what is held (lost if Redis cannot be reached now: the
        cluster has then let every other process go)."""
        pending, self._pending = self._pending, {}
        for node, ops in pending.items():
            self.relayed += len(ops)
            for op in ops:
                if op[0] == "send":
                    op[2] = op[2].decode("utf-8")
            payload = json.dumps([self.node, ops], separators=(",", ":")).encode()
            try:
                self.publish(leases.channel(node).encode(), payload)
            except Unreachable as e:
                log.info("Lines for process {node} were lost: {why}", node=node, why=e)


class RemoteMember:
    """At the realm's owner: a member connected to another process.

    `proxies` is the owner's (home, sid) -> RemoteMember; a member closed
    here is forgotten there and its home told to close it.
    """

    __slots__ = ("relay", "proxies", "home", "sid", "name", "prefix", "address", "realm")

    def __init__(self, relay: Relay, proxies: dict[tuple[str, int], RemoteMember], home: str,
                 sid: int, name: str, address: str, realm: Realm) -> None:
        self.relay = relay
        self.proxies = proxies
        self.home = home
        self.sid = sid
        self.name = name
        self.prefix = name.encode("ascii") + b": "
        self.address = address
        self.realm = realm

    def send(self, data: bytes) -> None:
        self.relay.deliver(self.home, self.sid, data)

    def close(self) -> None:
        if self.proxies.pop((self.home, self.sid), None) is not None:
            self.relay.send(self.home, ["close", self.sid])

    def leave(self) -> None:
        self.send(wire.FAREWELL.notice(name=self.name))
        self.realm.remove(self)
        self.close()


def end_realm(realm: Realm, goodbye: bytes) -> None:
    """End `realm` as the process running it stops: its members on other
    processes, whose own server goes on, hear that the realm's is gone;
    the others `goodbye`."""
    gone = wire.REALM_GONE.notice(realm=realm.name)
    for member in realm.members.values():
        if isinstance(member, RemoteMember):
            member.send(gone)
            member.close()  # closed at its home: the goodbye it gets next goes nowhere
    realm.end(goodbye)


class Neighbours:
    """At a member's process: its members seated in one realm that another
    process runs (sid -> member), and those on their way in (their join
    asked, not answered).  Their chat lines to one another go straight
    from one to the other here; the owner sends them only to the rest.

    A line must never overtake an earlier one between the same two
    members.  A member's lines sent while another was on its way in reach
    that one through the owner; so, from then on, do all its lines to
    that one (`RemoteSeat.through_owner`)."""

    __slots__ = ("seats", "joining", "__weakref__")

    def __init__(self) -> None:
        self.seats: dict[int, Player] = {}
        self.joining: set[int] = set()


class Tables:
    """A process's `Neighbours`, one per (owner, realm), kept while a seat
    or a join of theirs holds them."""

    def __init__(self) -> None:
        self._all: weakref.WeakValueDictionary[tuple[str, str], Neighbours] = \
            weakref.WeakValueDictionary()
        #: The owners that take a line with who heard it ("near"); an older
        #: release does not, and its members here hear each other through it.
        self.direct: set[str] = set()

    def of(self, owner: str, realm: str) -> Neighbours:
        neighbours = self._all.get((owner, realm))
        if neighbours is None:
            neighbours = self._all[(owner, realm)] = Neighbours()
        return neighbours

    def near(self, owner: str) -> None:
        """`owner` said "near": it takes a line with who heard it."""
        self.direct.add(owner)

    def forget(self, owner: str | None) -> None:
        """`owner` (None: every one) is gone.  Each start of a process is a
        new owner, which says "near" again before its first `joined`."""
        if owner is None:
            self.direct.clear()
        else:
            self.direct.discard(owner)

    def joining(self, owner: str, realm: str, sid: int) -> Neighbours:
        """The table of `realm` run by `owner`, `sid` now on its way in."""
        neighbours = self.of(owner, realm)
        neighbours.joining.add(sid)
        return neighbours


class RemoteSeat:
    """At the member's process: its seat in a realm another process runs.

    `seated` is this process's sid -> (member, seat) for such members;
    `neighbours` the realm's members here (see `Neighbours`).
    """

    __slots__ = ("relay", "seated", "owner", "sid", "realm_name", "open", "neighbours",
                 "through_owner")

    def __init__(self, relay: Relay, seated: dict[int, tuple[Player, RemoteSeat | None]],
                 member: Player, owner: str, sid: int, realm_name: str,
                 neighbours: Neighbours | None) -> None:
        self.relay = relay
        self.seated = seated
        self.owner = owner
        self.sid = sid
        self.realm_name = realm_name
        self.open = True
        self.neighbours = neighbours
        #: Members here that hear this one through the owner (`Neighbours`).
        self.through_owner: set[int] = set()
        seated[sid] = (member, self)
        if neighbours is not None:
            neighbours.seats[sid] = member

    def line(self, raw: bytes, text: str) -> None:
        if not self.open:
            return
        if self.neighbours is not None and is_chat(text):
            heard = self._tell_here(self.neighbours, raw)
            if heard:
                self.relay.send(self.owner, ["line", self.sid, text, heard])
                return
        self.relay.send(self.owner, ["line", self.sid, text])

    def _tell_here(self, neighbours: Neighbours, raw: bytes) -> list[int]:
        """Chat `raw` to the realm's members here; the sids that heard it."""
        if neighbours.joining:  # the owner may seat them before it reads this line
            self.through_owner |= neighbours.joining
        seats = neighbours.seats
        if len(seats) < 2:
            return []
        data = seats[self.sid].prefix + raw + b"\r\n"
        heard = []
        for sid, member in seats.items():
            if sid != self.sid and sid not in self.through_owner:
                member.send(data)
                heard.append(sid)
        return heard

    def shut(self) -> None:
        """Nothing more goes either way through this seat."""
        self.open = False
        if self.neighbours is not None:
            self.neighbours.seats.pop(self.sid, None)

    def gone(self, why: str) -> None:
        if self.open:
            self.shut()
            self.seated.pop(self.sid, None)
            self.relay.send(self.owner, ["gone", self.sid, why])
