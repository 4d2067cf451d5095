"""A real realm server with a feed, for the browser tests of what the
page shows of the lines it gets (the realm's news, a reign's end...).

It runs the real `RealmServer` on a listening port and a web port (the
real page, the real WebSocket, real members and events), plus a control
port on 127.0.0.1: each line written there is sent, as it is, to every
member of every realm, so a test shows any line at the moment it picks.

    python tests/feed_server.py

Each port is a free one; it prints `ready TCP_PORT WEB_PORT CONTROL_PORT`
once all three listen, and ends on SIGTERM.
"""

from __future__ import annotations

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


def main() -> None:
    server = RealmServer(Settings(event_wait=30), reactor)  # type: ignore[arg-type]
    listen = reactor.listenTCP  # type: ignore[attr-defined]
    ports = [listen(0, factory, interface="127.0.0.1").getHost().port
             for factory in (RealmFactory(server), web.site(server),
                             Factory.forProtocol(lambda: Feed(server)))]
    print("ready", *ports, flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
