DROP TABLE scim_default_regions;
DROP TABLE scim_settings;
DROP TABLE group_role_regions;
DROP TABLE group_role_mappings;
DROP TABLE group_members;
DROP TABLE groups;
DROP TABLE scim_users;
