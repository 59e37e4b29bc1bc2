-- The consumer runtime's bookkeeping (infra/src/consumer). Every subscriber (projection,
-- saga, webhook fan-out) keeps its progress, its failures and its dead letters here, in
-- the same database as the log.

-- One row per subscriber: where it started and how far it has settled (the restart
-- point of the in-process feed).
CREATE TABLE consumers (
    name           text        PRIMARY KEY,
    ordered        boolean     NOT NULL,
    start_position bigint      NOT NULL CHECK (start_position >= 0),
    position       bigint      NOT NULL CHECK (position >= 0),
    updated_at     timestamptz NOT NULL
);

-- Ordered subscribers: the newest settled (handled, skipped or discarded) event of each
-- stream. An event is handled only when it is the next one of its stream.
CREATE TABLE consumer_streams (
    consumer    text        NOT NULL,
    stream_type text        NOT NULL,
    stream_id   text        NOT NULL,
    version     bigint      NOT NULL,
    position    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (consumer, stream_type, stream_id)
);

-- Unordered subscribers: the events already handled (idempotency by event id).
CREATE TABLE consumer_inbox (
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    position   bigint      NOT NULL,
    handled_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX consumer_inbox_position_idx ON consumer_inbox (consumer, position);

-- Failed attempts of events still being retried.
CREATE TABLE consumer_failures (
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    failures   integer     NOT NULL,
    last_error text        NOT NULL,
    updated_at timestamptz NOT NULL,
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
    id             bigserial   PRIMARY KEY,
    consumer       text        NOT NULL,
    status         text        NOT NULL CHECK (status IN
                       ('dead', 'retry', 'retrying', 'parked', 'resolved', 'discarded')),
    event_id       uuid        NOT NULL,
    position       bigint      NOT NULL,
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    event_type     text        NOT NULL,
    envelope       text        NOT NULL,
    attempts       integer     NOT NULL,
    error          text,
    not_before     timestamptz,
    claimed_at     timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE (consumer, event_id)
);
CREATE INDEX dead_letters_stream_idx ON dead_letters (consumer, stream_type, stream_id, position);
CREATE INDEX dead_letters_status_idx ON dead_letters (consumer, status, position);
