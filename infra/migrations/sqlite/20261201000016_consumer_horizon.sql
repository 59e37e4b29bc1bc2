-- The pruning horizon of an ordered consumer (see the PostgreSQL twin).
ALTER TABLE consumers ADD COLUMN pruned_through INTEGER NOT NULL DEFAULT 0
    CHECK (pruned_through >= 0);
