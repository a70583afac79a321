-- Deliveries are no longer written with the change (see the SQLite migration of the same name):
-- each endpoint follows its tenant's events with a cursor, and a delivery row is written once
-- its first attempt has ended. The deliveries are keyed by endpoint (its log is a range of the
-- key, so no index of its own); the due index holds only the pending deliveries.
CREATE TABLE webhook_cursors (
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    cursor_seq BIGINT NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (tenant_id, webhook_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO webhook_cursors (tenant_id, webhook_id, cursor_seq)
SELECT w.tenant_id, w.id, COALESCE((SELECT c.last_seq FROM event_counters c WHERE c.tenant_id = w.tenant_id), 0)
FROM webhooks w;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_pkey;
ALTER TABLE webhook_deliveries ADD PRIMARY KEY (tenant_id, webhook_id, id);
DROP INDEX webhook_deliveries_endpoint;
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
