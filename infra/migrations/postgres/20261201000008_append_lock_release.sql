-- The append lock is taken inside the exception block of append_events (it was taken
-- just before it): a lock granted together with a pending timeout or cancel is released by
-- the handler instead of staying with the pooled session and blocking every appender.
-- Everything else in the function is unchanged.
CREATE OR REPLACE FUNCTION append_events(
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
    BEGIN
        -- Taken inside the block: PostgreSQL may grant the lock and then raise a pending
        -- lock_timeout, statement_timeout or cancel; the handler below releases it, so a
        -- session lock can never outlive a failed call on a pooled connection.
        PERFORM pg_advisory_lock(7723390414);
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
