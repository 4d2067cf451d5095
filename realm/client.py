"""`realm-client`'s protocol, and what its two drivers share.

`RealmClient` speaks the wire protocol (docs/PROTOCOL.md): it sends
the name line on connect, answers a password request, learns its own name
as the server stored it from its `entered` line, and hands every line to
its `Driver`.  It keeps no game state.  Every line is made `visible`
first: a server's control characters (escape sequences, BEL) are shown as
`^[`, `^G`..., never executed by the player's terminal, in every mode.

`Player` is what both drivers share: leaving (`--leave`, then a grace
before the connection is cut), remembering the server's goodbye, and
turning the connection's end into an `Ending`.  The drivers:

- `realm.lord.LordDriver`, driven from the keyboard (`realm.console`
  draws it on a terminal or pipes);
- `realm.bots.BotDriver`, driven by a `realm.bot.Bot` brain, and
  `realm.bots.Band`, which runs `--count` of them.

The command line that runs them is `realm.cli`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from realm import wire
from realm.looks import visible

#: How long to wait for the server to close after `--leave`, in seconds.
LEAVE_GRACE = 5.0


def _shown_certificate(transport: object) -> Any:
    """The certificate a TLS `transport` was shown (cryptography's), or None."""
    get_handle = getattr(transport, "getHandle", None)
    chain = getattr(get_handle(), "get_peer_cert_chain", None) if get_handle else None
    try:
        certificates = chain(as_cryptography=True) if chain is not None else None
    except TypeError:  # a pyOpenSSL older than as_cryptography=
        return None
    return certificates[0] if certificates else None


def _names(transport: object) -> list[str] | None:
    """The hosts the certificate `transport` was shown names in its
    subjectAltName ([] when it has none), or None when none was shown."""
    from cryptography import x509

    leaf = _shown_certificate(transport)
    if leaf is None:
        return None
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName),
            *map(str, names.get_values_for_type(x509.IPAddress))]


def _hosts(transport: object) -> str:
    """The names the certificate `transport` was shown holds, for a line."""
    held = _names(transport)
    return f" (it holds {', '.join(held[:5])})" if held else ""


class NamesNoHost(Exception):
    """The server's certificate names no host: it has no subjectAltName,
    so no name can be checked against it (RFC 6125 leaves the common name
    behind).  Twisted logs that and lets such a certificate through
    unchecked when it is trusted; realm-client refuses it."""


def certificate_problem(transport: object) -> tuple[str, bool] | None:
    """Why the certificate a TLS `transport` was shown did not verify, as
    far as the certificate itself tells (OpenSSL says only "certificate
    verify failed"): (the problem, whether trusting it would help), or
    None when it shows none."""
    leaf = _shown_certificate(transport)
    if leaf is None:
        return None
    now = datetime.now(timezone.utc)
    if leaf.not_valid_after_utc < now:
        return f"it expired on {leaf.not_valid_after_utc:%Y-%m-%d}", False
    if leaf.not_valid_before_utc > now:
        return f"it is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}", False
    if leaf.issuer == leaf.subject:
        return "it is self-signed, and not among the certificates trusted", True
    return "its issuer is not among the certificates trusted", True


def checking(where: str) -> str:
    """`where`, with an `ssl:` endpoint made the `tls:` one that checks the
    server's certificate and name (Twisted's `ssl:` client checks nothing
    unless given `caCertsDir=`, and never the name): its `caCertsDir=`
    becomes `trustRoots=`, its `certKey=` `certificate=`."""
    head, _, rest = where.partition(":")
    if head.strip().lower() != "ssl" or not rest:
        return where
    renamed = {"caCertsDir": "trustRoots", "certKey": "certificate"}
    parts = re.split(r"(?<!\\):", rest)
    for i, part in enumerate(parts):
        key, equals, value = part.partition("=")
        if equals and key in renamed:
            parts[i] = f"{renamed[key]}={value}"
    return "tls:" + ":".join(parts)


