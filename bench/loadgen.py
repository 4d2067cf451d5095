#!/usr/bin/env python3
"""realm's own closed-loop load generator: R realms of 5 players, one process.

A realm here is one Lord and 4 bots on their own TCP connections, speaking
the protocol (docs/PROTOCOL.md).  A round: the Lord sends `q<n># ...`;
the server relays it to the 4 bots; each bot answers `a<n># ...` exactly
once; the server relays each answer to the 4 other members; the round ends
when the Lord holds all 4 answers, and the Lord starts the next one at once
(closed loop).  Every Lord line after the first is a decision in a full
realm, so the server posts an event each round: `*** ` lines (events,
entries, banners) are ignored for the rounds but counted, and a `*** Error:`
line is an error.

After the measured window the Lords stop, every round in flight is drained,
and each member's counts are checked: every line sent was delivered exactly
once (`lost_lines`).

    python bench/loadgen.py --port P --realms R --seconds S --warmup W \\
        [--server-pid PID]

Prints one JSON object.  Standard library only (asyncio), so it runs under
any Python 3.10+; `join_s` is how long all R x 5 connections took to join.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time

BOTS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")
LORD_LINE = b"q%d# Winter is coming; my bannermen, what say you?\r\n"
BOT_LINE = b"a%d# We ride at your command, my Lord.\r\n"
EVENT = b"*** [New Event] "
ERROR = b"*** Error: "
FULL = b" has entered the realm (%d/%d)"


class Stats:
    """Counters shared by every realm of one run."""

    def __init__(self) -> None:
        self.measuring = False
        self.stopping = False
        self.t_start = 0.0
        self.latencies: list[float] = []
        self.events = 0  # events the Lords saw while measuring
        self.ended = 0  # rounds that ended while measuring
        self.errors = 0
        self.samples: list[str] = []
        self.in_flight = 0  # rounds started and not yet answered
        self.drained: asyncio.Future[None] | None = None

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(what[:200])

    def round_done(self) -> None:
        self.in_flight -= 1
        if self.stopping and not self.in_flight and self.drained and not self.drained.done():
            self.drained.set_result(None)


class Player(asyncio.Protocol):
    """One connection; `lord` says which half of the game it plays."""

    def __init__(self, game: Game, name: bytes, lord: bool) -> None:
        self.game = game
        self.name = name
        self.lord = lord
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.from_lord = 0  # Lord lines received (bots)
        self.from_bots = 0  # bot answers received

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # The contract lets the name line go before the greeting arrives.
        transport.write(b"%s@%s\r\n" % (self.name, self.game.realm))  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.game.stats.stopping:
            self.game.stats.error(f"{self.name.decode()}@{self.game.realm.decode()} "
                                  f"lost its connection: {exc!r}")

    def data_received(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
        lines = data.split(b"\r\n")
        self.rest = lines.pop()
        game = self.game
        for line in lines:
            if line[:4] == b"*** ":
                game.notice(self, line)
                continue
            sender, sep, text = line.partition(b": ")
            if not sep:
                game.stats.error(f"unparsed line {line[:80]!r}")
            elif sender == b"Lord":
                self.from_lord += 1
                if text[:1] == b"q" and not self.lord:
                    self.transport.write(BOT_LINE % int(text[1:text.index(b"#")]))  # type: ignore[union-attr]
                else:
                    game.stats.error(f"{self.name.decode()} got {line[:80]!r}")
            else:
                self.from_bots += 1
                if self.lord:
                    game.answer(text)


class Game:
    """One realm: a Lord, 4 bots, and the round in play."""

    def __init__(self, stats: Stats, realm: bytes, ready: asyncio.Future[None]) -> None:
        self.stats = stats
        self.realm = realm
        self.ready = ready
        self.full = FULL % (BOTS + 1, BOTS + 1)
        self.lord: Player | None = None
        self.bots: list[Player] = []
        self.round = 0
        self.expect = b""
        self.answers = BOTS
        self.t_sent = 0.0

    def notice(self, player: Player, line: bytes) -> None:
        if line.startswith(EVENT):
            if player.lord and self.stats.measuring:
                self.stats.events += 1
        elif line.startswith(ERROR):
            self.stats.error(f"{player.name.decode()}@{self.realm.decode()} got {line[:120]!r}")
        elif player.lord and not self.ready.done() and line.endswith(self.full):
            self.ready.set_result(None)

    def start(self) -> None:
        self.round += 1
        self.answers = 0
        self.expect = b"a%d#" % self.round
        self.stats.in_flight += 1
        self.t_sent = time.perf_counter()
        self.lord.transport.write(LORD_LINE % self.round)  # type: ignore[union-attr]

    def answer(self, text: bytes) -> None:
        if not text.startswith(self.expect) or self.answers >= BOTS:
            self.stats.error(f"unexpected answer {text[:40]!r} in round {self.round}")
            return
        self.answers += 1
        if self.answers < BOTS:
            return
        stats = self.stats
        if stats.measuring:
            stats.ended += 1
            if self.t_sent >= stats.t_start:
                stats.latencies.append(time.perf_counter() - self.t_sent)
        stats.round_done()
        if not stats.stopping:
            self.start()

    def lost_lines(self) -> int:
        """Lines a member should have had by now and did not (or extra ones)."""
        n = self.round
        lost = abs(4 * n - self.lord.from_bots)  # type: ignore[union-attr]
        for bot in self.bots:
            lost += abs(n - bot.from_lord) + abs(3 * n - bot.from_bots)
        return lost


def proc(pid: int) -> tuple[float, int, int] | None:
    """(CPU seconds, peak RSS KiB, RSS KiB) of process `pid`."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        hwm = rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return cpu, hwm, rss
    except (OSError, IndexError, ValueError):
        return None


def percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))
    return round(values[k] * 1000, 3)


async def join(loop: asyncio.AbstractEventLoop, args: argparse.Namespace,
               game: Game, gate: asyncio.Semaphore) -> None:
    """Connect the Lord first, then the 4 bots (the last seat is the Lord's)."""

    async def one(name: bytes, lord: bool) -> Player:
        player = Player(game, name, lord)
        for attempt in range(5):
            try:
                async with gate:
                    await loop.create_connection(lambda: player, args.host, args.port)
                return player
            except OSError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        return player

    game.lord = await one(b"Lord", True)
    game.bots = list(await asyncio.gather(*(one(b"Bot%d" % i, False)
                                            for i in range(1, BOTS + 1))))
    await game.ready


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    stats = Stats()
    stats.drained = loop.create_future()
    games = [Game(stats, b"%s%d" % (args.prefix.encode(), i), loop.create_future())
             for i in range(args.realms)]
    gate = asyncio.Semaphore(args.concurrency)

    t0 = time.perf_counter()
    joins = [asyncio.ensure_future(join(loop, args, g, gate)) for g in games]
    done, pending = await asyncio.wait(joins, timeout=args.join_timeout)
    join_s = time.perf_counter() - t0
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            stats.error(f"join: {task.exception()!r}")
    ready = [g for g in games if g.ready.done() and not g.ready.cancelled()]
    if len(ready) < len(games):
        stats.error(f"{len(games) - len(ready)} of {len(games)} realms not full "
                    f"after {join_s:.1f} s")
    after_join = proc(args.server_pid) if args.server_pid else None

    for g in ready:
        g.start()
    await asyncio.sleep(args.warmup)
    before = proc(args.server_pid) if args.server_pid else None
    cpu0 = time.process_time()
    stats.t_start = time.perf_counter()
    stats.events = stats.ended = 0
    stats.measuring = True
    await asyncio.sleep(args.seconds)
    stats.measuring = False
    wall = time.perf_counter() - stats.t_start
    cpu1 = time.process_time()
    after = proc(args.server_pid) if args.server_pid else None

    stats.stopping = True  # no new rounds; let those in flight finish
    if stats.in_flight:
        try:
            await asyncio.wait_for(stats.drained, args.drain)
        except TimeoutError:
            stats.error(f"{stats.in_flight} rounds still unanswered after {args.drain} s")
    # The last answers to the other bots may still be on their way.
    deadline = time.perf_counter() + 2.0
    lost = sum(g.lost_lines() for g in ready)
    while lost and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        lost = sum(g.lost_lines() for g in ready)
    if lost:
        stats.error(f"{lost} lines lost or duplicated")
    for g in games:
        for p in [g.lord, *g.bots]:
            if p is not None and p.transport is not None:
                p.transport.close()
    await asyncio.sleep(0.05)

    lat = sorted(stats.latencies)
    rounds = len(lat)
    result: dict[str, object] = {
        "generator": "bench/loadgen.py",
        "label": args.label,
        "realms": args.realms,
        "connections": args.realms * (BOTS + 1),
        "realms_ready": len(ready),
        "join_s": round(join_s, 3),
        "rounds": rounds,
        "wall_s": round(wall, 3),
        "rounds_per_s": round(rounds / wall, 1),
        "p50_ms": percentile_ms(lat, 0.50),
        "p90_ms": percentile_ms(lat, 0.90),
        "p99_ms": percentile_ms(lat, 0.99),
        "max_ms": round(lat[-1] * 1000, 3) if lat else None,
        "events_per_round": round(stats.events / stats.ended, 3) if stats.ended else None,
        "lost_lines": lost,
        "errors": stats.errors,
        "loadgen_cpu_util": round((cpu1 - cpu0) / wall, 3),
    }
    if before and after and after_join:
        cpu = after[0] - before[0]
        result["server_cpu_util"] = round(cpu / wall, 3)
        if rounds:
            result["server_cpu_us_per_round"] = round(cpu / rounds * 1e6, 1)
        result["server_rss_joined_kb"] = after_join[2]
        result["server_peak_rss_kb"] = after[1]
    if stats.samples:
        result["error_samples"] = stats.samples
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2345)
    p.add_argument("--realms", type=int, default=1, help="realms at once (x5 connections)")
    p.add_argument("--seconds", type=float, default=5.0, help="measured time")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured rounds first")
    p.add_argument("--server-pid", type=int, help="report this process's CPU and memory")
    p.add_argument("--prefix", default="b", help="realm name prefix (names are PREFIX0, ...)")
    p.add_argument("--label", default="")
    p.add_argument("--concurrency", type=int, default=256, help="connects in flight")
    p.add_argument("--join-timeout", type=float, default=60.0)
    p.add_argument("--drain", type=float, default=5.0, help="seconds to finish rounds")
    args = p.parse_args(argv)
    if args.realms < 1 or args.seconds <= 0 or args.warmup < 0:
        p.error("--realms and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.realms * (BOTS + 1) + 64
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
        except (ValueError, OSError):
            pass
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
