-- Two roles (docs/operations.md, "Database roles"):
--   * the owner: the role that runs `commerce migrate`. It owns every table and function.
--   * `commerce_runtime`: what `commerce serve` and the workers log in as (a member of it).
--     It reads the log and appends only through append_events / append_command, which run
--     with the owner's rights (SECURITY DEFINER). It has no INSERT, UPDATE, DELETE or
--     TRUNCATE on `events` or `commands`, no use of the position sequence, and, not being
--     the owner, cannot disable or drop the guard triggers.
-- The guards also fire for sessions in replica mode (`session_replication_role`), which
-- a superuser could otherwise use to slip an UPDATE or DELETE past them.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'commerce_runtime') THEN
        CREATE ROLE commerce_runtime NOLOGIN;
    END IF;
EXCEPTION
    -- Created by an earlier migration of another schema, or concurrently.
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'the role commerce_runtime does not exist and % may not create it', current_user
            USING HINT = 'run CREATE ROLE commerce_runtime NOLOGIN as a superuser, then migrate again';
END;
$$;

ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_delete;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_truncate;

-- Positions come from append_events alone, one at a time: no cached ranges.
ALTER SEQUENCE events_position_seq CACHE 1;

DO $$
DECLARE
    v_schema text := current_schema();
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO commerce_runtime', v_schema);

    REVOKE ALL ON events, commands FROM PUBLIC;
    REVOKE ALL ON SEQUENCE events_position_seq FROM PUBLIC;
    GRANT SELECT ON events, commands TO commerce_runtime;

    -- Everything else is the engine's working state (snapshots, checkpoints, ledgers,
    -- webhooks, views, sagas, search documents): read and written by the runtime.
    EXECUTE (
        SELECT coalesce(string_agg(
                   format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO commerce_runtime',
                          schemaname, tablename), '; '), 'SELECT 1')
          FROM pg_tables
         WHERE schemaname = v_schema
           AND tablename NOT IN ('events', 'commands', '_sqlx_migrations')
    );
    EXECUTE (
        SELECT coalesce(string_agg(
                   format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO commerce_runtime',
                          sequence_schema, sequence_name), '; '), 'SELECT 1')
          FROM information_schema.sequences
         WHERE sequence_schema = v_schema
           AND sequence_name <> 'events_position_seq'
    );
    -- Tables later migrations add are the runtime's working state too.
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO commerce_runtime',
        v_schema);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO commerce_runtime',
        v_schema);

    -- The two ways into the log run as the owner, with a fixed search path so a caller
    -- cannot substitute tables of its own.
    EXECUTE format(
        'ALTER FUNCTION append_events(text, text, uuid[], bigint[], text[], integer[], text[], '
        'text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[], text, bigint, bigint) '
        'SECURITY DEFINER SET search_path = %I, pg_temp', v_schema);
    EXECUTE format(
        'ALTER FUNCTION append_command(text, text, uuid[], bigint[], text[], integer[], text[], '
        'text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[], text, bigint, bigint, '
        'uuid) SECURITY DEFINER SET search_path = %I, pg_temp', v_schema);
    REVOKE ALL ON FUNCTION append_events(text, text, uuid[], bigint[], text[], integer[], text[],
        text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[], text, bigint, bigint)
        FROM PUBLIC;
    REVOKE ALL ON FUNCTION append_command(text, text, uuid[], bigint[], text[], integer[], text[],
        text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[], text, bigint, bigint, uuid)
        FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION append_events(text, text, uuid[], bigint[], text[], integer[], text[],
        text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[], text, bigint, bigint)
        TO commerce_runtime;
    GRANT EXECUTE ON FUNCTION append_command(text, text, uuid[], bigint[], text[], integer[],
        text[], text[], uuid[], uuid[], text[], timestamptz[], bytea[], bytea[], text, bigint,
        bigint, uuid) TO commerce_runtime;
END;
$$;
