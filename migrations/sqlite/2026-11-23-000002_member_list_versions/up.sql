-- Two per-tenant counters that member lists keep their results under (`store::list_cache`),
-- moved by these triggers in the same transaction as the change, so every instance sees a
-- change at its next request:
--   version: which members a list holds, or their order (a membership added or removed, a
--            listed, filtered or sorted field, its regions, the region tree);
--   content: that, and any other change to a membership (a sign-in time, the ETag's version).
CREATE TABLE member_list_versions (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    content INTEGER NOT NULL
);

CREATE TRIGGER member_list_membership_insert AFTER INSERT ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (new.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
CREATE TRIGGER member_list_membership_delete AFTER DELETE ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (old.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
CREATE TRIGGER member_list_membership_order AFTER UPDATE OF
    user_id, role, status, job_title, department, section, manager_id, search_text, sort_name, sort_email, created_at
    ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (new.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
CREATE TRIGGER member_list_membership_update AFTER UPDATE ON memberships BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (new.tenant_id, 0, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET content = content + 1;
END;
CREATE TRIGGER member_list_region_link_insert AFTER INSERT ON membership_regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (new.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
CREATE TRIGGER member_list_region_link_delete AFTER DELETE ON membership_regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (old.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
CREATE TRIGGER member_list_region_link_update AFTER UPDATE ON membership_regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (new.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
CREATE TRIGGER member_list_region_tree AFTER UPDATE OF parent_id ON regions BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content) VALUES (new.tenant_id, 1, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1, content = content + 1;
END;
