-- Commands: every command that appended records its id with its events, in the same
-- transaction, so a repeated command id on a stream appends nothing and answers with the
-- first outcome (client retries, saga re-runs after a crash).
CREATE TABLE commands (
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    command_id     uuid        NOT NULL,
    first_version  bigint      NOT NULL,
    version        bigint      NOT NULL,
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (stream_type, stream_id, command_id)
);

-- append_events, then the command record, in one round trip. A command id already
-- recorded on the stream raises unique_violation on commands_pkey and the whole
-- transaction (events included) rolls back.
CREATE FUNCTION append_command(
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
    p_snapshot_no     bigint,
    p_command_id      uuid
) RETURNS TABLE (first_position bigint, last_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_first bigint;
    v_last  bigint;
BEGIN
    SELECT a.first_position, a.last_position INTO v_first, v_last
      FROM append_events(p_stream_type, p_stream_id, p_event_ids, p_versions, p_event_types,
                         p_schema_versions, p_payloads, p_metadata, p_correlation_ids,
                         p_causation_ids, p_actors, p_recorded_at, p_hashes, p_prev_hashes,
                         p_snapshot, p_snapshot_version, p_snapshot_no) AS a;
    IF p_command_id IS NOT NULL THEN
        INSERT INTO commands (stream_type, stream_id, command_id, first_version, version,
                              first_position, last_position, recorded_at)
        VALUES (p_stream_type, p_stream_id, p_command_id, p_versions[1],
                p_versions[cardinality(p_versions)], v_first, v_last, p_recorded_at[1]);
    END IF;
    RETURN QUERY SELECT v_first, v_last;
END;
$$;

-- Idempotency-Key of the HTTP API: the first response to a key, replayed byte for byte
-- to a retry with the same request, refused for a different request. Pruned after the
-- configured retention.
CREATE TABLE http_idempotency (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    headers      text        NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX http_idempotency_created_idx ON http_idempotency (created_at);

-- Shop settings the command layer looks up (tax rates, shipping methods, loyalty point
-- value): small JSON documents by name, changed by admins.
CREATE TABLE settings (
    name       text        PRIMARY KEY,
    value      json        NOT NULL,
    updated_at timestamptz NOT NULL
);
