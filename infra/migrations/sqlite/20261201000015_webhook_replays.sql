-- Webhook replays run as background jobs (see the PostgreSQL twin for the design).
CREATE TABLE webhook_replays (
    id              BLOB    PRIMARY KEY,
    subscription_id BLOB    NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    generation      INTEGER NOT NULL,
    from_position   INTEGER NOT NULL CHECK (from_position >= 0),
    to_position     INTEGER NOT NULL,
    done_position   INTEGER NOT NULL,
    enqueued        INTEGER NOT NULL DEFAULT 0 CHECK (enqueued >= 0),
    status          TEXT    NOT NULL CHECK (status IN ('running', 'done')),
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    finished_at     TEXT
);

CREATE INDEX webhook_replays_running ON webhook_replays (created_at) WHERE status = 'running';
CREATE INDEX webhook_replays_by_subscription ON webhook_replays (subscription_id, created_at);
