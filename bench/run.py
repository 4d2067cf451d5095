#!/usr/bin/env python3
"""`make bench`: realm against the Python limit, and against itself, in tables.

Every run starts its servers fresh (bench/servers.py: realm pinned to
CPU 0, the load on CPU 1), runs them interleaved `--reps` times, and the
tables show medians, and ratios between kinds measured in the same run:
this machine is shared and noisy.  Server CPU per round is the fair
figure (on 2 cores the load generator can be the bottleneck); peak RSS
is VmHWM, KiB/conn is (peak - idle RSS) / connections.

    table     realm and the reference (../shared/bench/ref_asyncio_realm.py)
              at each R, by bench/loadgen.py; at R=100 also by the shared
              load generator (../shared/bench/loadgen.py), to show the two agree
    cluster   realm, realm --cluster, and two --cluster processes with each
              realm's members spread over both (CPU: both and redis-server),
              all by the shared load generator, at R=1 and R=100 (and the
              two processes at --cluster-before REV)
    scrape    realm, and realm scraped at /metrics every 100 ms, at R=100 (--at)
    before    realm as it was before the reign (--before REV), and now, at R=100 (--at)

Realm plays reigns of `--reign-length` events (3: a chronicle write every
few rounds).

    python bench/run.py                       # everything; ~7 minutes
    python bench/run.py --quick               # the table at R = 1, 100, one repetition
    python bench/run.py --only cluster --reps 5
    python bench/run.py --only before --before HEAD --at 100,2000   # this change
    python bench/run.py --only cluster --cluster-before HEAD        # this change, clustered
    python bench/run.py --realms 400 --reps 5 --seconds 8
    python bench/run.py --floor               # + a bare Twisted relay, no game
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from servers import SHARED, Setup, pinned  # noqa: E402  (bench/ is not a package)

LOADGEN = HERE / "loadgen.py"
BOTS = 4
#: The last commit before the reign came into the game.
BEFORE_REIGN = "05a54c9"


def drive(server: Setup, realms: int, args: argparse.Namespace, shared: bool = False
          ) -> dict[str, Any]:
    pids = ",".join(map(str, server.cpu_pids))
    if shared or len(server.ports) > 1:
        argv = [sys.executable, str(SHARED / "loadgen.py"), "--proto", "realm",
                "--ports", ",".join(map(str, server.ports)), "--realms", str(realms),
                "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                "--server-pid", pids]
    else:
        argv = [sys.executable, str(LOADGEN), "--port", str(server.ports[0]),
                "--realms", str(realms), "--seconds", str(args.seconds),
                "--warmup", str(args.warmup), "--server-pid", pids]
    done = subprocess.run(pinned(1, argv), capture_output=True, text=True,
                          timeout=args.seconds + args.warmup + 180)
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"errors": 1, "error_samples": [done.stderr[-500:]]}
    result["idle_rss_kb"] = server.idle_kb
    if "setup_s" in result:  # the shared generator's name for the same figure
        result["join_s"] = result.get("setup_s")
    return result


def measure(kind: str, realms: int, args: argparse.Namespace, logdir: Path,
            shared: bool = False) -> dict[str, Any]:
    server = Setup(kind, args, logdir)
    try:
        result = drive(server, realms, args, shared)
    finally:
        server.stop()
    result["server"] = kind + (" (shared loadgen)" if shared else "")
    if args.verbose:
        print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def interleaved(kinds: list[str], realms: int, args: argparse.Namespace, logdir: Path,
                shared: bool = False) -> dict[str, list[dict[str, Any]]]:
    """`args.reps` runs of each server kind, the order reversed every other rep."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    by = ", shared loadgen," if shared else ""
    for rep in range(args.reps):
        for kind in kinds if rep % 2 == 0 else kinds[::-1]:
            print(f"R={realms} {kind}{by} run {rep + 1}/{args.reps} ...",
                  file=sys.stderr, flush=True)
            runs[kind].append(measure(kind, realms, args, logdir, shared))
    return runs


#: `--floor`: Twisted relaying with no game, as it comes and with realm's shortcuts.
FLOORS = ["twisted floor", "twisted direct"]
FIGURES = ["rounds_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_round",
           "peak_mib", "kib_per_conn", "join_s"]


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"errors": sum(int(r.get("errors") or 0) for r in runs),
                           "n": len(runs)}
    for r in runs:
        peak = r.get("server_peak_rss_kb")
        if peak:
            r["peak_mib"] = peak / 1024
            conns = r.get("connections") or 0
            if conns >= 500:
                r["kib_per_conn"] = (peak - r["idle_rss_kb"]) / conns
    for key in FIGURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    return row


def fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[tuple[int, str, dict[str, Any]]]) -> str:
    head = (f"{'R':>5} {'conns':>6}  {'server':<32}{'rounds/s':>9} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'CPU us/round':>13} {'peak RSS MiB':>13} {'KiB/conn':>9} "
            f"{'join s':>7} {'errors':>6}")
    out = [head, "-" * len(head)]
    digits = [0, 3, 3, 1, 1, 2, 2]
    for realms, label, row in rows:
        cells = []
        for key, d in zip(FIGURES, digits, strict=True):
            v = row.get(key)
            cells.append(f"{v:.2f}x" if label.endswith("ratio") and v is not None
                         else fmt(v, d))
        errors = "" if label.endswith("ratio") else str(row["errors"])
        out.append(f"{realms:>5} {realms * (BOTS + 1):>6}  {label:<32}{cells[0]:>9} "
                   f"{cells[1]:>8} {cells[2]:>8} {cells[3]:>13} {cells[4]:>13} "
                   f"{cells[5]:>9} {cells[6]:>7} {errors:>6}")
    return "\n".join(out)


