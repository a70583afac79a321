DROP INDEX memberships_search_trgm;
CREATE INDEX memberships_search_trgm ON memberships USING gin (search_text gin_trgm_ops)
    WITH (gin_pending_list_limit = 64);
