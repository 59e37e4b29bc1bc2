-- Process managers (infra/src/saga). One row per saga instance with its state and the
-- last event it handled; saves are optimistic on `version`, so an event handler and a
-- timer worker acting on one saga never overwrite each other.

CREATE TABLE sagas (
    saga_type      text        NOT NULL,
    saga_id        text        NOT NULL,
    -- The process manager's state, JSON.
    state          text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('active', 'finished')),
    version        bigint      NOT NULL CHECK (version >= 1),
    -- Global position and id of the last event folded into `state`; an event at or
    -- below the position is a redelivery.
    last_position  bigint      NOT NULL DEFAULT 0,
    last_event_id  uuid,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (saga_type, saga_id)
);

CREATE INDEX sagas_by_status_age ON sagas (saga_type, status, updated_at);

-- Durable deadlines. Workers claim due timers with FOR UPDATE SKIP LOCKED, setting
-- `claimed_until`; a claim that runs out (the worker died) is claimable again, so a
-- timer fires at least once and the saga handles it idempotently.
CREATE TABLE saga_timers (
    saga_type      text        NOT NULL,
    saga_id        text        NOT NULL,
    name           text        NOT NULL,
    due_at         timestamptz NOT NULL,
    claimed_until  timestamptz,
    PRIMARY KEY (saga_type, saga_id, name),
    FOREIGN KEY (saga_type, saga_id) REFERENCES sagas (saga_type, saga_id) ON DELETE CASCADE
);

CREATE INDEX saga_timers_due ON saga_timers (due_at);
