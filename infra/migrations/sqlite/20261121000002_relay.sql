-- Where each relay stands in the global log: every event at or below `position` has been
-- acknowledged by JetStream. Written in batches, so after a crash the relay re-sends what
-- follows; JetStream's duplicate window (Nats-Msg-Id = event id) absorbs the re-sends.
-- The relay only moves `position` forward (max() on upsert).
CREATE TABLE relay_checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    updated_at TEXT    NOT NULL
);
