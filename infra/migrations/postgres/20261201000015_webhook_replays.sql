-- Webhook replays run as background jobs. The admin request records the job and answers
-- at once; the dispatcher enqueues the job's deliveries batch by batch, each batch
-- committing together with the job's progress, so a crash resumes where it stopped and
-- enqueues nothing twice.
CREATE TABLE webhook_replays (
    id              uuid        PRIMARY KEY,
    subscription_id uuid        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    -- The delivery generation the replay enqueues (the subscription's counter, bumped).
    generation      bigint      NOT NULL,
    -- Events after `from_position`, up to and including `to_position` (the log's head when
    -- the replay was asked for), are considered.
    from_position   bigint      NOT NULL CHECK (from_position >= 0),
    to_position     bigint      NOT NULL,
    -- Every matching event at or below this position is enqueued.
    done_position   bigint      NOT NULL,
    enqueued        bigint      NOT NULL DEFAULT 0 CHECK (enqueued >= 0),
    status          text        NOT NULL CHECK (status IN ('running', 'done')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    finished_at     timestamptz
);

CREATE INDEX webhook_replays_running ON webhook_replays (created_at) WHERE status = 'running';
CREATE INDEX webhook_replays_by_subscription ON webhook_replays (subscription_id, created_at);
