-- Back to the keys before this migration: single-column primary keys and foreign keys.

ALTER TABLE regions DROP CONSTRAINT regions_parent_id_fkey;
ALTER TABLE membership_regions DROP CONSTRAINT membership_regions_region_id_fkey;
ALTER TABLE group_role_regions DROP CONSTRAINT group_role_regions_region_id_fkey;
ALTER TABLE scim_default_regions DROP CONSTRAINT scim_default_regions_region_id_fkey;
ALTER TABLE sections DROP CONSTRAINT sections_department_id_fkey;

DROP INDEX api_keys_secret_digest;
DROP INDEX api_keys_previous_digest;
DROP INDEX api_keys_tenant_secret_digest;
DROP INDEX api_keys_tenant_previous_digest;
CREATE UNIQUE INDEX api_keys_secret_digest ON api_keys (secret_digest);
CREATE UNIQUE INDEX api_keys_previous_digest ON api_keys (previous_digest);

DROP INDEX invitations_token_digest;
ALTER TABLE invitations
    DROP CONSTRAINT invitations_tenant_id_token_digest_key,
    ADD CONSTRAINT invitations_token_digest_key UNIQUE (token_digest),
    DROP CONSTRAINT invitations_pkey,
    ADD CONSTRAINT invitations_pkey PRIMARY KEY (id);

CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey, ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);

CREATE INDEX sections_tenant ON sections (tenant_id);
ALTER TABLE sections
    DROP CONSTRAINT sections_tenant_id_department_id_name_key,
    ADD CONSTRAINT sections_department_id_name_key UNIQUE (department_id, name),
    DROP CONSTRAINT sections_pkey,
    ADD CONSTRAINT sections_pkey PRIMARY KEY (id);
ALTER TABLE departments DROP CONSTRAINT departments_pkey, ADD CONSTRAINT departments_pkey PRIMARY KEY (id);
ALTER TABLE regions DROP CONSTRAINT regions_pkey, ADD CONSTRAINT regions_pkey PRIMARY KEY (id);

ALTER TABLE regions ADD CONSTRAINT regions_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES regions (id);
ALTER TABLE membership_regions ADD CONSTRAINT membership_regions_region_id_fkey
    FOREIGN KEY (region_id) REFERENCES regions (id);
ALTER TABLE group_role_regions ADD CONSTRAINT group_role_regions_region_id_fkey
    FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE CASCADE;
ALTER TABLE scim_default_regions ADD CONSTRAINT scim_default_regions_region_id_fkey
    FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE CASCADE;
ALTER TABLE sections ADD CONSTRAINT sections_department_id_fkey
    FOREIGN KEY (department_id) REFERENCES departments (id) ON DELETE CASCADE;
