"""Name rules: who may join, as which name, in which realm.

Pure functions; a refusal is a `JoinError` whose text is the reason.
"""

from __future__ import annotations

import re

LORD = "Lord"
MAX_NAME = 20
_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9_-]{{0,{MAX_NAME - 1}}}\Z")


class JoinError(Exception):
    """A join line was refused; `str(error)` tells the client why."""


def normalise(name: str) -> str:
    """`ramsey` -> `Ramsey`, `LORD` -> `Lord`, `mcDonald` -> `Mcdonald`."""
    return name[:1].upper() + name[1:].lower()


def check(word: str, what: str) -> str:
    """Return `word` if it is a valid name, else raise `JoinError`."""
    if not word:
        raise JoinError(f"Please give a {what} (a letter, then up to "
                        f"{MAX_NAME - 1} letters, digits, _ or -).")
    if not _NAME.match(word):
        raise JoinError(
            f"'{word[:40]}' is not a valid {what}: use 1-{MAX_NAME} ASCII "
            "characters, a letter first, then letters, digits, _ or -.")
    return word


def parse_join(line: str, default_realm: str) -> tuple[str, str]:
    """Parse `NAME` or `NAME@REALM` into (stored name, realm key).

    The realm key is lower-case: realms are case-insensitive.
    """
    name, at, realm = line.strip().partition("@")
    name = check(name.strip(), "name")
    realm = check(realm.strip(), "realm name") if at else default_realm
    return normalise(name), realm.lower()
