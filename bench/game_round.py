#!/usr/bin/env python3
"""The game's own Python per round: one `Realm`, no sockets, no reactor.

The bench's round, played straight into `realm.realm.Realm` by five
members whose `send` only keeps the bytes: the Lord's line (a decision
that names no action, as bench/loadgen.py's), then the four answers,
which settle the event and tell the next.  A reign ends every
`--reign-length` events and goes to `--chronicle none`, so what is
timed is the relay, the reign's rules and its endings, and nothing of
the kernel, Twisted or a database.

    python bench/game_round.py                  # µs per round, best of 5
    python bench/game_round.py --profile        # and where they go

It answers "how much of a round is the game" without a server's noise:
bench/RESULTS.md uses it beside `make bench`.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time

from twisted.internet.task import Clock

from realm.chronicle import NoChronicle
from realm.realm import Realm

LORD_LINE = b"q%d# Winter is coming; my bannermen, what say you?"
BOT_LINE = b"a%d# We ride at your command, my Lord."


class Member:
    """What a realm needs of a member, keeping what it is sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = name.encode("ascii") + b": "
        self.got: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.got.append(data)

    def close(self) -> None:
        pass


def seated(reign_length: int) -> tuple[Realm, list[Member]]:
    """A full realm, its game started."""
    realm = Realm("bench", 5, Clock(), 5.0, random.Random(7), lambda _: None,
                  reign_length=reign_length, chronicle=NoChronicle())
    members = [Member(name) for name in ("Lord", "Arya", "Bran", "Cersei", "Davos")]
    for member in members:
        realm.add(member)
    return realm, members


def play(realm: Realm, members: list[Member], rounds: int) -> None:
    lord, others = members[0], members[1:]
    for n in range(rounds):
        realm.chat(lord, LORD_LINE % n)
        for other in others:
            realm.chat(other, BOT_LINE % n)
        if n % 64 == 0:
            for member in members:
                member.got.clear()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=50_000)
    p.add_argument("--reign-length", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="also cProfile one pass")
    args = p.parse_args()
    realm, members = seated(args.reign_length)
    play(realm, members, 2_000)  # warm
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        play(realm, members, args.rounds)
        best = min(best, time.perf_counter() - start)
    events = realm.stats.events
    print(f"{1e6 * best / args.rounds:.2f} µs per round (best of 5 x {args.rounds} rounds; "
          f"{events} events, {sum(realm.stats.reigns_ended.values())} reigns ended)")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(play, realm, members, args.rounds)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
