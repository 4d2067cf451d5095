"""bench/loadgen.py can drive a real server: one realm, a fraction of a
second of rounds, over loopback.  A smoke test of the tool, not a timing:
performance is measured by `make bench`, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor, utils

from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings

LOADGEN = Path(__file__).resolve().parent.parent / "bench" / "loadgen.py"


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
