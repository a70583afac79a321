CREATE TABLE webhook_deliveries_old (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    locked_until TIMESTAMP,
    last_status INTEGER,
    last_duration_ms INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO webhook_deliveries_old
SELECT d.tenant_id, d.id, d.webhook_id, d.event_id, d.event_type,
       COALESCE(d.body, (SELECT e.payload FROM events e WHERE e.tenant_id = d.tenant_id AND e.id = d.event_id)),
       d.status, d.attempts, d.next_attempt_at, d.locked_until, d.last_status, d.last_duration_ms, d.last_error,
       d.created_at, d.delivered_at
FROM webhook_deliveries d
WHERE d.body IS NOT NULL OR EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = d.tenant_id AND e.id = d.event_id);
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_old RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, webhook_id, id);
DROP INDEX events_id;
