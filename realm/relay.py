"""Lines between processes: one Redis message per destination process per
reactor turn, whatever the number of lines.

A message is JSON: `[SENDER, [OP, ...]]`, each op a list whose first item
names it (realm.cluster handles them):

    from a member's process to the realm's owner
      ["check", RID, REALM, NAME, ADDRESS, FENCE]   may NAME join?
      ["join", SID, REALM, NAME, ADDRESS, FENCE]    seat SID as NAME
      ["line", SID, TEXT]                           a line SID typed
      ["gone", SID, WHY]                            SID has gone
    from the owner back
      ["checked", RID, ANSWER]                      "" (yes), a refusal line, or "moved"
      ["joined", SID, ANSWER]                       the same
      ["send", [SID, ...], DATA]                    wire-ready lines for each SID
      ["close", SID]                                close SID's connection
    either way
      ["bye"]                                       the sender is shutting down

Lines sent to several members of one process in the same turn travel
once: consecutive `send` ops with the same data merge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from realm import leases

log = Logger()

Op = list[Any]


def decode(payload: bytes) -> tuple[str, list[Op]]:
    """(sender, ops) of one message; ValueError if it is not one."""
    sender, ops = json.loads(payload)
    if not isinstance(sender, str) or not isinstance(ops, list):
        raise ValueError("not a realm relay message")
    return sender, ops


class Relay:
    """Ops held per destination process until the reactor's turn ends."""

    def __init__(self, clock: IReactorTime, node: str,
                 publish: Callable[[str, bytes], Deferred[Any]]) -> None:
        self.clock = clock
        self.node = node
        self.publish = publish
        self.relayed = 0  # ops sent to other processes, for the metrics
        self._pending: dict[str, list[Op]] = {}

    def send(self, node: str, op: Op) -> None:
        pending = self._pending.get(node)
        if pending is None:
            if not self._pending:
                self.clock.callLater(0, self.flush)
            pending = self._pending[node] = []
        pending.append(op)

    def deliver(self, node: str, sid: int, data: bytes) -> None:
        """`data` for the member `sid` of process `node`."""
        pending = self._pending.get(node)
        if pending:
            last = pending[-1]
            if last[0] == "send" and last[2] is data:  # one broadcast, many members
                last[1].append(sid)
                return
        self.send(node, ["send", [sid], data])

    def flush(self) -> Deferred[Any]:
        """Publish what is held; the Deferred fires once Redis has it all."""
        pending, self._pending = self._pending, {}
        sent: list[Deferred[Any]] = []
        for node, ops in pending.items():
            self.relayed += len(ops)
            for op in ops:
                if op[0] == "send":
                    op[2] = op[2].decode("utf-8")
            payload = json.dumps([self.node, ops], separators=(",", ":")).encode()
            sent.append(self.publish(leases.channel(node), payload).addErrback(self._lost))
        return DeferredList(sent)

    def _lost(self, failure: Failure) -> None:
        log.info("Lines for another process were lost: {why}", why=failure.getErrorMessage())
