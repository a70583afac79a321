-- Deliveries are no longer written with the change (DESIGN.md section 14): the change writes
-- its event, and each endpoint follows its tenant's events with a cursor (`webhook_cursors`:
-- the last event number it has been given, and the lease of the instance sending what
-- follows). A delivery row is written once its first attempt has ended, with how it went; only
-- deliveries to try again are pending. A new or re-enabled endpoint starts at its tenant's
-- last event.
--
-- The deliveries table is keyed by endpoint (its log is a range of the key, so no index of its
-- own) and by its primary key itself (WITHOUT ROWID); the due index holds only the pending
-- deliveries, so it stays as small as the queue of retries.
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
    PRIMARY KEY (tenant_id, webhook_id, id)
) WITHOUT ROWID;
INSERT INTO webhook_deliveries_new SELECT * FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
