-- A per-tenant counter that moves with every committed change a member list could show: a
-- membership added, removed, or changed in a listed, filtered or sorted field, its regions, or
-- the region tree. Member lists keep their ordered results in memory under the tenant's
-- counter value (`store::list_cache`), so a changed counter means a fresh read, on every
-- instance. Login times and auth versions are not listed, so they do not move it.
CREATE TABLE member_list_versions (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
);

CREATE TRIGGER member_list_membership_insert AFTER INSERT ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER member_list_membership_delete AFTER DELETE ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (old.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER member_list_membership_update AFTER UPDATE OF
    user_id, role, status, job_title, department, section, manager_id, search_text, sort_name, sort_email, created_at
    ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER member_list_region_link_insert AFTER INSERT ON membership_regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER member_list_region_link_delete AFTER DELETE ON membership_regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (old.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER member_list_region_link_update AFTER UPDATE ON membership_regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER member_list_region_tree AFTER UPDATE OF parent_id ON regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
