"""A reign as a row of the chronicle's `reigns` table: the statements
`realm.chronicle` runs in its pool's threads, each inside the transaction
it was given.  Members and events are JSON (the schema:
realm/migrations/)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from realm.chronicle_engines import Cursor, Migration, SchemaError, migrate
from realm.records import EventRecord, ReignRecord

COLUMNS = "id, realm, members, outcome, score, events, started, ended"
#: Every column of `reigns` this module reads or writes.
USED = frozenset(COLUMNS.split(", ")) | {"told"}
BEST = "score DESC, id DESC"  # the orders a read may ask for
LATEST = "id DESC"


def prepare(cursor: Cursor, migrations: Sequence[Migration]) -> int:
    """Bring the schema up to date (`migrate`), and check its layout."""
    version = migrate(cursor, migrations, kept=check_layout)  # in the layout it says?
    check_layout(cursor)
    # A database that takes no reign would lose every one, unseen until one
    # ends (a read-only file, a role without INSERT): try one, and undo it.
    cursor.execute("SAVEPOINT probe")
    insert_reign(cursor, ReignRecord("", (), (), "abandoned", 0, 0.0, 0.0))
    cursor.execute("ROLLBACK TO SAVEPOINT probe")
    return version


def check_layout(cursor: Cursor) -> None:
    """Fail if `reigns` lacks a column this module uses.  Version 1's layout
    changed before its release (events in a table of their own): a file an
    early build made says version 1 and holds that layout."""
    found = cursor.engine.columns(cursor, "reigns")
    if not found:
        raise SchemaError("its reigns table is missing, or this role may not read it")
    missing = sorted(USED - found)
    if missing:
        named = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
        raise SchemaError(f"its reigns table lacks {named}: "
                          "an early development build of realm made it, in a layout this "
                          "release cannot read; move it aside (it is left as it is), and "
                          "realm starts a new one")


def insert_reigns(cursor: Cursor, reigns: list[ReignRecord]) -> list[int]:
    """Each reign as a row; their new ids, in order."""
    return [insert_reign(cursor, reign) for reign in reigns]


#: One encoder for every record (json.dumps makes one a call when given options).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def insert_reign(cursor: Cursor, reign: ReignRecord) -> int:
    events = [[e.event, e.decision, e.holdings] for e in reign.events]
    return cursor.insert(
        "INSERT INTO reigns (realm, members, outcome, score, told, events, started, ended)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (reign.realm, _ENCODE(list(reign.members)), reign.outcome, reign.score,
         len(events), _ENCODE(events), reign.started, reign.ended))


def select_reigns(cursor: Cursor, realm: str | None, order: str,
                  limit: int) -> list[ReignRecord]:
    """One query: the reigns, each with its events.  The best (`BEST`)
    leave out the abandoned: walked away from, not played to an end."""
    clauses, params = (["realm = ?"], [realm]) if realm is not None else ([], [])
    if order == BEST:
        clauses.append("outcome <> 'abandoned'")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cursor.execute(f"SELECT {COLUMNS} FROM reigns {where} ORDER BY {order} LIMIT ?",
                   [*params, limit])
    return [ReignRecord(realm=realm_, members=tuple(json.loads(members)),
                        events=tuple(EventRecord(event, decision, holdings)
                                     for event, decision, holdings in json.loads(events)),
                        outcome=outcome, score=score, started=float(started),
                        ended=float(ended), id=reign_id)
            for reign_id, realm_, members, outcome, score, events, started, ended
            in cursor.fetchall()]
