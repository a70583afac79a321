INSERT INTO memberships_fts (memberships_fts, rowid, search_text)
    SELECT op, seq, search_text FROM memberships_fts_pending ORDER BY id;
DROP TRIGGER memberships_fts_update;
DROP TRIGGER memberships_fts_delete;
DROP TRIGGER memberships_fts_insert;
DROP TABLE memberships_fts_pending;
CREATE TRIGGER memberships_fts_insert AFTER INSERT ON memberships BEGIN
    INSERT INTO memberships_fts (rowid, search_text) VALUES (new.seq, new.search_text);
END;
CREATE TRIGGER memberships_fts_delete AFTER DELETE ON memberships BEGIN
    INSERT INTO memberships_fts (memberships_fts, rowid, search_text) VALUES ('delete', old.seq, old.search_text);
END;
CREATE TRIGGER memberships_fts_update AFTER UPDATE OF search_text ON memberships BEGIN
    INSERT INTO memberships_fts (memberships_fts, rowid, search_text) VALUES ('delete', old.seq, old.search_text);
    INSERT INTO memberships_fts (rowid, search_text) VALUES (new.seq, new.search_text);
END;
