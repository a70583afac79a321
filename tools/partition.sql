-- Hash-partitions every tenant-owned table of the current schema by `tenant_id`, after the
-- migrations: a test of the sharding rule that plain PostgreSQL can run. A partitioned table
-- refuses a primary key or unique constraint without its partition key, as Citus refuses one on
-- a table distributed by `tenant_id`; foreign keys and the member-list triggers come back on the
-- partitioned tables, so the application runs on them unchanged.
--
-- Defines `pg_temp.partition_by_tenant(global_tables, partitions)`, for this session only:
--
--   SELECT pg_temp.partition_by_tenant(ARRAY['tenants', 'users', ...], 4);
--
-- Tenant-owned: every table with a `tenant_id` column that `global_tables` does not name (the
-- list in tests/api/schema_keys.rs; `ROSTER_TEST_PARTITIONED=1` makes the tests run this on each
-- fresh test database). Each table is rebuilt as `PARTITION BY HASH (tenant_id)` with
-- `partitions` partitions (`<table>_p0`, ...), its rows copied, and its keys, indexes and
-- triggers recreated under their own names; the foreign keys from and to these tables are
-- dropped first and recreated last. Returns how many tables it partitioned.
CREATE FUNCTION pg_temp.partition_by_tenant(global_tables text[], partitions int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    tenant_tables text[];
    foreign_keys text[];
    statements text[];
    t text;
    s text;
    i int;
BEGIN
    SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname), '{}') INTO tenant_tables
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema()
      AND c.relkind = 'r'
      AND NOT c.relname = ANY (global_tables)
      AND EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped);

    -- Every foreign key that starts or ends at a table about to be rebuilt, as it is.
    SELECT coalesce(array_agg(format('ALTER TABLE %I ADD CONSTRAINT %I %s',
                                     src.relname, k.conname, pg_get_constraintdef(k.oid))), '{}')
    INTO foreign_keys
    FROM pg_constraint k
    JOIN pg_class src ON src.oid = k.conrelid
    JOIN pg_class dst ON dst.oid = k.confrelid
    JOIN pg_namespace n ON n.oid = src.relnamespace
    WHERE k.contype = 'f' AND k.conparentid = 0 AND n.nspname = current_schema()
      AND (src.relname::text = ANY (tenant_tables) OR dst.relname::text = ANY (tenant_tables));
    FOR s IN
        SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', src.relname, k.conname)
        FROM pg_constraint k
        JOIN pg_class src ON src.oid = k.conrelid
        JOIN pg_class dst ON dst.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = src.relnamespace
        WHERE k.contype = 'f' AND k.conparentid = 0 AND n.nspname = current_schema()
          AND (src.relname::text = ANY (tenant_tables) OR dst.relname::text = ANY (tenant_tables))
    LOOP
        EXECUTE s;
    END LOOP;

    FOREACH t IN ARRAY tenant_tables LOOP
        -- Keys, then the other indexes, then the triggers, each as the catalog defines it.
        SELECT array_agg(stmt ORDER BY ord) INTO statements FROM (
            SELECT 1 AS ord, format('ALTER TABLE %I ADD CONSTRAINT %I %s', t, k.conname,
                                    pg_get_constraintdef(k.oid)) AS stmt
            FROM pg_constraint k
            WHERE k.conrelid = format('%I', t)::regclass AND k.contype IN ('p', 'u', 'x')
            UNION ALL
            SELECT 2, pg_get_indexdef(x.indexrelid)
            FROM pg_index x
            WHERE x.indrelid = format('%I', t)::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                              WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid)
            UNION ALL
            SELECT 3, pg_get_triggerdef(g.oid)
            FROM pg_trigger g
            WHERE g.tgrelid = format('%I', t)::regclass AND NOT g.tgisinternal
        ) defs;

        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED '
                       'INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY HASH (tenant_id)',
                       t || '__hashed', t);
        FOR i IN 0 .. partitions - 1 LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                           t || '_p' || i, t || '__hashed', partitions, i);
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t || '__hashed', t);
        EXECUTE format('DROP TABLE %I', t);
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t || '__hashed', t);
        FOREACH s IN ARRAY coalesce(statements, '{}') LOOP
            EXECUTE s;
        END LOOP;
    END LOOP;

    FOREACH s IN ARRAY foreign_keys LOOP
        EXECUTE s;
    END LOOP;
    RETURN cardinality(tenant_tables);
END
$$;
