"""Metrics and health: the text format from a server's counters, in
memory on a `task.Clock`; and a real `twistd realm --metrics`, scraped
while clients connect, chat, are refused and play, and its `/readyz`
turning 503 on drain and on SIGTERM."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from realm_procs import WAIT, Peer, command, make_certificate, running
from twisted.internet import task

from realm import wire
from realm.metrics import NOT_REFUSALS, Metrics
from realm.server import RealmServer, Settings
from realm.testing import MemoryNet

SAMPLE = re.compile(r'([a-z_]+)(\{[^}]*\})? (-?[0-9.e+]+)\Z')


def parse(text: str) -> dict[str, float]:
    """`name{labels}` -> value; every line a sample, HELP or TYPE."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        sample = SAMPLE.match(line)
        assert sample is not None, line
        found[sample.group(1) + (sample.group(2) or "")] = float(sample.group(3))
    return found


def test_the_counters_move_as_members_play() -> None:
    clock = task.Clock()
    server = RealmServer(Settings(max_rate=5), clock, rng=random.Random(2))
    net = MemoryNet(server)
    metrics = Metrics(server, clock)
    before = parse(metrics.render().decode())
    assert before["realm_connections"] == 0 and before["realm_realms"] == 0
    # Every reason has its series from the start, as every outcome does;
    # an error line that is not a refusal has none.
    assert before['realm_lines_refused_by_reason_total{reason="too_fast"}'] == 0
    assert 'realm_lines_refused_by_reason_total{reason="idle_timeout"}' not in before
    assert NOT_REFUSALS <= {t.key for t in vars(wire).values()
                            if isinstance(t, wire.Line) and t.is_error}
    assert before["process_cpu_seconds_total"] > 0 and before["process_max_fds"] > 0
    lord, others = net.game()
    lord.say("1")
    for conn in others:
        conn.say("aye")
    others[0].send(b"x\xff\n" + b"spam\n" * 20)  # not UTF-8, then too fast
    now = parse(metrics.render().decode())
    assert now["realm_connections"] == 5
    assert now['realm_connections_by_transport{transport="tcp"}'] == 5
    assert now["realm_realms"] == 1 and now['realm_realms_by_members{members="5"}'] == 1
    assert now["realm_lines_received_total"] >= 5 + 5  # five joins, a decision, four answers
    assert now["realm_events_total"] == 2
    assert now["realm_lines_refused_total"] >= 10
    assert now['realm_lines_refused_by_reason_total{reason="too_fast"}'] >= 9
    assert now["realm_ready"] == 1 and now["realm_draining"] == 0
    assert now["process_resident_memory_bytes"] > 0
    lord.say("--leave")
    after = parse(metrics.render().decode())
    assert after["realm_connections"] == 0 and after["realm_realms"] == 0
    assert after["realm_reigns_ended_total"] == 1
    assert after['realm_reigns_ended_by_outcome_total{outcome="abandoned"}'] == 1
    # Every outcome has its series from the start: rate() needs no first one.
    assert after['realm_reigns_ended_by_outcome_total{outcome="won"}'] == 0
    assert after['realm_reigns_ended_by_outcome_total{outcome="fallen"}'] == 0


def test_the_reactor_lag_is_how_late_the_timer_fired() -> None:
    clock = task.Clock()
    server = RealmServer(Settings(), clock)
    metrics = Metrics(server, clock)
    metrics.start()
    clock.advance(1.0)
    assert server.stats.reactor_lag == 0.0
    clock.advance(1.75)  # the next second's timer fires 0.75 s late
    assert abs(server.stats.reactor_lag - 0.75) < 1e-9
    metrics.stop()


def test_ready_says_why_not() -> None:
    server = RealmServer(Settings(), task.Clock())
    metrics = Metrics(server, task.Clock())
    assert metrics.ready() == (True, "ready")
    server.draining = True
    assert metrics.ready() == (False, "draining")
    server.shutting_down = True
    assert metrics.ready() == (False, "shutting down")


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def serve(tmp_path: Path, *options: str) -> Any:
    return running(command("twistd"), "-n", "--pidfile=", "realm", "--chronicle", "none",
                   "--listen", "tcp:0:interface=127.0.0.1",
                   "--metrics", "tcp:0:interface=127.0.0.1", *options, cwd=str(tmp_path))


def ports(server: Any) -> tuple[int, int]:
    """(the line port, the metrics port), from the factories' log lines."""
    found: dict[str, int] = {}
    while len(found) < 2:
        started = server.expect_re(r"(RealmFactory|HTTPFactory) starting on (\d+)")
        found[started.group(1)] = int(started.group(2))
    return found["RealmFactory"], found["HTTPFactory"]


