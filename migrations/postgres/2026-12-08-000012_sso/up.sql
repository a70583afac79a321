-- Single sign-on (DESIGN.md section 13). A tenant proves a domain with a DNS TXT record
-- (tenant_domains); a verified domain is claimed in domain_claims, one tenant per domain (a
-- global table: it is how a sign-in finds the tenant from an email). Connections are OIDC or
-- SAML 2.0, their non-secret settings as JSON, the OIDC client secret sealed with the master
-- key. sso_requests holds each sign-in a browser was sent off for (OIDC state, nonce and PKCE
-- verifier; the SAML AuthnRequest's ID), used once; sso_assertions each SAML assertion id seen,
-- until it expires; sso_codes the one-minute single-use codes the frontend exchanges for tokens.
-- binding_digest ties a sign-in to the browser that started it: the frontend keeps the secret
-- `POST /auth/sso/start` gave it and sends it with the code (a code alone, sent to someone else's
-- browser, signs nobody in).
CREATE TABLE tenant_domains (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    domain TEXT NOT NULL,
    challenge_token TEXT NOT NULL,
    verified_at TIMESTAMP,
    last_checked_at TIMESTAMP,
    last_check_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, domain)
);

CREATE TABLE domain_claims (
    domain TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    domain_id TEXT NOT NULL,
    claimed_at TIMESTAMP NOT NULL
);
CREATE INDEX domain_claims_tenant ON domain_claims (tenant_id);

CREATE TABLE sso_connections (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    settings TEXT NOT NULL,
    sealed_secret TEXT,
    jit_enabled BOOLEAN NOT NULL,
    jit_role TEXT NOT NULL,
    jit_regions TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX sso_connections_id ON sso_connections (id);

CREATE TABLE sso_requests (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    nonce TEXT,
    sealed_verifier TEXT,
    binding_digest TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX sso_requests_expiry ON sso_requests (expires_at);

CREATE TABLE sso_assertions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, assertion_id)
);
CREATE INDEX sso_assertions_expiry ON sso_assertions (expires_at);

CREATE TABLE sso_codes (
    code_digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL,
    binding_digest TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX sso_codes_expiry ON sso_codes (expires_at);

ALTER TABLE sessions ADD COLUMN sso_connection_id TEXT;
ALTER TABLE tenants ADD COLUMN sso_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tenants ADD COLUMN sso_required_for_owners BOOLEAN NOT NULL DEFAULT FALSE;
