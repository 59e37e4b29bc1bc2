-- Outbound webhooks (infra/src/webhook). Subscriptions say where to POST which events;
-- the fan-out consumer turns each matching event into one delivery row per subscription;
-- dispatchers claim due deliveries, POST them and log every attempt.

CREATE TABLE webhook_subscriptions (
    id                   uuid        PRIMARY KEY,
    url                  text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description          text        NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    -- JSON array of filter patterns (`*`, `order.*`, `order.OrderPlaced`); [] = every event.
    event_types          text        NOT NULL,
    -- `whsec_<base64>`: needed in clear to compute the HMAC of every delivery.
    secret               text        NOT NULL,
    status               text        NOT NULL CHECK (status IN ('active', 'disabled')),
    -- Deliveries that failed for good in a row; reset by any successful attempt.
    consecutive_failures bigint      NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    disabled_reason      text,
    disabled_at          timestamptz,
    -- The log's head when the subscription was created: fan-out skips events at or below
    -- it (a replay can still send them).
    start_position       bigint      NOT NULL CHECK (start_position >= 0),
    -- The last replay generation handed out; fan-out enqueues generation 0.
    generation           bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    generation       bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    position         bigint      NOT NULL,
    stream_type      text        NOT NULL,
    stream_id        text        NOT NULL,
    event_type       text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts in the current round (a manual redelivery of a finished delivery starts a
    -- new round); the attempt log numbers attempts over all rounds.
    attempts         bigint      NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL,
    -- A dispatcher's claim: while `locked_until` lies ahead, only the holder of `lease_id`
    -- may record the outcome.
    locked_until     timestamptz,
    lease_id         uuid,
    last_status_code bigint,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
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
    id               uuid        PRIMARY KEY,
    delivery_id      uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt_no       bigint      NOT NULL CHECK (attempt_no > 0),
    attempted_at     timestamptz NOT NULL,
    -- NULL when no response came (timeout, connection error).
    status_code      bigint,
    error            text,
    duration_ms      bigint      NOT NULL CHECK (duration_ms >= 0),
    -- At most 1 KiB of the response body.
    response_excerpt text        CHECK (octet_length(response_excerpt) <= 1024)
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempt_no);
