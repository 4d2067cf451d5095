"""What realm-client makes of a TLS server's certificate.

`checking` turns an `ssl:` endpoint into the `tls:` one that checks the
certificate and the host name (Twisted's `ssl:` client checks neither).
`RealmClient` refuses a certificate that names no host (`NamesNoHost`:
Twisted would let a trusted one through with no name checked), and
`untrusted` turns a failed check into the one line realm-client prints,
with what to do about it.  The certificate is read with `cryptography`,
which TLS support brings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from twisted.python.failure import Failure

from realm.looks import visible


def _shown_certificate(transport: object) -> Any:
    """The certificate a TLS `transport` was shown (cryptography's), or None."""
    get_handle = getattr(transport, "getHandle", None)
    chain = getattr(get_handle(), "get_peer_cert_chain", None) if get_handle else None
    try:
        certificates = chain(as_cryptography=True) if chain is not None else None
    except TypeError:  # a pyOpenSSL older than as_cryptography=
        return None
    return certificates[0] if certificates else None


def names_shown(transport: object) -> list[str] | None:
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
    held = names_shown(transport)
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
    now = datetime.now(UTC)
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
    if reason.check(NamesNoHost) or (failed and names_shown(transport) == []):
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