def untrusted(reason: Failure, where: str = "", transport: object = None) -> str | None:
    """The line to tell when `reason` is a TLS certificate that failed to
    verify (on `transport`, whose certificate may say why), or None when
    the connection ended for another reason."""
    try:
        from OpenSSL.SSL import Error as TLSError
        from service_identity import VerificationError
    except ImportError:  # no TLS support installed: no TLS connection either
        return None
    head, _, rest = checking(where).partition(":")
    host = rest.split(":", 1)[0] or "that host"
    failed = reason.check(TLSError) and "certificate verify failed" in str(reason.value)
    if reason.check(NamesNoHost) or (failed and _names(transport) == []):
        return (f"the server's certificate is not trusted (it names no host: it has no "
                f"subjectAltName): the server needs a certificate that names {visible(host)}")
    if reason.check(VerificationError):
        return (f"the server's certificate is not trusted (it is not a certificate for "
                f"{visible(host)}): connect with a host name it holds"
                f"{visible(_hosts(transport))}")
    if not failed:
        return None
    problem, trusting_helps = (certificate_problem(transport)
                               or ("certificate verify failed", True))
    if not trusting_helps:
        advice = "the server needs a certificate that is valid now"
    elif "trustRoots=" in rest:
        advice = "the folder given as trustRoots= does not hold it or its issuer (PEM)"
    else:
        example = (f"--connect {where}:trustRoots=FOLDER" if head == "tls" and rest
                   else "--connect tls:HOST:PORT:trustRoots=FOLDER")
        advice = f"pass trustRoots=FOLDER, a folder holding its certificate (PEM), as in {example}"
    return f"the server's certificate is not trusted ({problem}): {advice}"


class Unreachable(Exception):
    """The server cannot be reached; the message says why, in one line."""


@dataclass(frozen=True)
class Ending:
    """How a player's game ended, in one line: well, or not (`failed`).

    `shown`: the reason is already on the player's screen (the server's
    own `*** Error: ` line), so it need not be told again.
    """

    why: str
    failed: bool = False
    shown: bool = False


class Driver(Protocol):
    """What drives a `RealmClient`: the Lord or a bot."""

    def connected(self, client: RealmClient) -> None:
        """The connection is up; the name line goes out next."""

    def heard(self, line: str) -> None:
        """A line from the server, made `visible`."""

    def joined(self, name: str) -> None:
        """The server announced our arrival, under `name` as it stored it."""

    def refused(self, line: str, key: str) -> str | None:
        """The server refused us (`key` is `wire.refusal(line)`): a name to
        try next, or None to hang up."""

    def secret(self) -> Deferred[str | None] | None:
        """The server asks for the Lord's password and none was given: one
        to be asked for (None when it is given up), or None at once."""

    def lost(self, reason: Failure) -> None:
        """The connection is gone."""


@implementer(IHandshakeListener)
class RealmClient(LineReceiver):
    """One connection to a realm.  Phases: `joining`, then `playing`."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, driver: Driver, name: str, realm: str | None = None,
                 password: str | None = None) -> None:
        self.driver = driver
        #: The name asked for; once joined, the name the server stored.
        self.name = name
        self.realm = realm
        self.password = password
        self.phase = "joining"

    def connectionMade(self) -> None:
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            try:
                no_delay(True)
            except OSError:
                pass  # not a TCP socket: nothing to tune
        self.driver.connected(self)
        self._send_name()

    def handshakeCompleted(self) -> None:
        """TLS: a certificate that names no host is refused (`NamesNoHost`),
        before the name line leaves."""
        if _names(self.transport) == []:
            self.transport.failVerification(Failure(NamesNoHost()))  # type: ignore[union-attr]

    def _send_name(self) -> None:
        self.send(f"{self.name}@{self.realm}" if self.realm else self.name)

    def send(self, text: str) -> None:
        """Send one line of text."""
        self.sendLine(text.encode("utf-8"))

    def lineReceived(self, data: bytes) -> None:
        line = visible(data.rstrip(b"\r").decode("utf-8", "replace"))
        if self.phase == "joining":
            self.line_joining(line)
        else:
            self.driver.heard(line)

    def line_joining(self, line: str) -> None:
        self.driver.heard(line)
        key = wire.refusal(line)
        stored = wire.entered(line)
        if key is not None:
            self.name_refused(line, key)
        elif wire.asks_password(line):
            self.password_asked()
        elif stored is not None and stored.lower() == self.name.lower():
            self.name = stored
            self.phase = "playing"
            self.driver.joined(stored)

    def name_refused(self, line: str, key: str) -> None:
        name = self.driver.refused(line, key)
        if name is None:
            self.hang_up()
        else:
            self.name = name
            self._send_name()

    def password_asked(self) -> None:
        if self.password is not None:
            self.send(self.password)
            return
        asked = self.driver.secret()
        if asked is None:
            self.hang_up()
        else:
            asked.addCallback(self._secret_given)

    def _secret_given(self, secret: str | None) -> None:
        if not self.connected or self.phase != "joining":
            return
        if secret is None:
            self.hang_up()
        else:
            self.send(secret)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.hang_up()

    def hang_up(self) -> None:
        """Close the connection once what is queued has gone out."""
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Close the connection now, whatever is queued."""
        if self.transport is not None:
            getattr(self.transport, "abortConnection", self.transport.loseConnection)()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.driver.lost(reason or Failure(ConnectionDone()))


