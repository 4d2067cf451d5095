-- Version 1: the reigns, each with its events.
--
-- Migrations are applied in order of their number, each in the same
-- transaction as its row in schema_version (realm/chronicle_engines.py).
-- Each statement ends with `;` at the end of a line; `{name}` is replaced
-- by the engine's spelling of it ({id_primary_key}: SQLite's
-- `INTEGER PRIMARY KEY`, PostgreSQL's identity column).
-- Never edit a released migration: add the next one.
--
-- A reign's events are one JSON list in its row, [[event, decision,
-- {holding: value}], ...]: a reign is written with one INSERT (a busy
-- server records hundreds a second) and read whole, never queried by event.

CREATE TABLE reigns (
    id {id_primary_key},
    realm TEXT NOT NULL,
    members TEXT NOT NULL,                  -- JSON list of names
    outcome TEXT NOT NULL CHECK (outcome IN ('won', 'fallen', 'abandoned')),
    score INTEGER NOT NULL,
    told INTEGER NOT NULL,                  -- how many events it saw through
    events TEXT NOT NULL,                   -- JSON list, as above
    started DOUBLE PRECISION NOT NULL,      -- seconds since the epoch
    ended DOUBLE PRECISION NOT NULL
);

-- best(): by score, the latest recorded first among equals; latest(): the
-- latest recorded first, of one realm or of all (by id: the order they
-- were recorded in).
CREATE INDEX reigns_by_score ON reigns (score DESC, id DESC);
CREATE INDEX reigns_by_realm ON reigns (realm, id DESC);
