-- Roster schema (PostgreSQL). Keep in step with ../../sqlite/2026-11-22-000001_init/up.sql.
-- Ids are UUIDv7 text; times are UTC timestamps written by diesel; every tenant-owned table
-- carries tenant_id and is only ever queried with it.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL,
    seat_limit_override INTEGER,
    billing_owner_id TEXT,
    admins_can_manage_users BOOLEAN NOT NULL DEFAULT TRUE,
    password_min_length INTEGER NOT NULL DEFAULT 12,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    username TEXT UNIQUE,
    full_name TEXT NOT NULL,
    avatar_url TEXT,
    password_hash TEXT,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    auth_version INTEGER NOT NULL DEFAULT 1,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    home_tenant_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE regions (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    parent_id TEXT REFERENCES regions(id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE memberships (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    job_title TEXT,
    department TEXT,
    section TEXT,
    manager_id TEXT,
    search_text TEXT NOT NULL,
    sort_name TEXT NOT NULL,
    sort_email TEXT NOT NULL,
    auth_version INTEGER NOT NULL DEFAULT 1,
    version INTEGER NOT NULL DEFAULT 1,
    last_login_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);
CREATE INDEX memberships_name ON memberships (tenant_id, sort_name, user_id);
CREATE INDEX memberships_email ON memberships (tenant_id, sort_email, user_id);
CREATE INDEX memberships_created ON memberships (tenant_id, created_at, user_id);

CREATE TABLE membership_regions (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    region_id TEXT NOT NULL REFERENCES regions(id),
    PRIMARY KEY (tenant_id, user_id, region_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships(tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX membership_regions_region ON membership_regions (tenant_id, region_id);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    before_state TEXT,
    after_state TEXT,
    request_id TEXT,
    ip TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE idempotency_keys (
    tenant_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, idem_key)
);

-- Substring search for the member list's `q` (SQLite uses an FTS5 trigram table instead).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX memberships_search_trgm ON memberships USING gin (search_text gin_trgm_ops);
