-- Version 1: the reigns and their events.
--
-- Migrations are applied in order of their number, each in the same
-- transaction as its row in schema_version (realm/chronicle_engines.py).
-- Each statement ends with `;` at the end of a line; `{name}` is replaced
-- by the engine's spelling of it ({id_primary_key}: SQLite's
-- `INTEGER PRIMARY KEY`, PostgreSQL's identity column).
-- Never edit a released migration: add the next one.

CREATE TABLE reigns (
    id {id_primary_key},
    realm TEXT NOT NULL,
    members TEXT NOT NULL,                  -- JSON list of names
    outcome TEXT NOT NULL CHECK (outcome IN ('won', 'fallen', 'abandoned')),
    score INTEGER NOT NULL,
    started DOUBLE PRECISION NOT NULL,      -- seconds since the epoch
    ended DOUBLE PRECISION NOT NULL
);

CREATE TABLE events (
    reign_id BIGINT NOT NULL REFERENCES reigns (id),
    seq INTEGER NOT NULL,                   -- 0, 1, ... as they were told
    event TEXT NOT NULL,
    decision TEXT NOT NULL,
    holdings TEXT NOT NULL,                 -- JSON object: name -> value
    PRIMARY KEY (reign_id, seq)
);

-- best(): by score, newest first among equals; latest(): newest first,
-- of one realm or of all.
CREATE INDEX reigns_by_score ON reigns (score DESC, ended DESC, id DESC);
CREATE INDEX reigns_by_realm ON reigns (realm, ended DESC, id DESC);
CREATE INDEX reigns_by_ended ON reigns (ended DESC, id DESC);
