-- API keys: machine principals of one tenant (DESIGN.md section 11). The secret is never
-- stored: only its SHA-256 digest, looked up on every request (so revocation and changes act
-- at once on every instance). During a rotation's grace period the previous digest still works
-- until `previous_expires_at`. `regions` is a JSON array of region ids.
CREATE TABLE api_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    regions TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_digest TEXT NOT NULL,
    previous_digest TEXT,
    previous_expires_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX api_keys_secret_digest ON api_keys (secret_digest);
CREATE UNIQUE INDEX api_keys_previous_digest ON api_keys (previous_digest);

-- The name of a key (or person) as it was when it acted, shown by the audit log.
ALTER TABLE audit_events ADD COLUMN actor_name TEXT;
