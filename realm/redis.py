"""realm's link to Redis (or Valkey): one connection for commands and one
subscribed to this process's own channel, each kept up by Twisted's
`ClientService` and spoken through txredisapi's protocols (what Synapse
runs its workers on).

`RedisLink.up` says whether both connections are ready; when either is
lost the other is made again too.  While it is
not, every call fails at once with `Unreachable` (callers refuse what
needs Redis and go on with the rest); a call that gets no answer within
`timeout` seconds fails too, and the connection is cut and made again.
Reconnection is tried at least every 1.5 s, so realm is back within
seconds of Redis.  `on_up` runs when both connections are ready again
(the cluster then re-registers what Redis forgot), `on_down` when either
is lost, `on_message` for each message on the channel (bytes).
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import endpoints
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from realm._direct import direct_writer

log = Logger()

#: Every key realm keeps in Redis begins with it (realm.leases, realm.guesses).
PREFIX = "realm:"
#: A script's first lines: `now`, Redis's own clock, in ms.
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: `CLIENT REPLY SKIP` (Redis 3.2): no answer to the command after it.
_PUBLISH = b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n" \
    b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"

_URL = re.compile(r"redis://(?P<host>[^:/]+)(?::(?P<port>\d+))?(?:/(?P<db>\d+))?/?\Z")


class Unreachable(Exception):
    """Redis cannot be reached now."""


@dataclass(frozen=True)
class RedisURL:
    host: str
    port: int = 6379
    db: int = 0

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_url(url: str) -> RedisURL:
    """`redis://HOST[:PORT][/DB]`, or ValueError saying what is wrong."""
    found = _URL.match(url)
    if found is None:
        raise ValueError(f"--cluster: {url!r} is not redis://HOST[:PORT][/DB]")
    port = int(found.group("port") or 6379)
    if not 0 < port < 65536:
        raise ValueError(f"--cluster: bad port in {url!r}")
    return RedisURL(found.group("host"), port, int(found.group("db") or 0))


def _keep_alive(transport: Any) -> None:
    """TCP keepalive probes after 5 s of silence: a subscriber connection is
    silent most of the time, and a dead one would otherwise go unnoticed.
    And no Nagle: a line between two members crosses Redis twice, and must
    not wait for an acknowledgement each time."""
    transport.setTcpNoDelay(True)
    transport.setTcpKeepAlive(True)
    sock = transport.getHandle()
    for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):  # Linux; elsewhere the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class _Commands(txredisapi.RedisProtocol):
    link: RedisLink
    send: Callable[[bytes], None]  # bytes to Redis, after what is queued

    def prepare(self) -> Deferred[Any]:
        """Ready for commands (the database selected, and `CLIENT REPLY`
        known: `publish` needs it): tell the link."""
        _keep_alive(self.transport)
        # Straight to the socket while nothing is queued (as players' lines
        # go): a message then costs no epoll_ctl and no turn of its own.
        self.send = direct_writer(self.transport) or self.transport.write
        d: Deferred[Any] = self.select(self.link.url.db) if self.link.url.db else succeed(None)
        d.addCallback(lambda _: self.execute_command("CLIENT", "REPLY", "ON"))
        return d.addCallback(lambda _: self.link._ready(self))

    def connectionLost(self, why: Failure) -> None:
        self.link._lost(self)  # first: what the lost replies' errbacks do sees it
        super().connectionLost(why)


class _Channel(txredisapi.SubscriberProtocol):
    link: RedisLink

    def prepare(self) -> Deferred[Any]:
        """Subscribed to this process's channel: tell the link."""
        _keep_alive(self.transport)
        d: Deferred[Any] = self.subscribe(self.link.channel)
        return d.addCallback(lambda _: self.link._ready(self))

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.link.on_message(message)

    def connectionLost(self, why: Failure) -> None:
        self.link._lost(self)
        super().connectionLost(why)


class _Factory(Factory):
    noisy = False

    def __init__(self, link: RedisLink, kind: type) -> None:
        self.link = link
        self.kind = kind

    def buildProtocol(self, addr: object) -> Any:
        proto = self.kind(charset=None, replyTimeout=self.link.timeout, convertNumbers=False)
        proto.factory = self
        proto.link = self.link
        return proto


#: Seconds between two log lines about failed tries to reach Redis.
QUIET = 60.0


@implementer(IStreamClientEndpoint)
@dataclass
class _Tried:
    """The endpoint to Redis, each failed try told to `failed`."""

    endpoint: Any
    failed: Callable[[Failure], Failure]

    def connect(self, factory: Any) -> Deferred[Any]:
        return self.endpoint.connect(factory).addErrback(self.failed)  # type: ignore[no-any-return]


