"""`twistd realm`: its options, and the service they make."""

from __future__ import annotations

import math
import os
import re
import sys
from importlib import metadata
from typing import Any

from twisted.application import service
from twisted.cred import credentials, strcred
from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from realm import annals, logs, web
from realm._direct import plain_dispatch
from realm.admin import AdminFactory, Drain
from realm.chronicle import DEFAULT_URL, WRITE_WAIT, ChronicleError, open_now
from realm.chronicle import parse_url as parse_chronicle
from realm.cluster import Cluster
from realm.guesses import SharedGuesses
from realm.http import HTTPFactory
from realm.metrics import Metrics
from realm.names import JoinError, check
from realm.process import (
    Listener,
    Signals,
    StartupFailure,
    collect_less_often,
    raise_open_files_limit,
)
from realm.protocol import RealmFactory
from realm.proxied import listening
from realm.redis import parse_url
from realm.routes import PerAddress
from realm.server import RealmServer, Settings
from twisted import __version__ as twisted_version

log = Logger()

DEFAULTS = Settings()


def version() -> str:
    try:
        return metadata.version("realm")
    except metadata.PackageNotFoundError:
        return "unknown"


def _number(kind: type, low: float, what: str) -> Any:
    def convert(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise usage.UsageError(f"{what} must be a number, not {value!r}") from None
        if not number >= low:  # also refuses nan
            raise usage.UsageError(f"{what} must be at least {low:g}, not {value}")
        if not math.isfinite(number):  # inf: off is 0
            raise usage.UsageError(f"{what} must be a finite number, not {value}")
        return number
    return convert


def _encrypted_key(description: str) -> str | None:
    """The file of an `ssl:` endpoint's private key when it is encrypted
    (a PEM that says so), else None (and for anything it cannot read:
    the endpoint's own parser says what is wrong with it)."""
    fields = dict(part.partition("=")[::2] for part in re.split(r"(?<!\\):", description)
                  if "=" in part)
    path = fields.get("privateKey") or fields.get("certKey")
    if not description.lower().startswith("ssl:") or not path:
        return None
    try:
        with open(path.replace("\\:", ":"), "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    return path if b"ENCRYPTED" in head else None


def _endpoint(option: str, description: str) -> str:
    """`description` if Twisted can parse it as a server endpoint.

    A description Twisted cannot parse is a usage error (twistd's, no
    traceback); a key or certificate that cannot be read is a start-up
    failure: one line saying what and where.
    """
    encrypted = _encrypted_key(description)
    if encrypted is not None:  # OpenSSL would ask for its pass phrase at the terminal
        raise StartupFailure(f"{option} {description}: the private key in {encrypted} is "
                             "encrypted, and a server cannot type its pass phrase: give it "
                             f"the key decrypted (openssl pkey -in {encrypted} -out KEY)")
    try:
        endpoints.serverFromString(reactor, description)
    except OSError as e:  # ssl: a key or certificate file
        raise StartupFailure(f"{option} {description}: cannot read "
                             f"{e.filename or 'a file'}: {e.strerror or e}") from None
    except Exception as e:  # each endpoint parser fails its own way
        if type(e).__module__.startswith("OpenSSL"):
            raise StartupFailure(f"{option} {description}: the key or certificate "
                                 f"is not usable ({e}): each must be a PEM file (BEGIN "
                                 "PRIVATE KEY, BEGIN CERTIFICATE), the key the "
                                 "certificate's own") from None
        raise usage.UsageError(f"{option}: bad endpoint {description!r}: {e}") from None
    return description


def _private(description: str) -> str:
    """The console's endpoint, kept to its operator: the console asks no
    password.  A UNIX socket is made mode 600 unless `mode=` says
    otherwise; a TCP port listens on the loopback interface unless
    `interface=` names another (`tcp:PORT` alone would take every one)."""
    kind, _, rest = (listening(description) or description).partition(":")
    kind, args = kind.lower(), rest.split(":")  # Twisted reads `TCP:` as `tcp:`
    named = dict(arg.partition("=")[::2] for arg in args if "=" in arg)
    if kind == "unix" and "mode" not in named:
        return description + ":mode=600"
    given = named.get("interface") or (  # `tcp:PORT:INTERFACE` names it too
        kind in ("tcp", "tcp6") and len([arg for arg in args if "=" not in arg]) > 1)
    if kind in ("tcp", "tcp6", "ssl", "tls") and not given:
        return description + (r":interface=\:\:1" if kind == "tcp6" else ":interface=127.0.0.1")
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
        ["max-realms-per-address", None, DEFAULTS.max_realms_per_address,
         "Realms in play started from one address.",
         _number(int, 0, "--max-realms-per-address")],
        ["login-timeout", None, DEFAULTS.login_timeout, "Seconds from connecting to "
         "joining (the password included).", _number(float, 0, "--login-timeout")],
        ["idle-timeout", None, DEFAULTS.idle_timeout, "Seconds a member may "
         "stay silent.", _number(float, 0, "--idle-timeout")],
        ["log-format", None, "text", "The log's lines: text, or json (one JSON "
         "object a line)."],
        ["reign-length", None, DEFAULTS.reign_length, "Events in a reign the Lord "
         "wins.", _number(int, 1, "--reign-length")],
        ["chronicle", None, DEFAULT_URL, "Where ended reigns are kept: sqlite:PATH, "
         "postgresql://USER@HOST[:PORT]/DB, or none."],
        ["drain-timeout", None, 0.0, "After `drain`, end what is left after this many "
         "seconds (0: wait for the last member).", _number(float, 0, "--drain-timeout")],
        ["cluster", None, None, "Share realms with every process started with "
         "this Redis URL: redis://HOST[:PORT][/DB] (port 6379 if none)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["web"] = []
        self["admin"] = []
        self["metrics"] = []

    def opt_listen(self, description: str) -> None:
        """A server endpoint to listen on (repeatable; default tcp:2345)."""
        self["listen"].append(_endpoint("--listen", description))

    def opt_web(self, description: str) -> None:
        """Also serve the web client on this endpoint, e.g. tcp:8080."""
        self["web"].append(_endpoint("--web", description))

    def opt_admin(self, description: str) -> None:
        """The operator's console on this endpoint, e.g. unix:admin.sock (mode 600)."""
        self["admin"].append(_endpoint("--admin", _private(description)))

    def opt_metrics(self, description: str) -> None:
        """Prometheus metrics, /livez and /readyz over HTTP on this endpoint."""
        self["metrics"].append(_endpoint("--metrics", description))

    def opt_auth(self, description: str) -> None:
        """Who may be Lord: memory:lord:SECRET or file:PATH (see --help-auth)."""
        if description.startswith("file:"):
            path = description[len("file:"):]
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise StartupFailure(f"--auth {description}: cannot read the "
                                     f"password file: {e.strerror or e}") from None
        super().opt_auth(description)

    def opt_version(self) -> None:
        """Print realm's version and exit."""
        sys.stdout.write(f"realm {version()} (Twisted {twisted_version})\n")
        sys.exit(0)

    def postOptions(self) -> None:
        try:
            check(self["realm"], "realm name")
        except JoinError as e:
            raise usage.UsageError(f"--realm: {e}") from None
        try:
            self["chronicle"] = parse_chronicle(self["chronicle"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if self["cluster"] is not None:
            try:
                self["cluster"] = parse_url(self["cluster"])
            except ValueError as e:
                raise usage.UsageError(str(e)) from None
        if self["log-format"] not in logs.FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(logs.FORMATS)}")
        if not self["listen"]:
            self["listen"] = ["tcp:2345"]


def settings_from(config: Options) -> Settings:
    return Settings(
        size=config["size"], default_realm=config["realm"].lower(),
        event_wait=config["event-wait"], max_rate=config["max-rate"],
        max_per_address=config["max-per-address"],
        max_realms=config["max-realms"],
        max_realms_per_address=config["max-realms-per-address"],
        login_timeout=config["login-timeout"], idle_timeout=config["idle-timeout"],
        reign_length=config["reign-length"])


class Clustered(service.Service):
    """Run this process's part in a cluster while the service runs."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def startService(self) -> None:
        super().startService()
        self.cluster.start()


class Measured(service.Service):
    """The metrics' reactor-lag probe, while the service runs."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def startService(self) -> None:
        super().startService()
        self.metrics.start()

    def stopService(self) -> None:
        super().stopService()
        self.metrics.stop()


class Shutdown(service.Service):
    """On stop (SIGTERM), say goodbye to every session before exiting."""

    def __init__(self, server: RealmServer) -> None:
        self.server = server
        self.finished: Deferred[None] | None = None

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.finished = self.server.shutdown().addCallback(lambda _: self._close_chronicle())
        return self.finished

    def _close_chronicle(self) -> Deferred[None]:
        """The last reigns written, or given up on after `WRITE_WAIT` s."""
        chronicle = self.server.chronicle
        closing = chronicle.close()
        if not closing.called:
            log.info("Waiting for the chronicle {where} to write the last reigns (at most "
                     "{s:g} s)", where=chronicle.where, s=WRITE_WAIT)

        def hung(failure: Failure) -> None:
            failure.trap(ChronicleError)
            log.warn("Stopping without the chronicle: {why}", why=failure.getErrorMessage())
        # What its last writes had the quiet log hold, said before the exit.
        return closing.addErrback(hung).addBoth(self._said)

    def _said(self, result: object) -> object:
        self.server.stats.quiet.stop()
        return result

    def done(self) -> Deferred[None]:
        """Fires once the shutdown is over (the metrics say so until then)."""
        finished: Deferred[None] = Deferred()
        if self.finished is None:
            finished.callback(None)
            return finished

        def over(result: object) -> object:
            finished.callback(None)
            return result

        self.finished.addBoth(over)
        return finished


def makeService(config: Options) -> service.MultiService:
    StartupFailure.keep_stderr()  # a daemon's ports open once its stderr is gone
    checkers = config.get("credCheckers") or []
    try:
        chronicle = open_now(config["chronicle"], reactor)
    except ChronicleError as e:
        raise StartupFailure(str(e)) from None
    log.info("realm {version}; {kept}", version=version(),
             kept=f"reigns are kept in {chronicle.where}" if chronicle.keeps
             else "reigns are not kept (--chronicle none)")
    server = RealmServer(settings_from(config), reactor,  # type: ignore[arg-type]
                         checker=checkers[0] if checkers else None, chronicle=chronicle)
    top = logs.RealmService(getattr(config, "parent", None), config["log-format"])
    if os.name == "posix":
        raise_open_files_limit()
    collect_less_often()
    plain_dispatch(reactor)
    Signals(reactor, top.reopen_log).setServiceParent(top)
    shutdown = Shutdown(server)
    if config["metrics"]:  # first: it stops last, once the shutdown is over
        metrics = Metrics(server, reactor)
        Measured(metrics).setServiceParent(top)
        scraped = HTTPFactory(metrics.routes(), clock=reactor,  # type: ignore[arg-type]
                              counter=PerAddress(config["max-per-address"]),
                              quiet=server.stats.quiet,
                              timeout=config["login-timeout"])
        for description in config["metrics"]:
            Listener(reactor, description, scraped, "metrics",
                     linger=shutdown.done).setServiceParent(top)
    if config["cluster"] is not None:
        server.cluster = cluster = Cluster(server, reactor, config["cluster"])
        server.guesses = SharedGuesses(reactor, cluster.redis)
        Clustered(cluster).setServiceParent(top)
    shutdown.setServiceParent(top)
    factory = RealmFactory(server)
    for description in config["listen"]:
        Listener(reactor, description, factory, "realm").setServiceParent(top)
    if config["web"]:
        site = web.site(server, annals.routes(chronicle, server.stats.quiet, reactor))
        for description in config["web"]:
            Listener(reactor, description, site, "the web client").setServiceParent(top)
    admin = AdminFactory(server, Drain(server, reactor, config["drain-timeout"]))
    for description in config["admin"]:
        Listener(reactor, description, admin, "the operator's console").setServiceParent(top)
    return top
