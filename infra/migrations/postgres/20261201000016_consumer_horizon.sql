-- The pruning horizon of an ordered consumer: every event at or below `pruned_through`
-- is settled for it. Retention may then delete its `consumer_streams` rows at or below
-- the horizon; a stream without a row expects next the first of its events after
-- max(start_position, pruned_through).
ALTER TABLE consumers ADD COLUMN pruned_through bigint NOT NULL DEFAULT 0
    CHECK (pruned_through >= 0);