#: The server's goodbyes that end a game well for a bot, and how to say so.
GOODBYES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (wire.lord_left, "the Lord has left"),
    (wire.dismissed_you, "dismissed"),
    (wire.shutting_down, "the server has closed"),
    (wire.realm_over, "the realm is over"),
)


class Player:
    """What the Lord and a bot share: the client, leaving, and the ending.

    `leave` sends `--leave` (once joined: a line before that would be a
    name) and cuts the connection after `LEAVE_GRACE` if the server has not
    closed it by then.  `done` fires with the `Ending` once the connection
    is gone; `ending_for` (a driver's hook) says what it was.
    """

    def __init__(self, clock: IReactorTime, where: str = "") -> None:
        self.clock = clock
        #: The endpoint connected to, for the advice in a TLS failure.
        self.where = where
        self.client: RealmClient | None = None
        self.name = ""
        self.is_joined = False
        self.leaving = False
        #: The server's goodbye (the last line tells), or why we left.
        self.ending = ""
        #: Why the game cannot go on, in one line; `failure_shown` when it
        #: is the server's own line, already on the player's screen.
        self.failure = ""
        self.failure_shown = False
        self.timers: list[IDelayedCall] = []
        self.done: Deferred[Ending] = Deferred()

    def connected(self, client: RealmClient) -> None:
        self.client = client
        self.name = client.name

    def joined(self, name: str) -> None:
        self.name = name
        self.is_joined = True
        if self.leaving:
            self.send(wire.LEAVE)

    def note(self, line: str) -> None:
        """Remember why the server may be about to close: the last line tells."""
        for says, why in GOODBYES:
            if says(line):
                self.ending = why
                return
        if not self.leaving:  # we left: that stays the reason
            self.ending = ""

    def fail(self, why: str, shown: bool = False) -> None:
        """The game cannot go on: say why when the connection is gone."""
        if not self.failure:
            self.failure, self.failure_shown = why, shown

    def send(self, text: str) -> None:
        if self.client is not None and self.client.connected:
            self.client.send(text)

    def leave(self, why: str) -> None:
        """Leave the realm (`--leave`) unless already on the way out."""
        if self.leaving or self.client is None:
            return
        self.leaving = True
        self.ending = self.ending or why
        if not self.client.connected:
            return
        if self.is_joined:
            self.send(wire.LEAVE)
        self.timers.append(self.clock.callLater(LEAVE_GRACE, self.client.abort))

    def later(self, delay: float, call: Callable[[], object]) -> None:
        """Call `call` after `delay` seconds, unless the connection goes first."""
        self.timers = [timer for timer in self.timers if timer.active()]
        self.timers.append(self.clock.callLater(delay, call))

    def lost(self, reason: Failure) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        self.timers = []
        tls = untrusted(reason, self.where, self.client and self.client.transport)
        if tls is not None:
            ending = Ending(tls, failed=True)
        elif self.failure:
            ending = Ending(self.failure, failed=True, shown=self.failure_shown)
        else:
            ending = self.ending_for(reason)
        self.done.callback(ending)

    def ending_for(self, reason: Failure) -> Ending:
        """How the game ended, the connection gone without a failure noted."""
        if self.is_joined and (self.leaving or self.ending):
            return Ending(self.ending or "left")
        if not self.is_joined:
            return Ending("the connection to the realm was lost before joining",
                          failed=True)
        return Ending("the connection to the realm was lost", failed=True)
