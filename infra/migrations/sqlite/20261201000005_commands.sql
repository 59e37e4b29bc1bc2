-- Commands: every command that appended records its id with its events, in the same
-- transaction, so a repeated command id on a stream appends nothing and answers with the
-- first outcome (client retries, saga re-runs after a crash).
CREATE TABLE commands (
    stream_type    TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    command_id     BLOB    NOT NULL,
    first_version  INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    recorded_at    TEXT    NOT NULL,
    PRIMARY KEY (stream_type, stream_id, command_id)
);

-- Idempotency-Key of the HTTP API: the first response to a key, replayed byte for byte
-- to a retry with the same request, refused for a different request.
CREATE TABLE http_idempotency (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    status       INTEGER NOT NULL,
    headers      TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX http_idempotency_created_idx ON http_idempotency (created_at);

-- Shop settings the command layer looks up (tax rates, shipping methods, loyalty point
-- value): small JSON documents by name, changed by admins.
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL CHECK (json_valid(value)),
    updated_at TEXT NOT NULL
);
