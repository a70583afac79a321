UPDATE webhook_deliveries d SET body = e.payload FROM events e
WHERE d.body IS NULL AND e.tenant_id = d.tenant_id AND e.id = d.event_id;
DELETE FROM webhook_deliveries WHERE body IS NULL;
ALTER TABLE webhook_deliveries ALTER COLUMN body SET NOT NULL;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_tenant_id_fkey;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_tenant_id_webhook_id_fkey
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE;
DROP INDEX events_id;
