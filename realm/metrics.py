"""What an operator's Prometheus scrapes, and the health checks.

`Metrics.render()` writes Prometheus' text format (version 0.0.4) from
the plain counters the server keeps (realm.stats): nothing is counted
through a client library on the hot path, and a scrape reads a few
dozen numbers, whatever the number of connections.

    realm_connections             gauge    open client connections of this process
    realm_connections_by_transport gauge   ... by transport (tcp, tls, unix, websocket, http)
    realm_connections_opened_total counter connections accepted, by transport
    realm_realms                  gauge    realms run by this process
    realm_realms_by_members       gauge    realms run here, by how many members they hold
    realm_lines_received_total    counter  client lines that passed the checks
    realm_lines_refused_total     counter  refusals: lines, names, passwords, connections
                                           (and by reason: each known one from the start)
    realm_events_total            counter  events told
    realm_reigns_ended_total      counter  reigns ended (and by outcome)
    realm_reigns_unrecorded_total counter  ended reigns the chronicle could not record
    realm_reactor_lag_seconds     gauge    how late a 1-second timer fired, last time
    realm_ready, realm_draining   gauge    1 or 0
    realm_redis_up, realm_redis_rtt_seconds, realm_relayed_ops_total   (with --cluster)
    process_resident_memory_bytes, process_open_fds, process_max_fds,
    process_cpu_seconds_total, process_start_time_seconds

`/livez` is 200 while the process runs; `/readyz` is 200 while it takes
new players, and 503 once it is shutting down or draining, or, with
`--cluster`, while Redis cannot be reached.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from realm import wire
from realm.records import OUTCOMES
from realm.routes import Handler, Request, Response

if TYPE_CHECKING:
    from realm.server import RealmServer

#: Error lines that answer a command or end a session, not counted as
#: refusals (realm_lines_refused_total counts lines, names, passwords and
#: connections refused).
NOT_REFUSALS = {"unknown_command", "lord_only", "dismiss_whom", "dismiss_self", "dismiss_nobody",
                "chronicle_failed", "idle_timeout", "login_timeout", "last_password"}
#: Every reason a refusal is counted under (a wire error line's kind),
#: each shown from the start: a rate over a series that appears late
#: misses its first refusal.
REASONS = {line.key for line in vars(wire).values() if isinstance(line, wire.Line)
           and line.is_error} - NOT_REFUSALS
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Metrics:
    """The numbers of one process, rendered on demand."""

    def __init__(self, server: RealmServer, clock: IReactorTime) -> None:
        self.server = server
        self.clock = clock
        self.started = time.time()
        self._lag = task.LoopingCall(self._probe)
        self._lag.clock = clock
        self._expected = 0.0

    def start(self) -> None:
        self._expected = self.clock.seconds() + 1.0
        self._lag.start(1.0, now=False)

    def stop(self) -> None:
        if self._lag.running:
            self._lag.stop()

    def _probe(self) -> None:
        now = self.clock.seconds()
        self.server.stats.reactor_lag = max(0.0, now - self._expected)
        self._expected = now + 1.0

    def ready(self) -> tuple[bool, str]:
        """Whether this process takes new players, and why not."""
        server = self.server
        if server.shutting_down:
            return False, "shutting down"
        if server.draining:
            return False, "draining"
        cluster = server.cluster
        if cluster is not None and not cluster.reachable():
            return False, "Redis cannot be reached"
        return True, "ready"

    def render(self) -> bytes:
        server, stats = self.server, self.server.stats
        sizes = Counter(len(realm.members) for realm in server.realms.values())
        ready, _ = self.ready()
        out: list[str] = []
        add = _Writer(out)
        add.gauge("realm_connections", "Open client connections of this process.",
                  [((), sum(stats.connections.values()))])
        add.gauge("realm_connections_by_transport", "Open client connections, by transport.",
                  [((("transport", k),), n) for k, n in sorted(stats.connections.items())])
        add.counter("realm_connections_opened_total", "Client connections accepted.",
                    [((("transport", k),), n) for k, n in sorted(stats.connections_total.items())])
        add.gauge("realm_realms", "Realms run by this process.", [((), len(server.realms))])
        add.gauge("realm_realms_by_members", "Realms run here, by the members they hold.",
                  [((("members", str(k)),), n) for k, n in sorted(sizes.items())])
        add.counter("realm_lines_received_total", "Client lines that passed the checks.",
                    [((), stats.lines_received)])
        add.counter("realm_lines_refused_total", "Refusals sent to clients (a line, a name, "
                    "a password, a connection).",
                    [((), sum(stats.refused.values()))])
        add.counter("realm_lines_refused_by_reason_total", "Refusals sent to clients, by reason.",
                    [((("reason", k),), stats.refused[k])
                     for k in sorted(REASONS | set(stats.refused))])
        add.counter("realm_events_total", "Events told.", [((), stats.events)])
        add.counter("realm_reigns_ended_total", "Reigns ended.",
                    [((), sum(stats.reigns_ended.values()))])
        add.counter("realm_reigns_ended_by_outcome_total", "Reigns ended, by outcome.",
                    [((("outcome", k),), stats.reigns_ended[k]) for k in OUTCOMES])
        add.counter("realm_reigns_unrecorded_total",
                    "Ended reigns the chronicle could not record (the log says why).",
                    [((), stats.reigns_unrecorded)])
        add.gauge("realm_reactor_lag_seconds", "How late a 1-second timer fired, last time.",
                  [((), stats.reactor_lag)])
        add.gauge("realm_ready", "1 while this process takes new players.", [((), int(ready))])
        add.gauge("realm_draining", "1 while this process drains.", [((), int(server.draining))])
        cluster = server.cluster
        if cluster is not None:
            add.gauge("realm_redis_up", "1 while Redis can be reached.",
                      [((), int(cluster.reachable()))])
            add.gauge("realm_redis_rtt_seconds", "How long the last heartbeat took in Redis "
                      "(none while it cannot be reached).",
                      [((), cluster.rtt)] if cluster.reachable() else [])
            add.counter("realm_relayed_ops_total", "Lines and messages sent to other "
                        "processes through Redis.", [((), cluster.relayed())])
        rss, fds = _process()
        add.gauge("process_resident_memory_bytes", "Resident memory.", [((), rss)])
        add.gauge("process_open_fds", "Open file descriptors.", [((), fds)])
        add.gauge("process_max_fds", "Maximum number of open file descriptors.",
                  [((), resource.getrlimit(resource.RLIMIT_NOFILE)[0])])
        times = os.times()
        add.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.",
                    [((), times.user + times.system)])
        add.gauge("process_start_time_seconds", "When the process started, since the epoch.",
                  [((), self.started)])
        return "".join(out).encode("utf-8")


    def routes(self) -> dict[str, Handler]:
        """`/metrics`, `/livez` and `/readyz`, for a `realm.http.HTTPFactory`."""
        return {"/metrics": self._metrics, "/livez": self._live, "/readyz": self._ready}

    def _metrics(self, request: Request) -> Response:
        return Response(200, self.render(), "text/plain; version=0.0.4; charset=utf-8")

    def _live(self, request: Request) -> Response:
        return Response.text(200, "live")

    def _ready(self, request: Request) -> Response:
        ready, why = self.ready()
        return Response.text(200 if ready else 503, why)


Labels = tuple[tuple[str, str], ...]


class _Writer:
    """Prometheus' text format, one metric family at a time."""

    def __init__(self, out: list[str]) -> None:
        self.out = out

    def gauge(self, name: str, help: str, samples: Iterable[tuple[Labels, Any]]) -> None:
        self._family(name, "gauge", help, samples)

    def counter(self, name: str, help: str, samples: Iterable[tuple[Labels, Any]]) -> None:
        self._family(name, "counter", help, samples)

    def _family(self, name: str, kind: str, help: str,
                samples: Iterable[tuple[Labels, Any]]) -> None:
        self.out.append(f"# HELP {name} {help}\n# TYPE {name} {kind}\n")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            self.out.append(f"{name}{{{shown}}} {_number(value)}\n" if shown
                            else f"{name} {_number(value)}\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _process() -> tuple[int, int]:
    """(resident bytes, open descriptors) of this process, where Linux says."""
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * _PAGE_SIZE
        fds = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, fds
