ALTER TABLE audit_events DROP COLUMN actor_name;
DROP TABLE api_keys;
