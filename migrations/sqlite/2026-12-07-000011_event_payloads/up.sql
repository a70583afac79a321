-- Each event's payload is stored once, in `events`: a delivery of a feed event refers to it by
-- the event's id (unique per tenant) and keeps no copy; `body` is only set for events that are
-- not in the feed (`webhook.test`). A delivery belongs to its tenant; deleting an endpoint
-- deletes its deliveries in the same transaction (store/webhooks.rs), so no foreign key to the
-- endpoint is checked (and, on PostgreSQL, key-share locked) for every delivery written.
CREATE UNIQUE INDEX events_id ON events (tenant_id, id);

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
);
INSERT INTO webhook_deliveries_new SELECT * FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, webhook_id, id);
