"""The game's site: its page at `/`, the page's files, and `/ws`.

`site(server)` is the protocol factory `--web` listens with: a
`realm.http.HTTPFactory` whose routes are the files of `realm/static/`
(package data, read once) and `/ws`, the WebSocket (`realm.websocket`),
counted per address by the realm server and given its
`--login-timeout` for a request's headers.  Every response carries the
page's Content-Security-Policy, which allows nothing from any other
origin and no inline script or style.

`/ws` switches to the WebSocket after two checks:
- `Origin`: a handshake whose `Origin` is not the page's own (the `Host`
  it was asked for) is refused with 403; one without `Origin` is not from
  a browser and is accepted (any program can open a socket anyway).  Its
  scheme may be `http` or `https` whatever this server speaks: behind a
  proxy that ends TLS, the page's own origin is `https://` while realm
  hears plain HTTP.
- the handshake itself (wsproto's checks: GET, `Upgrade: websocket`,
  `Sec-WebSocket-Key`, version 13, and ours: the key 16 bytes of base64,
  headers that can be read): refused with its status, 400 (or 426, with
  `Sec-WebSocket-Version: 13`, for another version).

Why `Origin` is compared with `Host`, and what DNS rebinding can do.  A
page on `evil.example` whose name is rebound to this server's address
makes the browser send `Host: evil.example` and `Origin:
http://evil.example`: they agree, and the check passes.  That is
accepted, on purpose: the check stops a foreign page from opening a
WebSocket *as the visitor's browser*, and here that browser holds nothing
to steal -- the page keeps no secret, no cookie, no credential (the
Lord's password is typed, never stored), and the server trusts a
WebSocket no more than a TCP line client.  A rebinding page can only do
what any visitor can: join realms and chat, counted against its
visitor's address (`--max-per-address`, `--max-rate`).  What it cannot
do is read anything of another origin's, or act with credentials the
visitor holds elsewhere.  Pinning the names a server answers for would
need a configured list of host names; the project chose not to need one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from importlib import resources
from urllib.parse import urlsplit

import h11
from twisted.logger import Logger
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from realm.http import HTTPFactory
from realm.routes import SECURE_HEADERS, Connection, Handler, Request, Response, Switch
from realm.server import RealmServer
from realm.websocket import WebSocketLink

log = Logger()

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self'; connect-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
#: Every response of the site: the page's policy, and the rest of http's.
HEADERS = (("Content-Security-Policy", CSP),
           *(h for h in SECURE_HEADERS if h[0] != "Content-Security-Policy"))
STATIC = {  # path -> (file in realm/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    # Asked for by browsers on their own (for /chronicle.json, a bookmark).
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
}


def static_routes() -> dict[str, Handler]:
    """A route per file of `realm/static`, each read once, now."""
    folder = resources.files("realm").joinpath("static")
    routes: dict[str, Handler] = {}
    for path, (name, content_type) in STATIC.items():
        routes[path] = _File(Response(200, folder.joinpath(name).read_bytes(), content_type))
    return routes


class _File:
    """A file's route: always the same response."""

    def __init__(self, response: Response) -> None:
        self.response = response

    def __call__(self, request: Request) -> Response:
        return self.response


def same_origin(request: Request) -> bool:
    """True without an `Origin` (not a browser) or when it names `Host`."""
    origin = request.header("origin")
    if origin is None:
        return True
    host = request.header("host")
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (host is not None and parts.scheme in ("http", "https")
            and parts.netloc.lower() == host.strip().lower())


def _unfit(request: Request) -> Response | None:
    """What wsproto lets by or words badly: HTTP/1.0, another version (its
    answer says the header is missing), a key that is not 16 bytes (RFC
    6455 4.2.1)."""
    if request.version == "1.0":
        return Response.text(400, "Bad WebSocket handshake: it takes HTTP/1.1.")
    version = request.header("sec-websocket-version")
    if version is not None and version.strip() != "13":
        return Response.text(426, f"Bad WebSocket handshake: version {version.strip()!r} "
                             "is not spoken here; this server speaks 13.",
                             ("Sec-WebSocket-Version", "13"))
    key = request.header("sec-websocket-key")
    try:
        sixteen = key is None or len(base64.b64decode(key.strip(), validate=True)) == 16
    except ValueError:  # binascii.Error
        sixteen = False
    if not sixteen:
        return Response.text(400, "Bad WebSocket handshake: Sec-WebSocket-Key must be "
                             "16 bytes in base64.")
    return None


class WebSocketRoute:
    """`/ws`: the handshake's checks, then a `WebSocketLink` for a session."""

    def __init__(self, server: RealmServer) -> None:
        self.server = server

    def __call__(self, request: Request) -> Response | Switch:
        if not same_origin(request):
            self._tell("ws_origin", "Refused a WebSocket from {address}: Origin {origin!r} "
                       "is not this page's", request, origin=request.header("origin"))
            return Response.text(403, "Forbidden: this WebSocket serves pages of its "
                                 "own origin.")
        refused = _unfit(request)
        if refused is not None:
            return refused
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            if request.method != "GET":
                raise RemoteProtocolError("a WebSocket handshake is a GET",
                                          RejectConnection())
            handshake.initiate_upgrade_connection(list(request.headers), request.target)
            list(handshake.events())  # the handshake's Request: nothing in it we use
            head = handshake.send(AcceptConnection(
                extra_headers=[(k.encode(), v.encode()) for k, v in HEADERS]))
        except RemoteProtocolError as e:
            hint = e.event_hint
            status = hint.status_code if isinstance(hint, RejectConnection) else 400
            extra = (tuple((k.decode(), v.decode()) for k, v in hint.headers)
                     if isinstance(hint, RejectConnection) else ())
            return Response.text(status, f"Bad WebSocket handshake: {e}", *extra)
        except (LocalProtocolError, h11.LocalProtocolError) as e:  # e.g. no Host
            return Response.text(400, f"Bad WebSocket handshake: {e}")
        except UnicodeError:  # wsproto decodes a header: not ASCII, or a Host not IDNA
            self._tell("ws_header", "Refused a WebSocket from {address}: a header it "
                       "cannot read", request)
            return Response.text(400, "Bad WebSocket handshake: a header cannot be read "
                                 "(not ASCII text, or a Host that is no host name).")
        connection = handshake.connection
        assert connection is not None

        def take_over(channel: Connection) -> WebSocketLink:
            return WebSocketLink(self.server, channel, connection)

        return Switch(head, take_over)

    def _tell(self, kind: str, format: str, request: Request, **fields: object) -> None:
        """Log a refusal: one line of a `kind` a minute (realm.quiet)."""
        self.server.stats.quiet.log(self.server.clock, kind, log.info, format,
                                    address=request.address, **fields)


def site(server: RealmServer, routes: Mapping[str, Handler] | None = None) -> HTTPFactory:
    """The web client's site: the page, its files and `/ws`, and `routes`."""
    s = server.settings
    web = HTTPFactory({**static_routes(), "/ws": WebSocketRoute(server)},
                      clock=server.clock, counter=server, timeout=s.login_timeout,
                      headers=HEADERS, max_queue=s.max_queue, quiet=server.stats.quiet)
    for path, handler in (routes or {}).items():
        web.add(path, handler)
    return web
