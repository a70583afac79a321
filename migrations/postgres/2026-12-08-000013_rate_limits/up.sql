-- Rate limits shared by every instance (src/auth/rate_limit.rs): one row per bucket (a digest
-- of the limit's name and its key: a client address, a recipient, a tenant) holding its
-- theoretical arrival time in microseconds since the epoch. PostgreSQL only: SQLite runs one
-- instance and keeps its limits in memory. Rows behind the clock are removed by housekeeping.
-- UNLOGGED: no WAL, so a take costs about 0.2 ms instead of a commit flush (measured 0.2 ms
-- against 0.9 ms for a logged single-row insert); a crash or a failover empties the table,
-- which gives every client a fresh allowance and nothing worse.
CREATE UNLOGGED TABLE rate_limits (
    bucket TEXT PRIMARY KEY,
    tat_us BIGINT NOT NULL
);
