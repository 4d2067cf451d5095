"""The servers `bench/run.py` measures, each started fresh for each run.

A setup is one or more processes (and the Redis they share): their ports
for the load generator, and the pids whose CPU counts.  Kinds:

    realm            one `twistd realm` (reigns of 3 events, an SQLite chronicle)
    reference        ../shared/bench/ref_asyncio_realm.py, the least a Python
                     server can do for this fan-out
    twisted floor    bench/twisted_floor.py: Twisted alone, no game
    twisted direct   the same with realm's shortcuts past Twisted (realm._direct)
    realm cluster    one `twistd realm --cluster` and its redis-server
    realm x2         two `twistd realm --cluster` and their redis-server;
                     each realm's members spread over both (CPU: all three)
    realm scraped    realm with --metrics, scraped every 100 ms from CPU 1
    KIND@REV         a realm kind as it was at git revision REV (its own venv):
                     realm@05a54c9, realm x2@a517cb0

Servers run on CPU 0, the load on CPU 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "bench"
BUILDS = Path(tempfile.gettempdir()) / "realm-bench-builds"


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


def twistd_of(python: str) -> str:
    beside = Path(python).parent / "twistd"
    return str(beside) if beside.exists() else "twistd"


def build(rev: str) -> str:
    """A venv with realm as it was at `rev`; its python (built once)."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True,
                            capture_output=True, text=True).stdout.strip()[:12]
    venv = BUILDS / commit
    python = venv / "bin" / "python"
    if not python.exists():
        source = BUILDS / f"{commit}-src"
        if not source.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach",
                            str(source), commit], check=True, capture_output=True)
        print(f"building realm@{rev} ({commit}) in {venv} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], check=True)
    return str(python)


def known(python: str, options: list[str]) -> list[str]:
    """`options` (pairs of --name value) that realm at `python` has."""
    shown = subprocess.run([twistd_of(python), "realm", "--help"], capture_output=True,
                           text=True).stdout
    pairs = zip(options[::2], options[1::2], strict=True)
    return [x for name, value in pairs if f"{name}=" in shown for x in (name, value)]


class Setup:
    """The processes of one server kind, started and waited for."""

    def __init__(self, kind: str, args: argparse.Namespace, logdir: Path) -> None:
        self.kind = kind
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.cpu_pids: list[int] = []
        self.scraper: subprocess.Popen[bytes] | None = None
        folder = Path(tempfile.mkdtemp(prefix="realm-", dir=logdir))
        options = ["--max-rate", "0", "--max-per-address", "0", "--event-wait",
                   str(args.event_wait)]
        new = [*options, "--max-realms-per-address", "0", "--reign-length",
               str(args.reign_length), "--chronicle", f"sqlite:{folder / 'realm.sqlite'}"]
        base, _, rev = kind.partition("@")  # "KIND@REV": realm as it was at REV
        python = build(rev) if rev else sys.executable
        if rev:
            new = known(python, new)
        if base in ("realm", "realm scraped"):
            extra = []
            if base == "realm scraped":
                self.metrics = free_port()
                extra = ["--metrics", f"tcp:{self.metrics}:interface=127.0.0.1"]
            self._realm(python, [*new, *extra], folder)
        elif base in ("realm cluster", "realm x2"):
            url = self._redis(folder)
            for _ in range(2 if base == "realm x2" else 1):
                self._realm(python, [*new, "--cluster", url], folder)
        elif kind in ("twisted floor", "twisted direct"):
            direct = ["--direct"] if kind == "twisted direct" else []
            self._start([sys.executable, str(HERE / "twisted_floor.py"), "--port", "{port}",
                         *direct])
        else:
            self._start([sys.executable, str(SHARED / "ref_asyncio_realm.py"),
                         "--port", "{port}"])
        time.sleep(0.3)  # let the probe connections' goodbyes settle
        self.idle_kb = sum(rss_kb(pid) for pid in self.cpu_pids)
        if kind == "realm scraped":
            self.scraper = subprocess.Popen(pinned(1, [
                sys.executable, str(Path(__file__)), "scrape",
                f"http://127.0.0.1:{self.metrics}/metrics"]))

    def _realm(self, python: str, options: list[str], folder: Path) -> None:
        self._start([twistd_of(python), "-n", "--pidfile=", "realm", "--listen",
                     "tcp:{port}:interface=127.0.0.1:backlog=4096", *options], cwd=folder)

    def _redis(self, folder: Path) -> str:
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(folder)]
        self._start(argv, port=port, listens=True)
        return f"redis://127.0.0.1:{port}"

    def _start(self, argv: list[str], cwd: Path | None = None, port: int | None = None,
               listens: bool = False) -> None:
        port = port or free_port()
        argv = [a.replace("{port}", str(port)) for a in argv]
        log = self.logdir / f"{self.kind.replace(' ', '-').replace('@', '-')}-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(pinned(0, argv), stdout=out, stderr=subprocess.STDOUT,
                                    cwd=cwd or tempfile.gettempdir())
        self.procs.append(proc)
        self.cpu_pids.append(proc.pid)  # taskset execs the server: same pid
        if not listens:
            self.ports.append(port)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{self.kind} did not start; see {log}:\n"
                                     + log.read_text()[-2000:]) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.scraper is not None:
            self.scraper.terminate()
            self.scraper.wait()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape(url: str) -> None:
    """Fetch `url` every 100 ms until killed (a Prometheus in a hurry)."""
    while True:
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
        time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


if __name__ == "__main__" and sys.argv[1:2] == ["scrape"]:
    scrape(sys.argv[2])
