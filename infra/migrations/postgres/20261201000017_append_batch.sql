-- Group commit (docs/adr/0005-group-commit.md): one call appends the commands of many
-- concurrent callers in one transaction, one round trip and one commit, each command
-- keeping its own outcome. Commands come as parallel arrays (`c_*`, one element per
-- command) and their events as parallel arrays (`e_*`, one element per event, in command
-- order; `e_cmds` names each event's command, 1-based). Arrays travel in PostgreSQL's
-- binary format, which decodes far cheaper than a JSON document of the same data
-- (measured: docs/benchmarks.md).
--
-- A command fails alone and stores nothing when its stream is not at the version it
-- expects, the hash chain does not continue, or its command id is already recorded on the
-- stream; the others are written. No command needs a subtransaction: every stream of the
-- batch is locked for the transaction first (advisory locks in key order, so batches never
-- deadlock), which makes the checks exact, and all accepted events then go in with one
-- INSERT. A later command of the batch for a stream an earlier one writes is checked
-- against what the earlier one leaves (its last version and hash), as if it ran after it.
--
-- Positions are taken as in append_events: inside the short global lock, after the
-- transaction id is assigned, one contiguous block for all accepted events.
CREATE FUNCTION append_batch(
    c_stream_types      text[],
    c_stream_ids        text[],
    c_command_ids       uuid[],
    c_first_versions    bigint[],
    c_counts            integer[],
    c_prev_hashes       bytea[],
    c_snapshots         text[],
    c_snapshot_versions bigint[],
    c_snapshot_nos      bigint[],
    e_cmds              integer[],
    e_event_ids         uuid[],
    e_versions          bigint[],
    e_event_types       text[],
    e_schema_versions   integer[],
    e_payloads          text[],
    e_metadata          text[],
    e_correlation_ids   uuid[],
    e_causation_ids     uuid[],
    e_actors            text[],
    e_recorded_at       timestamptz[],
    e_hashes            bytea[],
    e_prev_hashes       bytea[]
)
RETURNS TABLE (ord integer, outcome text, first_position bigint, last_position bigint,
               detail text)
LANGUAGE plpgsql AS $$
DECLARE
    v_n         integer := coalesce(cardinality(c_stream_types), 0);
    v_i         integer;
    v_start     integer := 1;
    v_st        text;
    v_sid       text;
    v_key       text;
    v_first_ver bigint;
    v_count     integer;
    v_head      bigint;
    v_head_hash bytea;
    v_idx       integer;
    -- Streams written earlier in this batch: where each one then stands.
    v_seen      text[] := '{}';
    v_seen_ver  bigint[] := '{}';
    v_seen_hash bytea[] := '{}';
    v_total     bigint := 0;
    v_next      bigint;
    -- Per command, in batch order.
    o_outcome   text[] := '{}';
    o_offset    bigint[] := '{}';
    o_detail    text[] := '{}';
    -- Accepted commands, the index of their first event, where their events start
    -- within the block of positions.
    a_cmd       integer[] := '{}';
    a_start     integer[] := '{}';
    a_offset    bigint[] := '{}';
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'append_batch must be the first write of its transaction';
    END IF;
    -- Every stream of the batch, locked until commit, in one order for all batches.
    PERFORM pg_advisory_xact_lock(hashtext('commerce.stream'), k.key)
       FROM (SELECT DISTINCT hashtext(t || '/' || i) AS key
               FROM unnest(c_stream_types, c_stream_ids) AS s(t, i)
              ORDER BY 1) AS k;

    FOR v_i IN 1 .. v_n LOOP
        v_st := c_stream_types[v_i];
        v_sid := c_stream_ids[v_i];
        v_key := v_st || '/' || v_sid;
        v_first_ver := c_first_versions[v_i];
        v_count := c_counts[v_i];
        v_start := v_start + coalesce(c_counts[v_i - 1], 0);
        IF v_count < 1 THEN
            o_outcome := o_outcome || 'invalid'::text;
            o_offset := o_offset || NULL::bigint;
            o_detail := o_detail || 'no events'::text;
            CONTINUE;
        END IF;
        v_idx := array_position(v_seen, v_key);
        IF v_idx IS NOT NULL THEN
            v_head := v_seen_ver[v_idx];
            v_head_hash := v_seen_hash[v_idx];
        ELSE
            v_head := NULL;
            v_head_hash := NULL;
            SELECT e.version, e.hash INTO v_head, v_head_hash FROM events e
             WHERE e.stream_type = v_st AND e.stream_id = v_sid
             ORDER BY e.version DESC LIMIT 1;
        END IF;
        IF coalesce(v_head, 0) <> v_first_ver - 1 THEN
            o_outcome := o_outcome || 'conflict'::text;
            o_offset := o_offset || NULL::bigint;
            o_detail := o_detail || format('stream %s is at version %s, not %s', v_key,
                                           coalesce(v_head, 0), v_first_ver - 1);
            CONTINUE;
        END IF;
        IF v_head IS NOT NULL AND v_head_hash IS DISTINCT FROM c_prev_hashes[v_i] THEN
            o_outcome := o_outcome || 'corrupt'::text;
            o_offset := o_offset || NULL::bigint;
            o_detail := o_detail || format('hash chain of %s does not continue from version %s',
                                           v_key, v_head);
            CONTINUE;
        END IF;
        IF c_command_ids[v_i] IS NOT NULL AND EXISTS (
            SELECT 1 FROM commands m
             WHERE m.stream_type = v_st AND m.stream_id = v_sid
               AND m.command_id = c_command_ids[v_i]) THEN
            o_outcome := o_outcome || 'duplicate_command'::text;
            o_offset := o_offset || NULL::bigint;
            o_detail := o_detail || format('command %s is already recorded on %s',
                                           c_command_ids[v_i], v_key);
            CONTINUE;
        END IF;
        IF v_idx IS NULL THEN
            v_seen := v_seen || v_key;
            v_seen_ver := v_seen_ver || NULL::bigint;
            v_seen_hash := v_seen_hash || NULL::bytea;
            v_idx := cardinality(v_seen);
        END IF;
        v_seen_ver[v_idx] := v_first_ver + v_count - 1;
        v_seen_hash[v_idx] := e_hashes[v_start + v_count - 1];
        o_outcome := o_outcome || 'ok'::text;
        o_offset := o_offset || v_total;
        o_detail := o_detail || NULL::text;
        a_cmd := a_cmd || v_i;
        a_start := a_start || v_start;
        a_offset := a_offset || v_total;
        v_total := v_total + v_count;
    END LOOP;

    IF v_total > 0 THEN
        BEGIN
            -- As in append_events: taken inside the block, released by the handler too.
            PERFORM pg_advisory_lock(7723390414);
            PERFORM pg_current_xact_id();
            v_next := nextval('events_position_seq');
            IF v_total > 1 THEN
                PERFORM setval('events_position_seq', v_next + v_total - 1);
            END IF;
            PERFORM pg_advisory_unlock(7723390414);
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            PERFORM pg_advisory_unlock(7723390414);
            RAISE;
        END;

        INSERT INTO events (position, event_id, stream_type, stream_id, version, event_type,
                            schema_version, payload, metadata, correlation_id, causation_id,
                            actor, recorded_at, hash, prev_hash)
        SELECT v_next + a.off + (e.k - a.start), e.event_id, c_stream_types[a.cmd],
               c_stream_ids[a.cmd], e.version, e.event_type, e.schema_version,
               e.payload::json, e.metadata::json, e.correlation_id, e.causation_id, e.actor,
               e.recorded_at, e.hash, e.prev_hash
          FROM unnest(e_cmds, e_event_ids, e_versions, e_event_types, e_schema_versions,
                      e_payloads, e_metadata, e_correlation_ids, e_causation_ids, e_actors,
                      e_recorded_at, e_hashes, e_prev_hashes)
               WITH ORDINALITY
               AS e(cmd, event_id, version, event_type, schema_version, payload, metadata,
                    correlation_id, causation_id, actor, recorded_at, hash, prev_hash, k)
          JOIN unnest(a_cmd, a_start, a_offset) AS a(cmd, start, off) ON a.cmd = e.cmd;

        INSERT INTO commands (stream_type, stream_id, command_id, first_version, version,
                              first_position, last_position, recorded_at)
        SELECT c_stream_types[a.cmd], c_stream_ids[a.cmd], c_command_ids[a.cmd],
               c_first_versions[a.cmd], c_first_versions[a.cmd] + c_counts[a.cmd] - 1,
               v_next + a.off, v_next + a.off + c_counts[a.cmd] - 1, e_recorded_at[a.start]
          FROM unnest(a_cmd, a_start, a_offset) AS a(cmd, start, off)
         WHERE c_command_ids[a.cmd] IS NOT NULL;

        -- The newest snapshot of each stream (one row per stream and statement).
        INSERT INTO snapshots (stream_type, stream_id, version, snapshot_no, payload, taken_at)
        SELECT DISTINCT ON (c_stream_types[a.cmd], c_stream_ids[a.cmd])
               c_stream_types[a.cmd], c_stream_ids[a.cmd], c_snapshot_versions[a.cmd],
               c_snapshot_nos[a.cmd], c_snapshots[a.cmd]::json, e_recorded_at[a.start]
          FROM unnest(a_cmd, a_start) AS a(cmd, start)
         WHERE c_snapshots[a.cmd] IS NOT NULL
         ORDER BY c_stream_types[a.cmd], c_stream_ids[a.cmd], a.cmd DESC
        ON CONFLICT (stream_type, stream_id) DO UPDATE
            SET version = EXCLUDED.version, snapshot_no = EXCLUDED.snapshot_no,
                payload = EXCLUDED.payload, taken_at = EXCLUDED.taken_at;
    END IF;

    RETURN QUERY
        SELECT r.i::integer, r.outcome,
               CASE WHEN r.off IS NULL THEN NULL ELSE v_next + r.off END,
               CASE WHEN r.off IS NULL THEN NULL ELSE v_next + r.off + c_counts[r.i] - 1 END,
               r.detail
          FROM unnest(o_outcome, o_offset, o_detail) WITH ORDINALITY AS r(outcome, off, detail, i);
END;
$$;

-- Like the other ways into the log: run as the owner, with a fixed search path, and
-- callable by the runtime role only.
DO $$
DECLARE
    v_fn text := 'append_batch(text[], text[], uuid[], bigint[], integer[], bytea[], text[], '
                 'bigint[], bigint[], integer[], uuid[], bigint[], text[], integer[], text[], '
                 'text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[])';
BEGIN
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                   v_fn, current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO commerce_runtime', v_fn);
END;
$$;
