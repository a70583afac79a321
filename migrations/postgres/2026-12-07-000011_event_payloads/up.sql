-- Each event's payload is stored once, in `events`: a delivery of a feed event refers to it by
-- the event's id (unique per tenant) and keeps no copy; `body` is only set for events that are
-- not in the feed (`webhook.test`). A delivery belongs to its tenant; deleting an endpoint
-- deletes its deliveries in the same transaction (store/webhooks.rs), so no foreign key to the
-- endpoint is checked (and key-share locked, by every concurrent writer) for every delivery.
CREATE UNIQUE INDEX events_id ON events (tenant_id, id);
ALTER TABLE webhook_deliveries ALTER COLUMN body DROP NOT NULL;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_tenant_id_webhook_id_fkey;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;
