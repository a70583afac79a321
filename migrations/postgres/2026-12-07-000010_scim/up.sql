-- SCIM provisioning (DESIGN.md section 12). A member the directory has written is "directory
-- managed": it has a row in scim_users with the userName it was given (unique in the tenant,
-- compared without regard to case through user_name_key), its externalId, and the SCIM
-- attributes as sent (JSON, canonical form, never the password); its role and regions then come
-- from the groups it is in (group_role_mappings) or the tenant's SCIM defaults (scim_settings).
CREATE TABLE scim_users (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id TEXT,
    attributes TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (tenant_id, user_name_key);
CREATE INDEX scim_users_external_id ON scim_users (tenant_id, external_id);

-- Groups: a tenant resource, written over SCIM, read in the REST API too.
CREATE TABLE groups (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX groups_display_name ON groups (tenant_id, display_name_key);
CREATE INDEX groups_external_id ON groups (tenant_id, external_id);

CREATE TABLE group_members (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (tenant_id, user_id);

-- A group's role mapping: the role (admin, operator or viewer) its members get, and regions.
CREATE TABLE group_role_mappings (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE
);
CREATE TABLE group_role_regions (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    region_id TEXT NOT NULL REFERENCES regions(id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, group_id, region_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES group_role_mappings (tenant_id, group_id) ON DELETE CASCADE
);

-- The role and regions of a directory-managed member in no mapped group.
CREATE TABLE scim_settings (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    default_role TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE scim_default_regions (
    tenant_id TEXT NOT NULL REFERENCES scim_settings(tenant_id) ON DELETE CASCADE,
    region_id TEXT NOT NULL REFERENCES regions(id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, region_id)
);