class RedisLink:
    """The two connections, and whether Redis can be reached now."""

    def __init__(self, reactor: Any, url: RedisURL, channel: str,
                 on_message: Callable[[bytes], None],
                 on_up: Callable[[], None], on_down: Callable[[], None],
                 timeout: float = 2.0) -> None:
        self.reactor = reactor
        self.url = url
        self.channel = channel
        self.on_message = on_message
        self.on_up = on_up
        self.on_down = on_down
        self.timeout = timeout
        self.up = False
        self._commands: _Commands | None = None
        self._subscribed: _Channel | None = None
        endpoint = _Tried(endpoints.TCP4ClientEndpoint(reactor, url.host, url.port,
                                                       timeout=timeout), self._try_failed)
        self._failed_at = -QUIET  # when a failed try was last logged
        self._failures = 0  # tries failed since then
        # At most 1.5 s between tries: joins work again within seconds of Redis.
        retry = backoffPolicy(initialDelay=0.2, factor=1.5, maxDelay=1.0,
                              jitter=lambda: random.random() / 2)
        self._services = [
            ClientService(endpoint, _Factory(self, _Commands), retry,
                          prepareConnection=self._prepare, clock=reactor),
            ClientService(endpoint, _Factory(self, _Channel), retry,
                          prepareConnection=self._prepare, clock=reactor),
        ]

    def start(self) -> None:
        for service in self._services:
            service.startService()

    def stop(self) -> Deferred[Any]:
        from twisted.internet.defer import gatherResults

        self.up = False
        return gatherResults([s.stopService() for s in self._services], consumeErrors=True)

    # -- the connections' lifecycle ------------------------------------------
    def _try_failed(self, failure: Failure) -> Failure:
        """A connection to Redis could not be made."""
        if not failure.check(CancelledError):  # stopping: not a failure to tell of
            self._tried("Cannot reach Redis at {url}: {why}", why=failure.getErrorMessage())
        return failure

    def _tried(self, say: str, **fields: object) -> None:
        """A try to reach Redis failed: log `say` (with `url`), then once a
        `QUIET` while the failures go on (a try every second or so), until
        Redis is reached again."""
        self._failures += 1
        now = self.reactor.seconds()
        if now - self._failed_at >= QUIET:
            log.warn(say + "; trying again every second or so ({n} {tries} failed since "
                     "the last such line)", url=str(self.url), n=self._failures,
                     tries="try" if self._failures == 1 else "tries", **fields)
            self._failed_at, self._failures = now, 0

    def _prepare(self, proto: Any) -> Deferred[Any]:
        # ClientService hands over a proxy of the protocol: the protocol's
        # own `prepare` registers the protocol itself, which is what
        # `connectionLost` later reports as lost.
        #
        # A connection that does not get ready (a Redis that stands still
        # answers no PING) is closed here and handed over as made: its loss
        # then brings the next try, as any lost connection's does.  Failing
        # would leave it open, and ClientService, waiting to retry, cannot
        # take the later news of its loss (automat's NoTransition).
        def not_ready(failure: Failure) -> None:
            if failure.check(txredisapi.ResponseError):  # an old Redis, a password, CLIENT renamed
                self._tried("Redis at {url} refused what realm asks of a new connection "
                            "({why}): realm needs Redis 3.2 or later, with SELECT and CLIENT "
                            "allowed, and no password", why=failure.getErrorMessage())
            else:
                self._tried("Redis at {url} did not answer a new connection ({why})",
                            why=failure.getErrorMessage())
            if proto.transport is not None:
                proto.transport.abortConnection()

        return proto.prepare().addErrback(not_ready)  # type: ignore[no-any-return]

    def _ready(self, proto: _Commands | _Channel) -> None:
        if isinstance(proto, _Channel):
            self._subscribed = proto
        else:
            self._commands = proto
        self._maybe_up()

    def _maybe_up(self) -> None:
        if not self.up and self._commands is not None and self._subscribed is not None:
            self.up = True
            self._failed_at, self._failures = -QUIET, 0  # the next outage is told at once
            log.info("Redis at {url} is reachable", url=str(self.url))
            self.on_up()

    def _lost(self, proto: Any) -> None:
        if proto is self._commands:
            self._commands = None
        elif proto is self._subscribed:
            self._subscribed = None
        else:
            return
        if self.up:
            self.up = False
            log.warn("Lost Redis at {url}; trying again", url=str(self.url))
            self.on_down()
        # Its twin is made again too: both come back together, and a
        # subscription that lived on beside a lost connection is no
        # subscription to trust (it may be half dead).
        for twin in (self._commands, self._subscribed):
            if twin is not None and twin.transport is not None:
                twin.transport.abortConnection()

    # -- commands --------------------------------------------------------------
    def call(self, command: str, *args: Any) -> Deferred[Any]:
        """Run one command; fails with `Unreachable` when Redis is not up."""
        return self._send(lambda proto: proto.execute_command(command, *args))

    def script(self, source: str, keys: list[str], args: list[Any]) -> Deferred[Any]:
        """Run a Lua script (by its hash once Redis knows it)."""
        return self._send(lambda proto: proto.eval(source, keys, args))

    def _send(self, command: Callable[[Any], Deferred[Any]]) -> Deferred[Any]:
        proto = self._commands
        if not self.up or proto is None:
            return fail(Unreachable(f"Redis at {self.url} cannot be reached"))
        try:
            sent = command(proto)
        except txredisapi.ConnectionError as e:  # txredisapi raises "Not connected"
            return fail(Unreachable(str(e)))
        return sent.addErrback(self._unreachable)

    def publish(self, channel: bytes, payload: bytes) -> None:
        """`PUBLISH`, with no answer (`CLIENT REPLY SKIP`); `Unreachable`
        when Redis is not up.

        An answer would wake this process once more for each message, only
        to be read and dropped: about a fifth of the cost of a line
        between two processes.  Commands on one connection run in order,
        so whatever is asked after this is answered after it is published.
        """
        proto = self._commands
        if not self.up or proto is None:
            raise Unreachable(f"Redis at {self.url} cannot be reached")
        proto.send(_PUBLISH % (len(channel), channel, len(payload), payload))

    @staticmethod
    def _unreachable(failure: Failure) -> Failure:
        if failure.check(txredisapi.ConnectionError):
            raise Unreachable(str(failure.value))
        return failure
