-- Sort columns compare byte by byte, as on SQLite, whatever the database's collation: both
-- backends list members in one order, and results ordered in memory agree with the indexes.
ALTER TABLE memberships
    ALTER COLUMN role TYPE TEXT COLLATE "C",
    ALTER COLUMN job_title TYPE TEXT COLLATE "C",
    ALTER COLUMN department TYPE TEXT COLLATE "C",
    ALTER COLUMN sort_name TYPE TEXT COLLATE "C",
    ALTER COLUMN sort_email TYPE TEXT COLLATE "C";

-- Two per-tenant counters that member lists keep their results under (see the SQLite migration
-- of the same name). The triggers are deferred to commit, so writers of one tenant hold the
-- counters' row only while they commit. TG_ARGV[0] says which counters move.
CREATE TABLE member_list_versions (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL,
    content BIGINT NOT NULL
);

CREATE FUNCTION roster_member_list_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved BIGINT := CASE WHEN TG_ARGV[0] = 'content' THEN 0 ELSE 1 END;
BEGIN
    INSERT INTO member_list_versions (tenant_id, version, content)
        VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END, moved, 1)
        ON CONFLICT (tenant_id) DO UPDATE
            SET version = member_list_versions.version + moved, content = member_list_versions.content + 1;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER member_list_memberships
    AFTER INSERT OR DELETE OR UPDATE OF
        user_id, role, status, job_title, department, section, manager_id, search_text, sort_name, sort_email, created_at
    ON memberships DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION roster_member_list_changed('both');
CREATE CONSTRAINT TRIGGER member_list_membership_content
    AFTER UPDATE ON memberships DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION roster_member_list_changed('content');
CREATE CONSTRAINT TRIGGER member_list_region_links
    AFTER INSERT OR DELETE OR UPDATE ON membership_regions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION roster_member_list_changed('both');
CREATE CONSTRAINT TRIGGER member_list_region_tree
    AFTER UPDATE OF parent_id ON regions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION roster_member_list_changed('both');