def ratio(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (a[k] / b[k] if a.get(k) and b.get(k) else None) for k in FIGURES}


Rows = list[tuple[int, str, dict[str, Any]]]
GROUPS = ("table", "cluster", "scrape", "before")


def compare(kinds: list[str], realms: int, args: argparse.Namespace, logdir: Path,
            every: list[dict[str, Any]], shared: bool = False, base: str = "") -> Rows:
    """Rows for `kinds` at `realms`, each with its ratio to `base` (the first)."""
    runs = interleaved(kinds, realms, args, logdir, shared)
    every += [r for kind_runs in runs.values() for r in kind_runs]
    base = base or kinds[0]
    rows: Rows = []
    summaries = {kind: summary(runs[kind]) for kind in kinds}
    for kind in kinds:
        label = kind + (" (shared)" if shared else "")
        rows.append((realms, label, summaries[kind]))
    for kind in kinds:
        if kind != base:
            rows.append((realms, f"{kind}/{base} ratio", ratio(summaries[kind], summaries[base])))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--realms", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 100, 400, 2000], help="comma-separated R values (the table)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per server and R")
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--event-wait", type=float, default=5.0)
    p.add_argument("--reign-length", type=int, default=3)
    p.add_argument("--only", action="append", choices=GROUPS, help="these groups only")
    p.add_argument("--before", default=BEFORE_REIGN, metavar="REV",
                   help="the revision 'before' measures (default: the last before the reign)")
    p.add_argument("--cluster-before", metavar="REV",
                   help="the cluster group also runs realm x2 as it was at REV")
    p.add_argument("--quick", action="store_true", help="the table at R = 1, 100; one repetition")
    p.add_argument("--at", type=lambda v: [int(r) for r in v.split(",")], default=[100],
                   metavar="R,...", help="R values of the scrape and before groups")
    p.add_argument("--no-shared", action="store_true", help="skip the shared loadgen run")
    p.add_argument("--floor", action="store_true",
                   help="also measure bench/twisted_floor.py (Twisted alone, no game), "
                   "plain and with realm's shortcuts")
    p.add_argument("--json", metavar="FILE", help="also write every run's result here")
    p.add_argument("-v", "--verbose", action="store_true", help="each run's JSON to stderr")
    args = p.parse_args(argv)
    groups = set(args.only or GROUPS)
    if args.quick:
        args.realms, args.reps, args.seconds, groups = [1, 100], 1, 3.0, {"table"}

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    too_many = [r for r in args.realms if r * (BOTS + 1) + 100 > hard]
    for r in too_many:
        print(f"skipping R={r}: needs {r * (BOTS + 1)} descriptors, the limit is {hard}")
    realm_counts = [r for r in args.realms if r not in too_many]
    have_shared = (SHARED / "loadgen.py").exists() and (SHARED / "ref_asyncio_realm.py").exists()
    if not have_shared:
        print(f"no ../shared/bench at {SHARED}: measuring realm alone")
        groups &= {"table", "before"}
    if "cluster" in groups and not shutil.which("redis-server"):
        print("no redis-server: skipping the cluster group")
        groups.discard("cluster")
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        print("warning: fewer than 2 CPUs or no taskset: server and load are not pinned")

    rows: Rows = []
    every: list[dict[str, Any]] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="realm-bench-") as tmp:
        logdir = Path(tmp)
        if "table" in groups:
            agree_at = 100 if 100 in realm_counts else realm_counts[-1]
            for realms in realm_counts:
                kinds = ["realm", *(["reference"] if have_shared else []),
                         *(FLOORS if args.floor and have_shared else [])]
                rows += compare(kinds, realms, args, logdir, every, base="reference"
                                if have_shared else "realm")
                if have_shared and not args.no_shared and realms == agree_at:
                    rows += compare(["realm", "reference"], realms, args, logdir, every,
                                    shared=True, base="reference")
        if "cluster" in groups:
            old = [f"realm x2@{args.cluster_before}"] if args.cluster_before else []
            for realms in (1, 100):
                here = compare(["realm", "realm cluster", "realm x2", *old], realms, args,
                               logdir, every, shared=True)
                found = {label: row for _, label, row in here}
                for kind in old:
                    here.append((realms, f"realm x2/{kind} ratio",
                                 ratio(found["realm x2 (shared)"], found[f"{kind} (shared)"])))
                rows += here
        for realms in args.at:
            if "scrape" in groups:
                rows += compare(["realm", "realm scraped"], realms, args, logdir, every)
            if "before" in groups:
                rows += compare([f"realm@{args.before}", "realm"], realms, args, logdir, every)
    print()
    print(table(rows))
    print(f"\nmedians of {args.reps}; servers on CPU 0, load on CPU 1; "
          f"--event-wait {args.event_wait:g}, --reign-length {args.reign_length}; "
          f"{time.monotonic() - t0:.0f} s in all")
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in every))
    return 1 if any(row["errors"] for _, label, row in rows if "ratio" not in label) else 0


if __name__ == "__main__":
    sys.exit(main())
