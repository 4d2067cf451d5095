"""realm.relay without Redis: what one reactor turn's ops become as
messages, and what happens to them when Redis cannot be reached.  The
cluster tests (test_cluster*.py) carry them through a real Redis."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from realm import leases
from realm.redis import RedisLink, RedisURL, Unreachable
from realm.relay import Relay, decode
from realm.testing import eventually


class Published:
    """A `publish` that keeps what it is given, or fails while `down`."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.down = False

    def __call__(self, channel: bytes, payload: bytes) -> None:
        if self.down:
            raise Unreachable("Redis at redis://127.0.0.1:1/0 cannot be reached")
        self.messages.append((channel, payload))


def relay() -> tuple[Relay, Clock, Published]:
    clock, published = Clock(), Published()
    return Relay(clock, "me", published), clock, published


def test_one_message_per_process_per_turn() -> None:
    r, clock, published = relay()
    line = b"Arya: Winter is coming\r\n"
    r.deliver("b", 1, line)
    r.deliver("b", 2, line)  # the same broadcast: one op for both
    r.send("c", ["line", 7, "Aye"])
    r.deliver("b", 3, b"*** Bran has left the realm (2/5)\r\n")
    assert published.messages == []  # held until the turn ends
    clock.advance(0)
    by_channel = dict(published.messages)
    assert set(by_channel) == {leases.channel("b").encode(), leases.channel("c").encode()}
    assert decode(by_channel[leases.channel("b").encode()]) == ("me", [
        ["send", [1, 2], "Arya: Winter is coming\r\n"],
        ["send", [3], "*** Bran has left the realm (2/5)\r\n"]])
    assert decode(by_channel[leases.channel("c").encode()]) == ("me", [["line", 7, "Aye"]])
    assert r.relayed == 3
    clock.advance(1)
    assert len(published.messages) == 2  # nothing more was held


@pytest_twisted.ensureDeferred
async def test_what_the_next_turn_brings_joins_the_message() -> None:
    """On the real reactor: an op sent in the turn after the first (a
    second answer read a moment later) leaves in the same message."""
    published = Published()
    r = Relay(reactor, "me", published)  # type: ignore[arg-type]
    r.send("b", ["line", 1, "first"])
    reactor.callLater(0, r.send, "b", ["line", 2, "second"])  # type: ignore[attr-defined]
    await eventually(lambda: published.messages, "the message")
    assert [decode(payload)[1] for _, payload in published.messages] == [
        [["line", 1, "first"], ["line", 2, "second"]]]


def test_lines_for_an_unreachable_redis_are_dropped_not_kept() -> None:
    r, clock, published = relay()
    published.down = True
    r.send("b", ["line", 1, "lost"])
    clock.advance(0)  # logged, not raised: the cluster has let "b" go
    published.down = False
    r.send("b", ["line", 1, "heard"])
    clock.advance(0)
    assert [decode(payload)[1] for _, payload in published.messages] == [[["line", 1, "heard"]]]


def test_publishing_while_redis_is_out_of_reach_says_so() -> None:
    link = RedisLink(Clock(), RedisURL("127.0.0.1", 1), "realm:to:me",
                     lambda message: None, lambda: None, lambda: None)
    with pytest.raises(Unreachable, match="cannot be reached"):
        link.publish(leases.channel("b").encode(), b"[]")
