-- The due index holds only the pending deliveries (see the SQLite migration of the same name):
-- a delivery that succeeded or failed for good leaves it instead of moving to another key of
-- it, so it stays as small as the queue.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
