-- Invitations to join a tenant. The token is only stored as its SHA-256 digest; a pending,
-- unexpired invitation holds a seat until it is accepted, revoked or runs out.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    -- Region ids, as a JSON array.
    regions TEXT NOT NULL,
    token_digest TEXT NOT NULL UNIQUE,
    invited_by TEXT,
    -- pending | accepted | revoked (an expired one is pending past expires_at)
    status TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    sent_count INTEGER NOT NULL DEFAULT 1,
    last_sent_at TIMESTAMP NOT NULL,
    accepted_by TEXT,
    accepted_at TIMESTAMP,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX invitations_tenant ON invitations (tenant_id, status, id);
CREATE INDEX invitations_email ON invitations (tenant_id, email);
