-- Signed provider callbacks (payment outcomes, carrier scans) that were accepted. A
-- signature is accepted once: the insert claims it, so a replayed callback is refused
-- across processes and restarts. Rows older than the timestamp tolerance can go: a
-- callback that old is refused as stale before its signature is looked up.
CREATE TABLE callback_signatures (
    -- `payments/<provider>` or `carriers/<carrier>`.
    source      text        NOT NULL,
    -- The hex HMAC of the callback (`v1=` of its signature header).
    signature   text        NOT NULL,
    -- The callback's signed timestamp, and when it was accepted.
    signed_at   timestamptz NOT NULL,
    accepted_at timestamptz NOT NULL,
    PRIMARY KEY (source, signature)
);

CREATE INDEX callback_signatures_by_age ON callback_signatures (accepted_at);
