"""`--chronicle` URLs: `sqlite:PATH`, `postgresql://USER@HOST[:PORT]/DB`
(or `postgres://`, a password allowed), or `none`.

`parse_url` says in one line what is wrong with a bad one; `str()` of a
parsed one never shows its password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_URL = "sqlite:realm.sqlite"
_USAGE = "use sqlite:PATH, postgresql://USER@HOST[:PORT]/DB or none"


@dataclass(frozen=True)
class ChronicleURL:
    """A parsed `--chronicle` URL; `str()` is safe to show (no password)."""

    scheme: str  # "sqlite", "postgresql" or "none"
    target: str = ""  # SQLite: the file's path as given; PostgreSQL: the URL

    def __str__(self) -> str:
        if self.scheme == "sqlite":
            return f"sqlite:{self.target}"
        if self.scheme == "postgresql":
            return _redacted(self.target)
        return "none"

    def where(self) -> str:
        """What error messages name: the URL, a SQLite path made absolute."""
        if self.scheme == "sqlite":
            return f"sqlite:{os.path.abspath(self.target)}"
        return str(self)


def parse_url(url: str) -> ChronicleURL:
    """Parse a `--chronicle` URL; a bad one raises `ValueError` (one line)."""
    text = url.strip()
    if text.lower() == "none":
        return ChronicleURL("none")
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        raise ValueError(f"--chronicle: {text!r} is not a chronicle URL; {_USAGE}")
    if "\0" in text:
        raise ValueError("--chronicle: the URL holds a NUL character")
    if scheme.lower() == "sqlite":
        if not rest:
            raise ValueError("--chronicle: sqlite: needs a file's path, e.g. sqlite:realm.sqlite")
        if rest.startswith("//"):
            raise ValueError(f"--chronicle: {text!r}: sqlite:PATH takes a file's path, not "
                             "//HOST (e.g. sqlite:realm.sqlite or sqlite:/var/lib/realm.sqlite)")
        return ChronicleURL("sqlite", rest)
    if scheme.lower() in ("postgresql", "postgres"):
        return ChronicleURL("postgresql", _check_postgres("postgresql:" + rest))
    raise ValueError(f"--chronicle: unknown scheme {scheme!r}; {_USAGE}")


def _check_postgres(url: str) -> str:
    parts = urlsplit(url)
    shown = _redacted(url)
    form = "postgresql://USER@HOST[:PORT]/DB"
    if not parts.netloc:
        raise ValueError(f"--chronicle: {shown} names no server; use {form}")
    try:
        parts.port  # noqa: B018  (urlsplit checks the port when asked for it)
    except ValueError:
        raise ValueError(f"--chronicle: {shown} has a bad port; use {form}") from None
    if not parts.username:
        raise ValueError(f"--chronicle: {shown} names no user; use {form}")
    if not parts.hostname:
        raise ValueError(f"--chronicle: {shown} names no host; use {form}")
    database = parts.path[1:]
    if not database or "/" in database:
        raise ValueError(f"--chronicle: {shown} names no database; use {form}")
    return url


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}").geturl()
