DROP TABLE idempotency_keys;
DROP TABLE signing_keys;
DROP TABLE audit_events;
DROP TABLE membership_regions;
DROP TABLE memberships;
DROP TABLE regions;
DROP TABLE users;
DROP TABLE tenants;
