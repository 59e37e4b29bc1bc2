-- Process managers (infra/src/saga). One row per saga instance with its state and the
-- last event it handled; saves are optimistic on `version`, so an event handler and a
-- timer worker acting on one saga never overwrite each other.
-- Times are RFC 3339 text in UTC as sqlx writes them, which sorts in time order.

CREATE TABLE sagas (
    saga_type      TEXT    NOT NULL,
    saga_id        TEXT    NOT NULL,
    -- The process manager's state, JSON.
    state          TEXT    NOT NULL CHECK (json_valid(state)),
    status         TEXT    NOT NULL CHECK (status IN ('active', 'finished')),
    version        INTEGER NOT NULL CHECK (version >= 1),
    -- Global position and id of the last event folded into `state`; an event at or
    -- below the position is a redelivery.
    last_position  INTEGER NOT NULL DEFAULT 0,
    last_event_id  BLOB,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (saga_type, saga_id)
);

CREATE INDEX sagas_by_status_age ON sagas (saga_type, status, updated_at);

-- Durable deadlines. SQLite has one writer, so one timer worker runs; `claimed_until`
-- keeps the same contract as on PostgreSQL (a claim that runs out is claimable again).
CREATE TABLE saga_timers (
    saga_type      TEXT    NOT NULL,
    saga_id        TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    due_at         TEXT    NOT NULL,
    claimed_until  TEXT,
    PRIMARY KEY (saga_type, saga_id, name),
    FOREIGN KEY (saga_type, saga_id) REFERENCES sagas (saga_type, saga_id) ON DELETE CASCADE
);

CREATE INDEX saga_timers_due ON saga_timers (due_at);
