-- The event log: the single source of truth. Append-only, enforced below.
-- Global positions. Drawn only by append_events, under its lock.
CREATE SEQUENCE events_position_seq AS bigint;

CREATE TABLE events (
    -- Global position: total order over the whole log, increasing with commit safety
    -- (see append_events). Failed appends may leave unused numbers; order never breaks.
    position       bigint      PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version > 0),
    -- `json`, not `jsonb`: the exact bytes that were hashed are the bytes that are stored.
    payload        json        NOT NULL,
    metadata       json        NOT NULL,
    correlation_id uuid,
    causation_id   uuid,
    actor          text,
    recorded_at    timestamptz NOT NULL,
    hash           bytea       NOT NULL CHECK (length(hash) = 32),
    prev_hash      bytea       CHECK (prev_hash IS NULL OR length(prev_hash) = 32),
    -- The writing transaction; tails read only below the oldest running transaction.
    txid           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_type, stream_id, version)
);

CREATE INDEX events_type_position_idx ON events (stream_type, position);
CREATE INDEX events_correlation_idx ON events (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_recorded_at_idx ON events USING brin (recorded_at);

CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Latest snapshot per stream. Derived data: may be deleted or replaced at any time.
-- A snapshot is written only together with a successful append, and appends to one
-- stream are serialized by its version, so the last write is always the newest.
CREATE TABLE snapshots (
    stream_type text        NOT NULL,
    stream_id   text        NOT NULL,
    version     bigint      NOT NULL CHECK (version > 0),
    snapshot_no bigint      NOT NULL,
    payload     json        NOT NULL,
    taken_at    timestamptz NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

-- Appends one command's events to one stream in a single round trip.
--
-- Positions are drawn while holding a session advisory lock that also covers the
-- assignment of the transaction id. Hence for any two events, position order =
-- transaction-id order, and a reader that only returns rows whose txid is below
-- pg_snapshot_xmin(pg_current_snapshot()) never skips a position that commits later.
-- The lock covers only the id and position assignment (microseconds), not the INSERT or
-- the commit, so appends run and commit concurrently. (No NOTIFY here: a notifying
-- transaction holds the notify queue lock through its commit, which would serialize
-- every append's WAL flush; the store sends wake-ups from a separate session.)
-- A conflicting version raises unique_violation on events_stream_version_key.
CREATE FUNCTION append_events(
    p_stream_type     text,
    p_stream_id       text,
    p_event_ids       uuid[],
    p_versions        bigint[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_payloads        text[],
    p_metadata        text[],
    p_correlation_ids uuid[],
    p_causation_ids   uuid[],
    p_actors          text[],
    p_recorded_at     timestamptz[],
    p_hashes          bytea[],
    p_prev_hashes     bytea[],
    p_snapshot        text,
    p_snapshot_version bigint,
    p_snapshot_no     bigint
) RETURNS TABLE (first_position bigint, last_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := cardinality(p_event_ids);
    v_first bigint;
    v_prev  bytea;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'append_events must be the first write of its transaction';
    END IF;
    IF v_count IS NULL OR v_count = 0 THEN
        RAISE EXCEPTION 'append_events needs at least one event';
    END IF;
    -- Versions are gap-free: the event before the first new one must exist, and the
    -- chain must continue from its hash.
    IF p_versions[1] > 1 THEN
        SELECT hash INTO v_prev FROM events
         WHERE stream_type = p_stream_type AND stream_id = p_stream_id
           AND version = p_versions[1] - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream %/% is not at version %', p_stream_type, p_stream_id,
                  p_versions[1] - 1
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'events_stream_version_key';
        END IF;
        IF v_prev IS DISTINCT FROM p_prev_hashes[1] THEN
            RAISE EXCEPTION 'hash chain of %/% does not continue from version %',
                  p_stream_type, p_stream_id, p_versions[1] - 1
                USING ERRCODE = 'data_corrupted';
        END IF;
    END IF;
    PERFORM pg_advisory_lock(7723390414);
    BEGIN
        -- Assigns this transaction's id inside the lock.
        PERFORM pg_current_xact_id();
        -- Every nextval of this sequence happens under the lock: the block is contiguous.
        v_first := nextval('events_position_seq');
        IF v_count > 1 THEN
            PERFORM setval('events_position_seq', v_first + v_count - 1);
        END IF;
        PERFORM pg_advisory_unlock(7723390414);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(7723390414);
        RAISE;
    END;
    INSERT INTO events (position, event_id, stream_type, stream_id, version, event_type,
                        schema_version, payload, metadata, correlation_id, causation_id,
                        actor, recorded_at, hash, prev_hash)
    SELECT v_first + e.ord - 1, e.event_id, p_stream_type, p_stream_id, e.version,
           e.event_type, e.schema_version, e.payload::json, e.metadata::json,
           e.correlation_id, e.causation_id, e.actor, e.recorded_at, e.hash, e.prev_hash
      FROM unnest(p_event_ids, p_versions, p_event_types, p_schema_versions, p_payloads,
                  p_metadata, p_correlation_ids, p_causation_ids, p_actors, p_recorded_at,
                  p_hashes, p_prev_hashes)
           WITH ORDINALITY
           AS e(event_id, version, event_type, schema_version, payload, metadata,
                correlation_id, causation_id, actor, recorded_at, hash, prev_hash, ord);
    IF p_snapshot IS NOT NULL THEN
        INSERT INTO snapshots (stream_type, stream_id, version, snapshot_no, payload, taken_at)
        VALUES (p_stream_type, p_stream_id, p_snapshot_version, p_snapshot_no,
                p_snapshot::json, p_recorded_at[1])
        ON CONFLICT (stream_type, stream_id) DO UPDATE
            SET version = EXCLUDED.version, snapshot_no = EXCLUDED.snapshot_no,
                payload = EXCLUDED.payload, taken_at = EXCLUDED.taken_at;
    END IF;
    RETURN QUERY SELECT v_first, v_first + v_count - 1;
END;
$$;
