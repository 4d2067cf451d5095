"""`twistd realm`: its options, and the service they make."""

from __future__ import annotations

import signal
from typing import Any

from twisted.application import service, strports
from twisted.cred import credentials, strcred
from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.python import usage

from realm import web
from realm.names import JoinError, check
from realm.protocol import RealmFactory
from realm.server import RealmServer, Settings

log = Logger()
DEFAULTS = Settings()


def _number(kind: type, low: float, what: str) -> Any:
    def convert(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise usage.UsageError(f"{what} must be a number, not {value!r}") from None
        if not number >= low:  # also refuses nan
            raise usage.UsageError(f"{what} must be at least {low:g}, not {value}")
        return number
    return convert


def _endpoint(option: str, description: str) -> str:
    """`description` if Twisted can parse it as a server endpoint, else a
    usage error (twistd's, no traceback)."""
    try:
        endpoints.serverFromString(reactor, description)
    except Exception as e:  # each endpoint parser fails its own way (ssl: OpenSSL)
        raise usage.UsageError(f"{option}: bad endpoint {description!r}: {e}") from None
    return description


class Options(usage.Options, strcred.AuthOptionMixin):
    synopsis = "[options]"
    longdesc = ("Serve realm, a multiplayer Game of Thrones chat game. "
                "Limits set to 0 are off.")
    supportedInterfaces = [credentials.IUsernamePassword]
    optParameters = [
        ["size", None, DEFAULTS.size, "A realm's capacity, the Lord included "
         "(at least 2).", _number(int, 2, "--size")],
        ["realm", None, DEFAULTS.default_realm, "The default realm's name."],
        ["event-wait", None, DEFAULTS.event_wait, "Seconds to wait for answers "
         "before the next event.", _number(float, 0.001, "--event-wait")],
        ["max-rate", None, DEFAULTS.max_rate, "Lines a second per connection "
         "(bursts of twice that).", _number(float, 0, "--max-rate")],
        ["max-per-address", None, DEFAULTS.max_per_address,
         "Connections from one address.", _number(int, 0, "--max-per-address")],
        ["max-realms", None, DEFAULTS.max_realms, "Realms in play at once.",
         _number(int, 0, "--max-realms")],
        ["login-timeout", None, DEFAULTS.login_timeout, "Seconds to send a "
         "name.", _number(float, 0, "--login-timeout")],
        ["idle-timeout", None, DEFAULTS.idle_timeout, "Seconds a member may "
         "stay silent.", _number(float, 0, "--idle-timeout")],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["web"] = []

    def opt_listen(self, description: str) -> None:
        """A server endpoint to listen on, e.g. tcp:2345 or ssl:2346:...
        (repeatable; default tcp:2345)."""
        self["listen"].append(_endpoint("--listen", description))

    def opt_web(self, description: str) -> None:
        """Also serve the web client (page at /, WebSocket at /ws) on this
        server endpoint, e.g. tcp:8080 (repeatable)."""
        self["web"].append(_endpoint("--web", description))

    def postOptions(self) -> None:
        try:
            check(self["realm"], "realm name")
        except JoinError as e:
            raise usage.UsageError(f"--realm: {e}") from None
        if not self["listen"]:
            self["listen"] = ["tcp:2345"]


def settings_from(config: Options) -> Settings:
    return Settings(
        size=config["size"], default_realm=config["realm"].lower(),
        event_wait=config["event-wait"], max_rate=config["max-rate"],
        max_per_address=config["max-per-address"],
        max_realms=config["max-realms"], login_timeout=config["login-timeout"],
        idle_timeout=config["idle-timeout"])


class Shutdown(service.Service):
    """On stop (SIGTERM), say goodbye to every session before exiting."""

    def __init__(self, server: RealmServer, reactor: object = None) -> None:
        self.server = server
        self.reactor = reactor

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.server.shutdown().addCallback(self._exit_zero)

    def _exit_zero(self, _: None) -> None:
        # Once its reactor stops, twistd kills itself again with the
        # SIGTERM that stopped it (exit status 143).  A shutdown that has
        # said goodbye to everyone is a normal end: let twistd exit 0.
        if getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
            self.reactor._exitSignal = None  # type: ignore[attr-defined]


def _listen(top: service.MultiService, descriptions: list[str],
            factory: IProtocolFactory, what: str) -> None:
    for description in descriptions:
        listener = strports.service(description, factory)
        listener._raiseSynchronously = True  # a port in use fails the start
        listener.setServiceParent(top)
        log.info("Serving {what} on {endpoint}", what=what, endpoint=description)


def makeService(config: Options) -> service.MultiService:
    checkers = config.get("credCheckers") or []
    server = RealmServer(settings_from(config), reactor,  # type: ignore[arg-type]
                         checker=checkers[0] if checkers else None)
    top = service.MultiService()
    Shutdown(server, reactor).setServiceParent(top)
    _listen(top, config["listen"], RealmFactory(server), "realm")
    if config["web"]:
        _listen(top, config["web"], web.site(server), "the web client")
    return top
