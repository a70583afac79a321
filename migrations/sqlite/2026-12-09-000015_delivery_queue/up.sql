-- Cheaper deliveries on SQLite, where every write queues in the one writer with the changes
-- that cause them. The table is keyed by its primary key itself (WITHOUT ROWID: one B-tree
-- fewer per delivery written), and the due index holds only the pending deliveries (a
-- delivery that succeeded or failed for good leaves it, instead of moving to another key of
-- it), so it stays as small as the queue.
CREATE TABLE webhook_deliveries_new (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    locked_until TIMESTAMP,
    last_status INTEGER,
    last_duration_ms INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
INSERT INTO webhook_deliveries_new SELECT * FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, webhook_id, id);
