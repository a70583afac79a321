ALTER INDEX memberships_search_trgm RESET (gin_pending_list_limit);
