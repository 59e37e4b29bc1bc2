-- Signed provider callbacks (payment outcomes, carrier scans) that were accepted. A
-- signature is accepted once: the insert claims it, so a replayed callback is refused
-- across restarts. Rows older than the timestamp tolerance can go: a callback that old
-- is refused as stale before its signature is looked up.
-- Times are RFC 3339 text in UTC as sqlx writes them, which sorts in time order.
CREATE TABLE callback_signatures (
    -- `payments/<provider>` or `carriers/<carrier>`.
    source      TEXT NOT NULL,
    -- The hex HMAC of the callback (`v1=` of its signature header).
    signature   TEXT NOT NULL,
    -- The callback's signed timestamp, and when it was accepted.
    signed_at   TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    PRIMARY KEY (source, signature)
);

CREATE INDEX callback_signatures_by_age ON callback_signatures (accepted_at);
