"""Name rules: who may join, as which name, in which realm.

Pure functions; a refusal is a `JoinError` whose `line` is the wire-ready
`*** Error: ` line that says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from realm import wire

LORD = wire.LORD
_NAME = re.compile(wire.NAME_RULE + r"\Z")
#: Digits read as letters, to see through `L0rd`.
_AS_LETTERS = str.maketrans("01345", "oleas", "_-26789")
#: Digits, `_` and `-` at a name's end.
_TRAILING = re.compile(r"[\d_-]+\Z")


class JoinError(wire.Refusal):
    """A join was refused; `line` is the `*** Error: ` line for the client."""


def refusal(join: Callable[[Any], None], member: Any) -> str:
    """"" if `join(member)` passes, else its refusal line, as text (to relay)."""
    try:
        join(member)
    except JoinError as e:
        return e.line.decode("utf-8")
    return ""


def normalise(name: str) -> str:
    """`ramsey` -> `Ramsey`, `LORD` -> `Lord`, `mcDonald` -> `Mcdonald`."""
    return name[:1].upper() + name[1:].lower()


def check(word: str, what: str) -> str:
    """Return `word` if it is a valid name, else raise `JoinError`."""
    if not word:
        raise JoinError(wire.NO_NAME.notice(what=what))
    if not _NAME.match(word):
        raise JoinError(wire.BAD_NAME.notice(word=word[:40], what=what))
    return word


def passes_for_lord(name: str) -> bool:
    """Whether a name other than `Lord` would read as the Lord (`Lord_`, `L0rd`).

    Such names are refused, so a chat line that starts `Lord...:` is the Lord's.
    """
    # What trails it is dropped first: `Lord1` reads as `Lord` with a
    # number, not as `Lordl`.
    return name != LORD and _TRAILING.sub("", name.lower()).translate(_AS_LETTERS) == "lord"


def parse_join(line: str, default_realm: str) -> tuple[str, str]:
    """Parse `NAME` or `NAME@REALM` into (stored name, realm key).

    The realm key is lower-case: realms are case-insensitive.
    """
    name, at, realm = line.strip().partition("@")
    name = normalise(check(name.strip(), "name"))
    if passes_for_lord(name):
        raise JoinError(wire.LOOKS_LIKE_LORD.notice(name=name))
    realm = check(realm.strip(), "realm name") if at else default_realm
    return name, realm.lower()
