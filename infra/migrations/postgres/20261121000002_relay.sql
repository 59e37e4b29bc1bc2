-- Where each relay stands in the global log: every event at or below `position` has been
-- acknowledged by JetStream. Written in batches, so after a crash the relay re-sends what
-- follows; JetStream's duplicate window (Nats-Msg-Id = event id) absorbs the re-sends.
-- The relay only moves `position` forward (GREATEST on upsert), so a deposed relay that
-- writes late cannot move a successor's checkpoint back.
CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
