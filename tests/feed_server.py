"""A real realm server with a feed, for the browser tests of the reign.

The game does not send the reign's lines yet (`*** [Realm] ...`,
`*** [Reign Ended] ...`); the page must show them all the same.  This
runs the real `RealmServer` on `--listen` and `--web` ports (the real
page, the real WebSocket, real members and events), plus a control port
on 127.0.0.1: each line written there is sent, as it is, to every member
of every realm.

    python tests/feed_server.py TCP_PORT WEB_PORT CONTROL_PORT

It prints `ready` once all three listen, and ends on SIGTERM.
"""

from __future__ import annotations

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver

from realm import web
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings


class Feed(LineOnlyReceiver):
    """Each line received goes to every member of every realm."""

    delimiter = b"\n"

    def __init__(self, server: RealmServer) -> None:
        self.server = server

    def lineReceived(self, line: bytes) -> None:
        for realm in list(self.server.realms.values()):
            for member in list(realm.members.values()):
                member.send(line.rstrip(b"\r") + b"\r\n")


def main(argv: list[str]) -> None:
    tcp, http, control = (int(port) for port in argv)
    server = RealmServer(Settings(event_wait=30), reactor)  # type: ignore[arg-type]
    reactor.listenTCP(tcp, RealmFactory(server), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.listenTCP(http, web.site(server), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.listenTCP(control, Factory.forProtocol(lambda: Feed(server)),  # type: ignore[attr-defined]
                      interface="127.0.0.1")
    print("ready", flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
