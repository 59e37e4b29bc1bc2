-- Outbound webhooks (infra/src/webhook). Subscriptions say where to POST which events;
-- the fan-out consumer turns each matching event into one delivery row per subscription;
-- the dispatcher claims due deliveries, POSTs them and logs every attempt.
-- Times are RFC 3339 text in UTC as sqlx writes them, which sorts in time order.

CREATE TABLE webhook_subscriptions (
    id                   BLOB    PRIMARY KEY,
    url                  TEXT    NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description          TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    -- JSON array of filter patterns (`*`, `order.*`, `order.OrderPlaced`); [] = every event.
    event_types          TEXT    NOT NULL CHECK (json_valid(event_types)),
    -- `whsec_<base64>`: needed in clear to compute the HMAC of every delivery.
    secret               TEXT    NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    -- Deliveries that failed for good in a row; reset by any successful attempt.
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    disabled_reason      TEXT,
    disabled_at          TEXT,
    -- The log's head when the subscription was created: fan-out skips events at or below
    -- it (a replay can still send them).
    start_position       INTEGER NOT NULL CHECK (start_position >= 0),
    -- The last replay generation handed out; fan-out enqueues generation 0.
    generation           INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               BLOB    PRIMARY KEY,
    subscription_id  BLOB    NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    generation       INTEGER NOT NULL,
    event_id         BLOB    NOT NULL,
    position         INTEGER NOT NULL,
    stream_type      TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts in the current round (a manual redelivery of a finished delivery starts a
    -- new round); the attempt log numbers attempts over all rounds.
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TEXT    NOT NULL,
    -- The dispatcher's claim: while `locked_until` lies ahead, only the holder of
    -- `lease_id` may record the outcome.
    locked_until     TEXT,
    lease_id         BLOB,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    delivered_at     TEXT,
    -- Fanning one event out twice to one subscription is a no-op; a replay enqueues it
    -- again under a new generation.
    CONSTRAINT webhook_deliveries_once UNIQUE (subscription_id, event_id, generation)
);

CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- The per-stream order check: earlier pending deliveries of the same stream.
CREATE INDEX webhook_deliveries_stream_idx
    ON webhook_deliveries (subscription_id, stream_type, stream_id, position)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx
    ON webhook_deliveries (subscription_id, position DESC, generation DESC);

-- The delivery log: one row per HTTP attempt.
CREATE TABLE webhook_attempts (
    id               BLOB    PRIMARY KEY,
    delivery_id      BLOB    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt_no       INTEGER NOT NULL CHECK (attempt_no > 0),
    attempted_at     TEXT    NOT NULL,
    -- NULL when no response came (timeout, connection error).
    status_code      INTEGER,
    error            TEXT,
    duration_ms      INTEGER NOT NULL CHECK (duration_ms >= 0),
    -- At most 1 KiB of the response body.
    response_excerpt TEXT    CHECK (length(CAST(response_excerpt AS BLOB)) <= 1024)
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempt_no);
