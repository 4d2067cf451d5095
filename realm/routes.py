"""A site's routes, and what a route sees and answers (`realm.http` serves them).

A route is an exact path and a `Handler`: it takes a `Request` and
returns a `Response`, a `Switch` (the connection becomes another
protocol, as `/ws` becomes a WebSocket), or a `Deferred` of either (for
routes that read a database or counters).  A `Site` holds the route
table and the limits its connections are served with;
`realm.http.HTTPFactory` is the one that serves it.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory

from realm import wire
from realm.guard import AddressCount
from realm.quiet import Quiet

TEXT = "text/plain; charset=utf-8"
#: What every response carries, unless its factory is given others.
SECURE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", "default-src 'none'; base-uri 'none'; "
     "form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)


def origin_form(target: str) -> str:
    """A request's target as a path and query: the absolute form a client
    may send (`GET http://host/chronicle`, RFC 9112 3.2.2) loses its
    scheme and host, which `Host` names anyway."""
    scheme, _, rest = target.partition("://")
    if not rest or "/" in scheme or "?" in scheme:
        return target
    at = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[at:]
    return path if path.startswith("/") else "/" + path


@dataclass(frozen=True)
class Request:
    """One request, as a handler sees it (it has no body: none is taken)."""

    method: str
    target: str  # as sent: the path and the query
    path: str  # the target without its query, not decoded
    headers: tuple[tuple[bytes, bytes], ...]  # names in lower case, as h11 gives them
    address: str  # the client's
    secure: bool  # over TLS
    version: str = "1.1"  # HTTP's

    @classmethod
    def parse(cls, method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]],
              address: str, secure: bool, version: bytes = b"1.1") -> Request:
        """A request as the parser read it (ASCII; the target in origin form)."""
        text = origin_form(target.decode("ascii", "replace"))
        return cls(method=method.decode("ascii", "replace"), target=text,
                   path=text.split("?", 1)[0], headers=tuple(headers),
                   address=address, secure=secure, version=version.decode("ascii", "replace"))

    def header(self, name: str) -> str | None:
        """The value of header `name` (several are joined with `, `)."""
        key = name.lower().encode("ascii")
        values = [v.decode("latin-1") for k, v in self.headers if k == key]
        return ", ".join(values) if values else None

    @property
    def has_body(self) -> bool:
        length = (self.header("content-length") or "0").strip()
        return self.header("transfer-encoding") is not None or not (
            length.isdigit() and int(length) == 0)  # "00" is no body too


@dataclass(frozen=True)
class Response:
    """A handler's answer; the factory's headers, a `Content-Length` and a
    `Date` are added (a header named here replaces the factory's)."""

    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, text: str, *headers: tuple[str, str]) -> Response:
        return cls(status, text.encode("utf-8") + b"\n", TEXT, headers)

    def head(self, base: Iterable[tuple[str, str]], now: float,
             close: bool) -> list[tuple[str, str]]:
        """Its headers: `base` but those it names, then its own and the framing."""
        own = {name.lower() for name, _ in self.headers} | {"content-type"}
        headers = [h for h in base if h[0].lower() not in own]
        headers += [("Content-Type", self.content_type), *self.headers,
                    ("Content-Length", str(len(self.body))),
                    ("Date", email.utils.formatdate(now, usegmt=True))]
        if close:
            headers.append(("Connection", "close"))
        return headers


class Connection(Protocol):
    """What a protocol switched to gets of its connection."""

    address: str

    def write(self, data: bytes) -> None: ...
    def close(self) -> None:
        """Send what is queued, then close; abort if that takes too long."""
    def abort(self) -> None: ...


class Upgraded(Protocol):
    """What a connection is after a `Switch`: it is handed the bytes that
    arrive and its transport's producer signals."""

    def data_received(self, data: bytes) -> None: ...
    def pause(self) -> None:
        """The transport's buffer is full: the client is not reading."""
    def resume(self) -> None:
        """... and has drained again."""
    def connection_lost(self) -> None: ...


@dataclass(frozen=True)
class Switch:
    """Switch protocols: `head` (a `101` response, wire-ready) is sent,
    then `take_over(connection)` gives what the connection is from then on."""

    head: bytes
    take_over: Callable[[Connection], Upgraded]


Answer = Response | Switch
Handler = Callable[[Request], Answer | Deferred[Answer]]


class Counted(Protocol):
    """A connection as a `Counter` sees it (`realm.server.Connection`'s shape)."""

    address: str
    kind: str  # its transport, for the metrics

    def send(self, data: bytes) -> None:
        """A line for a line client (a server's goodbye)."""
    def close(self) -> None: ...


class Counter(Protocol):
    """Who counts connections (`realm.server.RealmServer`, per address)."""

    def connected(self, client: Counted) -> bytes | None:
        """Count `client`: a refusal (a line of text), or None to serve it."""

    def disconnected(self, client: Counted) -> None: ...


class PerAddress:
    """A `Counter` for a site of its own (`--metrics`): at most `limit`
    connections from one address (0: any number), so that one client
    cannot take every file the process may open."""

    def __init__(self, limit: int) -> None:
        self._count = AddressCount(limit)

    def connected(self, client: Counted) -> bytes | None:
        if self._count.admit(client.address):
            return None
        return wire.TOO_MANY_CONNECTIONS.notice(limit=self._count.limit)

    def disconnected(self, client: Counted) -> None:
        self._count.release(client.address)


class Site(Factory):
    """A route table, and the limits of the connections serving it.

    `timeout`: seconds for a request's headers, and for a client to start
    reading what it was sent (0: no limit); `max_queue`: bytes that may be
    queued for a client that reads nothing; `headers`: what every response
    carries; `counter`: who counts connections; `quiet`: how the lines
    that strangers can cause are kept to one a kind a minute (realm.quiet).
    """

    noisy = False  # no "Starting factory" line: realm logs what it serves, where

    def __init__(self, routes: Mapping[str, Handler], clock: IReactorTime,
                 counter: Counter | None = None, timeout: float = 60.0,
                 headers: Iterable[tuple[str, str]] = SECURE_HEADERS,
                 max_queue: int = 256 * 1024, quiet: Quiet | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        for path, handler in routes.items():
            self.add(path, handler)
        self.clock = clock
        self.counter = counter
        self.timeout = timeout
        self.headers = tuple(headers)
        self.max_queue = max_queue
        self.quiet = quiet or Quiet()
        self.channels: set[Any] = set()  # the open connections

    def add(self, path: str, handler: Handler) -> None:
        """Serve `handler` at exactly `path` (no prefix, no query)."""
        if not path.startswith("/") or "?" in path:
            raise ValueError(f"a route is a path: {path!r}")
        if path in self.routes:
            raise ValueError(f"{path} is routed already")
        self.routes[path] = handler
