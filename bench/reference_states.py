#!/usr/bin/env python3
"""The asyncio reference's two costs: how its first connection decides them.

asyncio reads with `recv(256 KiB)`.  glibc serves a block that large
with mmap until a block served so is freed whole, which raises its
threshold above 256 KiB for good.  A first connection that closes
without a byte makes its read return b"" and frees the block whole: from
then on every read is served from the heap.  A first connection that
sends a line makes its read shrink the block instead, and every later
read of that process costs an mmap, an mremap and a munmap (strace -c
shows one of each per recvfrom), until some connection closes cleanly.
`make bench` (bench/servers.py) waits for the reference with a
connect-and-close: it measures the cheap state.  A load that starts before
any connection has closed (the probe here stays open) meets the dear one.

This runs the reference in both states and realm, interleaved, at one R:

    python bench/reference_states.py --realms 100 --reps 5
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from servers import SHARED, free_port, pinned, twistd_of  # noqa: E402  (bench/ is not a package)

KINDS = ("reference, a connection closed before the load",
         "reference, none closed before the load", "realm")


def start(kind: str, port: int, folder: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """The server, started, and the connection that found it ready (closed
    at once, or open until the run is over)."""
    if kind == "realm":
        argv = [twistd_of(sys.executable), "-n", "--pidfile=", "realm", "--listen",
                f"tcp:{port}:interface=127.0.0.1:backlog=4096", "--max-rate", "0",
                "--max-per-address", "0", "--max-realms-per-address", "0",
                "--event-wait", "5", "--reign-length", "3",
                "--chronicle", f"sqlite:{folder}/realm.sqlite"]
    else:
        argv = [sys.executable, str(SHARED / "ref_asyncio_realm.py"), "--port", str(port)]
    proc = subprocess.Popen(pinned(0, argv), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=folder)
    deadline = time.monotonic() + 30
    while True:
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{kind} did not start") from None
            time.sleep(0.05)
    if "none closed" not in kind:
        probe.close()
    time.sleep(0.3)  # as bench/servers.py lets the probe's goodbye settle
    return proc, probe


def measure(kind: str, realms: int, seconds: float) -> float:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="realm-ref-") as folder:
        proc, probe = start(kind, port, folder)
        try:
            done = subprocess.run(pinned(1, [
                sys.executable, str(HERE / "loadgen.py"), "--port", str(port),
                "--realms", str(realms), "--seconds", str(seconds), "--warmup", "1",
                "--server-pid", str(proc.pid)]), capture_output=True, text=True,
                timeout=seconds + 120)
        finally:
            probe.close()
            proc.terminate()
            proc.wait(15)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["server_cpu_us_per_round"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--realms", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args()
    runs: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for rep in range(args.reps):
        for kind in KINDS if rep % 2 == 0 else KINDS[::-1]:
            runs[kind].append(measure(kind, args.realms, args.seconds))
            print(f"R={args.realms} {kind}: {runs[kind][-1]:.1f} us/round", file=sys.stderr)
    cheap = statistics.median(runs[KINDS[0]])
    print(f"\nserver CPU us per round at R={args.realms}, medians of {args.reps}:")
    for kind in KINDS:
        median = statistics.median(runs[kind])
        print(f"  {kind:<45} {median:7.1f}  ({median / cheap:.2f}x the first)")


if __name__ == "__main__":
    main()
