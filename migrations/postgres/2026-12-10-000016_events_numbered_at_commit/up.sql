-- Events are numbered when their transaction commits, not when they are written (issue 15).
-- Until now a writer took the tenant's next number with an update of `event_counters` in the
-- middle of its transaction and held that row until it ended, so all of a tenant's changes ran
-- one at a time for the rest of their transaction: the round trips after the update and the
-- commit, each waiting for a CPU under load (member creation: 530/s on 2 cores, 53 ms of every
-- create spent waiting for the row).
--
-- Now a writer adds its events here, unnumbered; at commit, the first of this deferred trigger's
-- firings takes as many numbers as the transaction wrote for the tenant (one update), moves the
-- rows into `events` in the order they were written, and empties this table of them, which
-- never holds a committed row. The counter's row is held only while PostgreSQL commits, with no
-- round trip to the application in between, and numbers still become visible in order: the
-- feed never shows number 7 while 6 could still appear.
--
-- Lock order: `member_list_versions` (whose triggers are deferred too, and fire in the order
-- their rows changed) before `event_counters`, in every transaction, so two writers of a tenant
-- never wait for each other in a circle.
-- `pos`: the order written, from a sequence of its own (not owned by the column, so the table
-- can be rebuilt, as tools/partition.sql does, without it).
CREATE SEQUENCE events_unnumbered_pos;
CREATE TABLE events_unnumbered (
    tenant_id TEXT NOT NULL,
    pos BIGINT NOT NULL DEFAULT nextval('events_unnumbered_pos'),
    id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (tenant_id, pos)
);

CREATE FUNCTION roster_number_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT;
    last BIGINT;
BEGIN
    -- The rest of this transaction's firings for the tenant: already numbered.
    IF current_setting('roster.events_numbered', true) = NEW.tenant_id THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM member_list_versions WHERE tenant_id = NEW.tenant_id FOR UPDATE;
    -- This firing's row is the transaction's first (rows are queued in the order written, and
    -- `pos` grows): the scans start there, past the deleted rows of earlier transactions.
    SELECT count(*) INTO n FROM events_unnumbered WHERE tenant_id = NEW.tenant_id AND pos >= NEW.pos;
    IF n > 0 THEN
        INSERT INTO event_counters AS c (tenant_id, last_seq) VALUES (NEW.tenant_id, n)
            ON CONFLICT (tenant_id) DO UPDATE SET last_seq = c.last_seq + n
            RETURNING c.last_seq INTO last;
        INSERT INTO events (tenant_id, seq, id, event_type, occurred_at, payload)
            SELECT tenant_id, last - n + row_number() OVER (ORDER BY pos), id, event_type, occurred_at, payload
            FROM events_unnumbered WHERE tenant_id = NEW.tenant_id AND pos >= NEW.pos
            ORDER BY pos;
        DELETE FROM events_unnumbered WHERE tenant_id = NEW.tenant_id AND pos >= NEW.pos;
    END IF;
    PERFORM set_config('roster.events_numbered', NEW.tenant_id, true);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER number_events
    AFTER INSERT ON events_unnumbered DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION roster_number_events();
