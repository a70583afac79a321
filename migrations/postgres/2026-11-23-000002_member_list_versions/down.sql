DROP TRIGGER member_list_region_tree ON regions;
DROP TRIGGER member_list_region_links ON membership_regions;
DROP TRIGGER member_list_membership_content ON memberships;
DROP TRIGGER member_list_memberships ON memberships;
DROP FUNCTION roster_member_list_changed();
DROP TABLE member_list_versions;
ALTER TABLE memberships
    ALTER COLUMN role TYPE TEXT COLLATE "default",
    ALTER COLUMN job_title TYPE TEXT COLLATE "default",
    ALTER COLUMN department TYPE TEXT COLLATE "default",
    ALTER COLUMN sort_name TYPE TEXT COLLATE "default",
    ALTER COLUMN sort_email TYPE TEXT COLLATE "default";
