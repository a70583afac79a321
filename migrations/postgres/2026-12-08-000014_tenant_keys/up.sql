-- Keys a distributed PostgreSQL can shard by tenant (Citus distributes tenant-owned tables by
-- `tenant_id`; hash partitioning by `tenant_id` enforces the same rule): on every tenant-owned
-- table the primary key, each unique constraint or index, and each foreign key to another
-- tenant-owned table include `tenant_id`. Global tables (identities, tenants, signing keys, and
-- rows found by a token or a global name before any tenant is known: sessions, resets,
-- confirmations, SSO requests and codes, domain claims, the mail outbox) keep their keys; see
-- README "Sharding by tenant" and tests/api/schema_keys.rs, which checks the rule.
--
-- Order: the foreign keys that point at a primary key go first, then the keys are swapped, then
-- the composite foreign keys come back.

ALTER TABLE regions DROP CONSTRAINT regions_parent_id_fkey;
ALTER TABLE membership_regions DROP CONSTRAINT membership_regions_region_id_fkey;
ALTER TABLE group_role_regions DROP CONSTRAINT group_role_regions_region_id_fkey;
ALTER TABLE scim_default_regions DROP CONSTRAINT scim_default_regions_region_id_fkey;
ALTER TABLE sections DROP CONSTRAINT sections_department_id_fkey;

ALTER TABLE regions DROP CONSTRAINT regions_pkey, ADD CONSTRAINT regions_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE departments DROP CONSTRAINT departments_pkey, ADD CONSTRAINT departments_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE sections
    DROP CONSTRAINT sections_pkey,
    ADD CONSTRAINT sections_pkey PRIMARY KEY (tenant_id, id),
    DROP CONSTRAINT sections_department_id_name_key,
    ADD CONSTRAINT sections_tenant_id_department_id_name_key UNIQUE (tenant_id, department_id, name);
-- The primary key (tenant_id first) serves what this index served.
DROP INDEX sections_tenant;

-- The audit trail is read per tenant in id order: the new primary key is that index.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey, ADD CONSTRAINT audit_events_pkey PRIMARY KEY (tenant_id, id);
DROP INDEX audit_events_tenant;

-- An invitation link is opened by its token alone, before any tenant is known: that lookup
-- keeps a (non-unique) index; a token is 256 random bits, unique across tenants by chance of
-- collision, and within its tenant by the constraint.
ALTER TABLE invitations
    DROP CONSTRAINT invitations_pkey,
    ADD CONSTRAINT invitations_pkey PRIMARY KEY (tenant_id, id),
    DROP CONSTRAINT invitations_token_digest_key,
    ADD CONSTRAINT invitations_tenant_id_token_digest_key UNIQUE (tenant_id, token_digest);
CREATE INDEX invitations_token_digest ON invitations (token_digest);

-- An API key is found by its secret's digest alone (SCIM and agent routes carry no tenant):
-- the same shape as invitations.
DROP INDEX api_keys_secret_digest;
DROP INDEX api_keys_previous_digest;
CREATE UNIQUE INDEX api_keys_tenant_secret_digest ON api_keys (tenant_id, secret_digest);
CREATE UNIQUE INDEX api_keys_tenant_previous_digest ON api_keys (tenant_id, previous_digest);
CREATE INDEX api_keys_secret_digest ON api_keys (secret_digest);
CREATE INDEX api_keys_previous_digest ON api_keys (previous_digest);

ALTER TABLE regions ADD CONSTRAINT regions_parent_id_fkey
    FOREIGN KEY (tenant_id, parent_id) REFERENCES regions (tenant_id, id);
ALTER TABLE membership_regions ADD CONSTRAINT membership_regions_region_id_fkey
    FOREIGN KEY (tenant_id, region_id) REFERENCES regions (tenant_id, id);
ALTER TABLE group_role_regions ADD CONSTRAINT group_role_regions_region_id_fkey
    FOREIGN KEY (tenant_id, region_id) REFERENCES regions (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE scim_default_regions ADD CONSTRAINT scim_default_regions_region_id_fkey
    FOREIGN KEY (tenant_id, region_id) REFERENCES regions (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE sections ADD CONSTRAINT sections_department_id_fkey
    FOREIGN KEY (tenant_id, department_id) REFERENCES departments (tenant_id, id) ON DELETE CASCADE;
