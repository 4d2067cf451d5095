#!/usr/bin/env python3
"""`make bench`: realm against the Python limit, in one table.

For each R (realms of 5 connections) it starts a fresh `twistd -n realm`
pinned to CPU 0, drives it from CPU 1 with bench/loadgen.py, then does the
same with the reference server (../shared/bench/ref_asyncio_realm.py, the
least a Python server can do for this fan-out).  Servers run interleaved,
`--reps` times, and the table shows medians: this machine is shared and
noisy.  Server CPU per round is the fair figure (on 2 cores the load
generator can be the bottleneck); peak RSS is the server's VmHWM, and
KiB/conn is (peak - idle RSS) / connections.  At R=100 the shared load
generator (../shared/bench/loadgen.py) also drives realm and the
reference, to show that the two generators give the same ratio.

    python bench/run.py                 # R = 1, 100, 400, 2000; ~4 minutes
    python bench/run.py --quick         # R = 1, 100, one repetition
    python bench/run.py --realms 400 --reps 5 --seconds 8
    python bench/run.py --floor         # + a bare Twisted relay, no game
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "bench"
LOADGEN = HERE / "loadgen.py"
BOTS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """One server process under test, started fresh for each measurement."""

    def __init__(self, kind: str, args: argparse.Namespace, logdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        if kind == "realm":
            twistd = Path(sys.executable).parent / "twistd"
            argv = [str(twistd) if twistd.exists() else "twistd", "-n", "--pidfile=", "realm",
                    "--listen", f"tcp:{self.port}:interface=127.0.0.1:backlog=4096",
                    "--max-rate", "0", "--max-per-address", "0",
                    "--event-wait", str(args.event_wait)]
        elif kind == "twisted floor":
            argv = [sys.executable, str(HERE / "twisted_floor.py"), "--port", str(self.port)]
        else:
            argv = [sys.executable, str(SHARED / "ref_asyncio_realm.py"),
                    "--port", str(self.port)]
        self.log = logdir / f"{kind.replace(' ', '-')}-{self.port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(pinned(0, argv), stdout=out, stderr=subprocess.STDOUT,
                                         cwd=tempfile.gettempdir())
        self.pid = self.proc.pid  # taskset execs the server: same pid
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{kind} did not start; see {self.log}:\n"
                                     + self.log.read_text()[-2000:]) from None
                time.sleep(0.05)
        time.sleep(0.3)  # let the probe connection's goodbye settle
        self.idle_kb = rss_kb(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def drive(server: Server, realms: int, args: argparse.Namespace, shared: bool = False
          ) -> dict[str, Any]:
    if shared:
        argv = [sys.executable, str(SHARED / "loadgen.py"), "--proto", "realm",
                "--port", str(server.port), "--realms", str(realms),
                "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                "--server-pid", str(server.pid)]
    else:
        argv = [sys.executable, str(LOADGEN), "--port", str(server.port),
                "--realms", str(realms), "--seconds", str(args.seconds),
                "--warmup", str(args.warmup), "--server-pid", str(server.pid)]
    done = subprocess.run(pinned(1, argv), capture_output=True, text=True,
                          timeout=args.seconds + args.warmup + 180)
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"errors": 1, "error_samples": [done.stderr[-500:]]}
    result["idle_rss_kb"] = server.idle_kb
    if shared:  # the shared generator's names for the same figures
        result["join_s"] = result.get("setup_s")
    return result


def measure(kind: str, realms: int, args: argparse.Namespace, logdir: Path,
            shared: bool = False) -> dict[str, Any]:
    server = Server(kind, args, logdir)
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
    head = (f"{'R':>5} {'conns':>6}  {'server':<24}{'rounds/s':>9} {'p50 ms':>8} "
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
        out.append(f"{realms:>5} {realms * (BOTS + 1):>6}  {label:<24}{cells[0]:>9} "
                   f"{cells[1]:>8} {cells[2]:>8} {cells[3]:>13} {cells[4]:>13} "
                   f"{cells[5]:>9} {cells[6]:>7} {errors:>6}")
    return "\n".join(out)


def ratio(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (a[k] / b[k] if a.get(k) and b.get(k) else None) for k in FIGURES}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--realms", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 100, 400, 2000], help="comma-separated R values")
    p.add_argument("--reps", type=int, default=3, help="repetitions per server and R")
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--event-wait", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="R = 1, 100; one repetition")
    p.add_argument("--no-ref", action="store_true", help="skip the reference server")
    p.add_argument("--no-shared", action="store_true", help="skip the shared loadgen run")
    p.add_argument("--floor", action="store_true",
                   help="also measure bench/twisted_floor.py (Twisted alone, no game)")
    p.add_argument("--json", metavar="FILE", help="also write every run's result here")
    p.add_argument("-v", "--verbose", action="store_true", help="each run's JSON to stderr")
    args = p.parse_args(argv)
    if args.quick:
        args.realms, args.reps, args.seconds = [1, 100], 1, 3.0

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    too_many = [r for r in args.realms if r * (BOTS + 1) + 100 > hard]
    for r in too_many:
        print(f"skipping R={r}: needs {r * (BOTS + 1)} descriptors, the limit is {hard}")
    realm_counts = [r for r in args.realms if r not in too_many]
    ref = not args.no_ref and (SHARED / "ref_asyncio_realm.py").exists()
    if not args.no_ref and not ref:
        print(f"no reference server at {SHARED}: measuring realm alone")
    shared = not args.no_shared and (SHARED / "loadgen.py").exists()
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        print("warning: fewer than 2 CPUs or no taskset: server and load are not pinned")

    agree_at = 100 if 100 in realm_counts else realm_counts[-1]
    rows: list[tuple[int, str, dict[str, Any]]] = []
    every: list[dict[str, Any]] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="realm-bench-") as tmp:
        logdir = Path(tmp)
        for realms in realm_counts:
            others = ["reference"] if ref else []
            floor = ["twisted floor"] if args.floor and ref else []
            runs = interleaved(["realm", *others, *floor], realms, args, logdir)
            every += [r for kind_runs in runs.values() for r in kind_runs]
            mine = summary(runs["realm"])
            rows.append((realms, "realm", mine))
            if ref:
                theirs = summary(runs["reference"])
                rows.append((realms, "reference", theirs))
                rows.append((realms, "realm/reference ratio", ratio(mine, theirs)))
                if floor:
                    bare = summary(runs["twisted floor"])
                    rows.append((realms, "twisted floor (no game)", bare))
                    rows.append((realms, "floor/reference ratio", ratio(bare, theirs)))
            if shared and realms == agree_at:  # the same, by the other generator
                pairs = interleaved(["realm", *others], realms, args, logdir, shared=True)
                every += [r for kind_runs in pairs.values() for r in kind_runs]
                other = summary(pairs["realm"])
                rows.append((realms, "realm (shared loadgen)", other))
                if ref:
                    theirs = summary(pairs["reference"])
                    rows.append((realms, "reference (shared)", theirs))
                    rows.append((realms, "shared: realm/ref ratio", ratio(other, theirs)))
    print()
    print(table(rows))
    print(f"\nmedians of {args.reps}; server on CPU 0, load on CPU 1; "
          f"--event-wait {args.event_wait:g}; {time.monotonic() - t0:.0f} s in all")
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in every))
    return 1 if any(row["errors"] for _, label, row in rows if "ratio" not in label) else 0


if __name__ == "__main__":
    sys.exit(main())
