-- The event log: the single source of truth. Append-only, enforced below.
-- SQLite has one writer at a time, so positions commit in order and a tail needs no guard.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB    NOT NULL UNIQUE,
    stream_type    TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version > 0),
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    metadata       TEXT    NOT NULL CHECK (json_valid(metadata)),
    correlation_id BLOB,
    causation_id   BLOB,
    actor          TEXT,
    recorded_at    TEXT    NOT NULL,
    hash           BLOB    NOT NULL CHECK (length(hash) = 32),
    prev_hash      BLOB    CHECK (prev_hash IS NULL OR length(prev_hash) = 32),
    CONSTRAINT events_stream_version_key UNIQUE (stream_type, stream_id, version)
);

CREATE INDEX events_type_position_idx ON events (stream_type, position);
CREATE INDEX events_correlation_idx ON events (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;

-- Latest snapshot per stream. Derived data: may be deleted or replaced at any time.
-- A snapshot is written only together with a successful append, and appends to one
-- stream are serialized by its version, so the last write is always the newest.
CREATE TABLE snapshots (
    stream_type TEXT    NOT NULL,
    stream_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    snapshot_no INTEGER NOT NULL,
    payload     TEXT    NOT NULL,
    taken_at    TEXT    NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);
