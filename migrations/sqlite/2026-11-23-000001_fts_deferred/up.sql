-- The member search index is brought up to date once per write transaction instead of once per
-- row change. FTS5 writes its pending changes out as a new index segment at every savepoint, and
-- the group-commit writer runs each write in its own savepoint, so per-row triggers produced one
-- segment (and the merging that follows) per write. Now the triggers only queue the change; the
-- code applies the queue just before each commit (`db::flush_search_index`).
DROP TRIGGER memberships_fts_insert;
DROP TRIGGER memberships_fts_delete;
DROP TRIGGER memberships_fts_update;

CREATE TABLE memberships_fts_pending (
    id INTEGER PRIMARY KEY,
    -- NULL: add (seq, search_text) to the index; 'delete': remove it.
    op TEXT,
    seq INTEGER NOT NULL,
    search_text TEXT NOT NULL
);

CREATE TRIGGER memberships_fts_insert AFTER INSERT ON memberships BEGIN
    INSERT INTO memberships_fts_pending (op, seq, search_text) VALUES (NULL, new.seq, new.search_text);
END;
CREATE TRIGGER memberships_fts_delete AFTER DELETE ON memberships BEGIN
    INSERT INTO memberships_fts_pending (op, seq, search_text) VALUES ('delete', old.seq, old.search_text);
END;
CREATE TRIGGER memberships_fts_update AFTER UPDATE OF search_text ON memberships BEGIN
    INSERT INTO memberships_fts_pending (op, seq, search_text) VALUES ('delete', old.seq, old.search_text);
    INSERT INTO memberships_fts_pending (op, seq, search_text) VALUES (NULL, new.seq, new.search_text);
END;
