"""bench/loadgen.py can drive a real server, and bench/twisted_floor.py
relays every line: a few realms, a fraction of a second of rounds, over
loopback.  Smoke tests of the tools, not timings: performance is measured
by `make bench`, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from realm_procs import running
from twisted.internet import reactor, utils

from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings

LOADGEN = Path(__file__).resolve().parent.parent / "bench" / "loadgen.py"
FLOOR = LOADGEN.parent / "twisted_floor.py"


@pytest_twisted.inlineCallbacks
def test_loadgen_plays_rounds_against_a_server() -> Generator[Any, Any, None]:
    settings = Settings(max_rate=0, max_per_address=0, event_wait=5)
    server = RealmServer(settings, reactor, rng=random.Random(7))  # type: ignore[arg-type]
    port = reactor.listenTCP(0, RealmFactory(server),  # type: ignore[attr-defined]
                             interface="127.0.0.1")
    try:
        out, err, code = yield utils.getProcessOutputAndValue(
            sys.executable,
            [str(LOADGEN), "--port", str(port.getHost().port), "--realms", "2",
             "--seconds", "0.3", "--warmup", "0.1", "--join-timeout", "10",
             "--drain", "5"],
            reactor=reactor)
    finally:
        yield port.stopListening()
        yield server.shutdown(grace=2)
    assert code == 0, err.decode() + out.decode()
    result = json.loads(out)
    assert result["errors"] == 0
    assert result["realms_ready"] == 2
    assert result["rounds"] > 0
    assert result["lost_lines"] == 0
    # Every Lord line after all four answers is a decision: one event a round.
    assert 0.9 <= result["events_per_round"] <= 1.1


@pytest.mark.parametrize("shortcuts", [[], ["--direct"]], ids=["plain", "direct"])
def test_the_twisted_floor_relays_every_line(shortcuts: list[str]) -> None:
    with running(sys.executable, str(FLOOR), "--port", "0", *shortcuts) as floor:
        port = floor.expect_re(r"listening on (\d+)").group(1)
        done = subprocess.run(
            [sys.executable, str(LOADGEN), "--port", port, "--realms", "3", "--seconds", "0.3",
             "--warmup", "0.1", "--join-timeout", "10", "--drain", "5"],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert (result["errors"], result["lost_lines"], result["realms_ready"]) == (0, 0, 3)
    assert result["rounds"] > 0


def test_game_round_plays_the_benchs_round_in_process() -> None:
    spec = importlib.util.spec_from_file_location("game_round", LOADGEN.parent / "game_round.py")
    assert spec is not None and spec.loader is not None
    game_round = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(game_round)
    realm, members = game_round.seated(reign_length=3)
    game_round.play(realm, members, 30)
    # The first event, then one a round: every round settles one and tells the next.
    assert realm.stats.events == 31
    assert sum(realm.stats.reigns_ended.values()) >= 10  # 3 events at most each
    heard = b"".join(members[1].got)
    assert heard.count(b"*** [Realm] ") >= 1 and b"Lord: q29# " in heard
