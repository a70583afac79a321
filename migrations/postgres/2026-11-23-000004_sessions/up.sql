-- Sign-in sessions: one per login, carried by a rotating refresh token. Access tokens name
-- their session (`sid`), so ending a session ends its access tokens at once on every instance.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The tenant the session acts in now (switching moves it); NULL: identity-only.
    tenant_id TEXT,
    -- SHA-256 of the current refresh token; earlier ones are in rotated_refresh_tokens.
    refresh_digest TEXT NOT NULL UNIQUE,
    user_agent TEXT,
    ip TEXT,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    end_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Refresh tokens already exchanged: presenting one again ends its session (theft detection).
CREATE TABLE rotated_refresh_tokens (
    token_digest TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    rotated_at TIMESTAMP NOT NULL
);
CREATE INDEX rotated_refresh_tokens_session ON rotated_refresh_tokens (session_id);
