#!/usr/bin/env python3
"""A bare Twisted relay for the bench workload: the Twisted floor.

What ref_asyncio_realm.py does, on Twisted's reactor: join by
`NAME@REALM`, announce `(n/5)`, relay every other line as `Name: text`.
No game, no checks, no limits.  It is not part of realm: it measures how
much of realm's cost per round is Twisted's reactor and transports alone.

With `--direct` it takes realm's two shortcuts past Twisted's queue and
log context (realm._direct): a line goes straight to an idle socket, and
the poll hands ready sockets over with no log context.  It still sends
each line as it comes, as the reference does; realm holds a turn's lines
for a member and sends them in one write.

    taskset -c 0 python bench/twisted_floor.py --port P [--direct] &
    taskset -c 1 python bench/loadgen.py --port P --realms 400 --server-pid $!
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from twisted.internet import protocol, reactor

from realm._direct import direct_writer, plain_dispatch

SIZE = 5
realms: dict[bytes, list[Member]] = {}


class Member(protocol.Protocol):
    direct = False  # --direct

    def __init__(self) -> None:
        self.rest = b""
        self.realm: list[Member] | None = None
        self.prefix = b""

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        write: Callable[[bytes], None] = self.transport.write  # type: ignore[union-attr]
        self.send = (direct_writer(self.transport) if self.direct else None) or write
        self.transport.write(b"*** Welcome.\r\n*** Your name?\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            line = line.rstrip(b"\r")
            if self.realm is None:
                name, _, key = line.partition(b"@")
                members = self.realm = realms.setdefault(key.lower(), [])
                self.prefix = name + b": "
                members.append(self)
                note = b"*** %s has entered the realm (%d/%d)\r\n" % (name, len(members), SIZE)
                for other in members:
                    other.transport.write(note)  # type: ignore[union-attr]
            elif line:
                data = self.prefix + line + b"\r\n"
                for other in self.realm:
                    if other is not self:
                        other.send(data)

    def connectionLost(self, reason: object = None) -> None:
        if self.realm is not None:
            self.realm.remove(self)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=2345)
    p.add_argument("--direct", action="store_true", help="with realm's shortcuts (realm._direct)")
    args = p.parse_args()
    if args.direct:
        Member.direct = plain_dispatch(reactor)
    factory = protocol.Factory.forProtocol(Member)
    port = reactor.listenTCP(args.port, factory, backlog=4096,  # type: ignore[attr-defined,arg-type]
                             interface="127.0.0.1")
    print(f"listening on {port.getHost().port}", flush=True)  # for --port 0
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
