ALTER TABLE tenants DROP COLUMN sso_required_for_owners;
ALTER TABLE tenants DROP COLUMN sso_required;
ALTER TABLE sessions DROP COLUMN sso_connection_id;
DROP TABLE sso_codes;
DROP TABLE sso_assertions;
DROP TABLE sso_requests;
DROP TABLE sso_connections;
DROP TABLE domain_claims;
DROP TABLE tenant_domains;
