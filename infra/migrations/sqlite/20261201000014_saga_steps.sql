-- See and steer sagas (docs/sagas.md, "See and steer"; docs/projections.md, "saga_status").
--
-- `saga_steps`: one row per step the saga runner performed (an event or a fired timer):
-- the trigger, the commands issued with their outcomes, the provider and carrier calls
-- with their replies, and the phase before and after. A stored step is written in the
-- transaction that saves the saga, so the log and the state never disagree; a failed
-- step (nothing saved) is written on its own with the error. The runner keeps the last
-- 100 rows per saga and deletes older ones as it writes.
CREATE TABLE saga_steps (
    id               INTEGER     PRIMARY KEY AUTOINCREMENT,
    saga_type        TEXT        NOT NULL,
    saga_id          TEXT        NOT NULL,
    -- The saga version the step stored; NULL for a failed step (nothing stored).
    saga_version     INTEGER,
    trigger_kind     TEXT        NOT NULL CHECK (trigger_kind IN ('event', 'timer')),
    -- The event id, or the fired timer's derived id: command ids derive from it.
    trigger_id       BLOB        NOT NULL,
    -- The event type, or the timer's name.
    trigger_name     TEXT        NOT NULL,
    trigger_position INTEGER,
    phase_before     TEXT,
    phase_after      TEXT,
    outcome          TEXT        NOT NULL CHECK (outcome IN ('stored', 'failed')),
    error            TEXT,
    -- JSON arrays: the commands with their outcomes, the calls with their replies.
    commands         TEXT        NOT NULL CHECK (json_valid(commands)),
    calls            TEXT        NOT NULL CHECK (json_valid(calls)),
    recorded_at      TEXT        NOT NULL
);

CREATE INDEX saga_steps_by_saga ON saga_steps (saga_type, saga_id, id);

-- The phase (the state's `phase` field, when the saga has one) and since when, so the
-- age in the current phase needs no scan of the steps. Filled by every save; rows saved
-- before this migration take theirs from the state and their last change.
ALTER TABLE sagas ADD COLUMN phase TEXT;
-- RFC 3339 text in UTC, as sqlx writes times.
ALTER TABLE sagas ADD COLUMN phase_since TEXT;
UPDATE sagas SET phase = json_extract(state, '$.phase'), phase_since = updated_at;

CREATE INDEX sagas_by_phase_age ON sagas (status, phase_since);

-- Every saga with its phase, age and the latest of its steps. The caller compares
-- `phase_since` and `latest_timer_due` with its clock to call a saga stuck (see
-- docs/projections.md): the view has no notion of now, so tests can move time.
CREATE VIEW saga_status AS
SELECT s.saga_type,
       s.saga_id,
       s.status,
       s.phase,
       COALESCE(s.phase_since, s.updated_at) AS phase_since,
       s.version,
       s.last_position,
       s.created_at,
       s.updated_at,
       (SELECT t.trigger_kind FROM saga_steps t
         WHERE t.saga_type = s.saga_type AND t.saga_id = s.saga_id
         ORDER BY t.id DESC LIMIT 1) AS last_trigger_kind,
       (SELECT t.trigger_name FROM saga_steps t
         WHERE t.saga_type = s.saga_type AND t.saga_id = s.saga_id
         ORDER BY t.id DESC LIMIT 1) AS last_trigger_name,
       (SELECT t.recorded_at FROM saga_steps t
         WHERE t.saga_type = s.saga_type AND t.saga_id = s.saga_id
         ORDER BY t.id DESC LIMIT 1) AS last_step_at,
       (SELECT t.error FROM saga_steps t
         WHERE t.saga_type = s.saga_type AND t.saga_id = s.saga_id AND t.outcome = 'failed'
         ORDER BY t.id DESC LIMIT 1) AS last_error,
       (SELECT t.recorded_at FROM saga_steps t
         WHERE t.saga_type = s.saga_type AND t.saga_id = s.saga_id AND t.outcome = 'failed'
         ORDER BY t.id DESC LIMIT 1) AS last_error_at,
       (SELECT MIN(m.due_at) FROM saga_timers m
         WHERE m.saga_type = s.saga_type AND m.saga_id = s.saga_id) AS next_timer_due,
       (SELECT MAX(m.due_at) FROM saga_timers m
         WHERE m.saga_type = s.saga_type AND m.saga_id = s.saga_id) AS latest_timer_due
  FROM sagas s;
