-- Email outbox: written in the same transaction as its cause, delivered by a background worker
-- with retries, so no message is lost when the mail server is down or the process dies.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT,
    -- What the message is about, e.g. 'password_reset'.
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    -- Subject and bodies as JSON sealed with the master key (links in them carry secrets);
    -- emptied once the message is sent or given up.
    sealed_message TEXT,
    -- pending | sent | failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    -- A worker that claimed the message owns it until then (a worker that died frees it).
    locked_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Password reset tokens: only their SHA-256 digests are stored; a newer one voids the older.
CREATE TABLE password_resets (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_digest TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);
