DROP TABLE rotated_refresh_tokens;
DROP TABLE sessions;
