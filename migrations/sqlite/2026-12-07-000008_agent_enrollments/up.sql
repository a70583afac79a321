-- Device agents (DESIGN.md section 11): the OS username an enrolment recorded on a membership
-- (one per membership, unique within the tenant, compared case-insensitively through
-- `os_username_key`, its lower-cased form), the enrolments (one per device and member), the
-- one-time tokens with which an enrolled person completes their profile, and the
-- confirmations of the address they gave (the name, address and password wait there until the
-- link is followed).
CREATE TABLE member_os_usernames (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    os_username TEXT NOT NULL,
    os_username_key TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX member_os_usernames_key ON member_os_usernames (tenant_id, os_username_key);

CREATE TABLE enrollments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    os TEXT,
    os_username TEXT NOT NULL,
    rejected_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX enrollments_device ON enrollments (tenant_id, agent_id, user_id);
CREATE INDEX enrollments_member ON enrollments (tenant_id, user_id);

CREATE TABLE profile_completions (
    token_digest TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    enrollment_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX profile_completions_user ON profile_completions (user_id);

CREATE TABLE email_confirmations (
    token_digest TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    full_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX email_confirmations_user ON email_confirmations (user_id);
