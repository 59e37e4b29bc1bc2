-- The consumer runtime's bookkeeping (infra/src/consumer). Every subscriber (projection,
-- saga, webhook fan-out) keeps its progress, its failures and its dead letters here, in
-- the same database as the log.

-- One row per subscriber: where it started and how far it has settled (the restart
-- point of the in-process feed).
CREATE TABLE consumers (
    name           TEXT        PRIMARY KEY,
    ordered        INTEGER     NOT NULL,
    start_position INTEGER     NOT NULL CHECK (start_position >= 0),
    position       INTEGER     NOT NULL CHECK (position >= 0),
    updated_at     TEXT        NOT NULL
);

-- Ordered subscribers: the newest settled (handled, skipped or discarded) event of each
-- stream. An event is handled only when it is the next one of its stream.
CREATE TABLE consumer_streams (
    consumer    TEXT        NOT NULL,
    stream_type TEXT        NOT NULL,
    stream_id   TEXT        NOT NULL,
    version     INTEGER     NOT NULL,
    position    INTEGER     NOT NULL,
    updated_at  TEXT        NOT NULL,
    PRIMARY KEY (consumer, stream_type, stream_id)
);

-- Unordered subscribers: the events already handled (idempotency by event id).
CREATE TABLE consumer_inbox (
    consumer   TEXT        NOT NULL,
    event_id   BLOB        NOT NULL,
    position   INTEGER     NOT NULL,
    handled_at TEXT        NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX consumer_inbox_position_idx ON consumer_inbox (consumer, position);

-- Failed attempts of events still being retried.
CREATE TABLE consumer_failures (
    consumer   TEXT        NOT NULL,
    event_id   BLOB        NOT NULL,
    failures   INTEGER     NOT NULL,
    last_error TEXT        NOT NULL,
    updated_at TEXT        NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Dead letters and the events parked behind them.
--   dead      failed too often (or permanently); waits for `commerce dlq retry|discard`
--   retry     an operator asked for another attempt; a runtime will claim it
--   retrying  claimed by a runtime (claimed_at) for that attempt
--   parked    a later event of a stream with an open dead letter, held back to keep
--             the stream's order; released when the stream is clear
--   resolved  handled after all (by a retry or a release)
--   discarded dropped by an operator; the stream moves on without it
CREATE TABLE dead_letters (
    id             INTEGER     PRIMARY KEY AUTOINCREMENT,
    consumer       TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN
                       ('dead', 'retry', 'retrying', 'parked', 'resolved', 'discarded')),
    event_id       BLOB        NOT NULL,
    position       INTEGER     NOT NULL,
    stream_type    TEXT        NOT NULL,
    stream_id      TEXT        NOT NULL,
    version        INTEGER     NOT NULL,
    event_type     TEXT        NOT NULL,
    envelope       TEXT        NOT NULL,
    attempts       INTEGER     NOT NULL,
    error          TEXT,
    not_before     TEXT,
    claimed_at     TEXT,
    created_at     TEXT        NOT NULL,
    updated_at     TEXT        NOT NULL,
    UNIQUE (consumer, event_id)
);
CREATE INDEX dead_letters_stream_idx ON dead_letters (consumer, stream_type, stream_id, position);
CREATE INDEX dead_letters_status_idx ON dead_letters (consumer, status, position);