def test_a_real_server_is_scraped_while_it_plays(tmp_path: Path) -> None:
    with serve(tmp_path, "--size", "2") as server:
        line, web = ports(server)
        assert get(web, "/livez") == (200, "live\n")
        assert get(web, "/readyz") == (200, "ready\n")
        first = parse(get(web, "/metrics")[1])
        assert first["realm_connections"] == 0
        arya, lord = Peer.connect(f"tcp:127.0.0.1:{line}"), Peer.connect(f"tcp:127.0.0.1:{line}")
        arya.send(b"arya\n")
        lord.send(b"lord\n")
        lord.expect("[New Event]")
        lord.send(b"1\n\x07bell\n")
        arya.expect("Lord: 1")
        arya.send(b"aye\n")
        lord.expect("[Realm]")
        now = parse(get(web, "/metrics")[1])
        assert now["realm_connections"] == 2 and now["realm_realms"] == 1
        assert now["realm_lines_received_total"] == 4
        assert now['realm_lines_refused_by_reason_total{reason="control"}'] == 1
        assert now["realm_events_total"] == 2
        assert get(web, "/nowhere")[0] == 404


def test_readyz_turns_503_on_drain_and_on_sigterm(tmp_path: Path) -> None:
    admin = tmp_path / "admin.sock"
    with serve(tmp_path, "--admin", f"unix:{admin}:mode=600") as server:
        line, web = ports(server)
        server.expect("Serving the operator's console")
        arya = Peer.connect(f"tcp:127.0.0.1:{line}")
        arya.send(b"arya\n")
        arya.expect("Arya has entered")
        with socket.socket(socket.AF_UNIX) as console:
            console.settimeout(WAIT)
            console.connect(str(admin))
            console.sendall(b"drain\n")
            assert b"draining" in console.recv(4096)
        assert get(web, "/readyz") == (503, "draining\n")
        assert get(web, "/livez")[0] == 200
    pem, _ = make_certificate(tmp_path / "tls")
    with serve(tmp_path, "--listen", f"ssl:0:privateKey={pem}:interface=127.0.0.1") as server:
        found: dict[str, int] = {}
        while len(found) < 3:
            started = server.expect_re(r"(\w+(?: \(TLS\))?) starting on (\d+)")
            found[started.group(1)] = int(started.group(2))
        web, tls = found["HTTPFactory"], found["RealmFactory (TLS)"]
        server.expect("Running: SIGTERM")
        # A TLS client that never finishes its handshake: the server's close
        # of it cannot finish, so the shutdown takes its 5 s grace, and
        # meanwhile the metrics answer.
        stuck = socket.create_connection(("127.0.0.1", tls), timeout=WAIT)
        accepted = 'realm_connections_by_transport{transport="tls"} 1'
        deadline = time.monotonic() + WAIT
        while accepted not in get(web, "/metrics")[1]:  # else SIGTERM may come first
            assert time.monotonic() < deadline, "the server never took the TLS connection"
        os.kill(server.pid, signal.SIGTERM)
        server.expect("Shutting down")
        assert get(web, "/readyz") == (503, "shutting down\n")
        assert server.wait() == 0
        stuck.close()



def test_the_dashboard_and_the_alerts_ask_for_metrics_realm_has() -> None:
    """docs/ops/ stays in step with realm/metrics.py."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "ops"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"\b(?:realm|process)_[a-z_]+", target["expr"])}
    asked |= set(re.findall(r"\b(?:realm|process)_[a-z_]+",
                            (docs / "prometheus.yml").read_text()))

    class Clustered:  # what the metrics read of a cluster
        rtt = 0.001
        up = True

        def reachable(self) -> bool:
            return self.up

        def relayed(self) -> int:
            return 0

    server = RealmServer(Settings(), task.Clock())
    MemoryNet(server).game()  # a realm, so that realms are counted by members
    server.cluster = Clustered()  # type: ignore[assignment]
    server.stats.refused["control"] = 1
    server.stats.reigns_ended["won"] = 1
    server.stats.connections["tcp"] = 0
    rendered = {sample.split("{")[0] for sample in parse(Metrics(server, task.Clock())
                                                         .render().decode())}
    assert asked and asked <= rendered, asked - rendered
    # A round trip is not kept while Redis cannot be reached: no stale value.
    Clustered.up = False
    down = parse(Metrics(server, task.Clock()).render().decode())
    assert down["realm_redis_up"] == 0 and "realm_redis_rtt_seconds" not in down
