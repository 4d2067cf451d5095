"""bench/loadgen.py can drive a real server: one realm, a fraction of a
second of rounds, over loopback.  A smoke test of the tool, not a timing:
performance is measured by `make bench`, never asserted here."""

from __future__ import annotations

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
