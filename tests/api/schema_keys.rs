//! The schema a distributed PostgreSQL can shard by tenant (DESIGN.md section 6, README
//! "Sharding by tenant"), read from PostgreSQL's catalog after every migration: on each
//! tenant-owned table the primary key, every unique constraint or unique index, and every
//! foreign key to another tenant-owned table include `tenant_id`; only the tables of
//! [`GLOBAL_TABLES`] are exempt, and none of them points at a tenant-owned table.
//!
//! PostgreSQL only: on SQLite (one file, never sharded) these tests are skipped and say so.

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Nullable, Text};

use crate::helpers::{partitioned, spawn_app};

/// The global tables (reference or local tables in Citus terms): identities, tenants, the
/// signing keys, and the rows found by a token or a global name before any tenant is known.
/// Some carry a `tenant_id` column; it is data there, not their distribution key. Every other
/// table is tenant-owned and must carry `tenant_id` in its keys.
pub const GLOBAL_TABLES: &[&str] = &[
    // diesel's list of applied migrations
    "__diesel_schema_migrations",
    // identities and tenants themselves: users hold people of many tenants
    "tenants",
    "users",
    // the JWT signing keys of the whole installation
    "signing_keys",
    // found by a refresh token, a reset, confirmation, completion or SSO token or code
    "sessions",
    "rotated_refresh_tokens",
    "password_resets",
    "email_confirmations",
    "profile_completions",
    "sso_requests",
    "sso_codes",
    // a domain is claimed once across all tenants, looked up by a sign-in's email domain
    "domain_claims",
    // the mail queue, claimed by every instance across tenants (rows may have no tenant)
    "outbox",
    // per-client and per-key rate limits shared by the instances, by a digest of their key
    "rate_limits",
];

#[derive(QueryableByName, Debug)]
struct Table {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    has_tenant_id: bool,
    #[diesel(sql_type = Bool)]
    tenant_id_not_null: bool,
    #[diesel(sql_type = Bool)]
    partitioned: bool,
}

/// A primary key (`p`), unique constraint (`u`), unique index backing no constraint (`i`) or
/// foreign key (`f`), with its columns and, for a foreign key, the columns it references.
#[derive(QueryableByName, Debug)]
struct Key {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
    #[diesel(sql_type = Nullable<Text>)]
    references: Option<String>,
    #[diesel(sql_type = Array<Text>)]
    referenced_columns: Vec<String>,
    #[diesel(sql_type = Text)]
    definition: String,
}

const TABLES: &str = "
    SELECT c.relname::text AS name,
           a.attname IS NOT NULL AS has_tenant_id,
           coalesce(a.attnotnull, false) AS tenant_id_not_null,
           c.relkind = 'p' AS partitioned
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    ORDER BY 1";

/// Constraints declared on a table (not their copies on partitions), then unique indexes that
/// back no constraint; expression columns are left out of `columns`.
const KEYS: &str = "
    SELECT c.relname::text AS table_name, k.conname::text AS name, k.contype::text AS kind,
           array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, ord)
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.ord) AS columns,
           f.relname::text AS references,
           array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
                 JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.ord)
               AS referenced_columns,
           pg_get_constraintdef(k.oid) AS definition
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class f ON f.oid = k.confrelid
    WHERE n.nspname = current_schema() AND k.contype IN ('p', 'u', 'f') AND k.conparentid = 0
      AND NOT c.relispartition
    UNION ALL
    SELECT c.relname::text, i.relname::text, 'i',
           array(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY u(num, ord)
                 JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.num ORDER BY u.ord),
           NULL, '{}'::text[], pg_get_indexdef(x.indexrelid)
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND x.indisunique AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                      WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x'))
    ORDER BY 1, 2";

/// What breaks the rule, one line per table and key; empty when the schema can be sharded.
fn violations(tables: &[Table], keys: &[Key]) -> Vec<String> {
    let global = |t: &str| GLOBAL_TABLES.contains(&t);
    let mut found = Vec::new();
    for listed in GLOBAL_TABLES {
        if !tables.iter().any(|t| t.name == *listed) {
            found.push(format!("{listed}: listed as global in GLOBAL_TABLES but no such table"));
        }
    }
    for table in tables.iter().filter(|t| !global(&t.name)) {
        if !table.has_tenant_id {
            found.push(format!(
                "{}: no tenant_id column, and not a global table (add tenant_id, or list it in GLOBAL_TABLES)",
                table.name
            ));
        } else if !table.tenant_id_not_null {
            found.push(format!("{}: tenant_id may be NULL (a row must belong to one tenant)", table.name));
        }
        if !keys.iter().any(|k| k.table_name == table.name && k.kind == "p") {
            found.push(format!("{}: no primary key (a tenant-owned table needs (tenant_id, ...))", table.name));
        }
    }
    for key in keys {
        let owner_global = global(&key.table_name);
        let with_tenant = key.columns.iter().any(|c| c == "tenant_id");
        let what = match key.kind.as_str() {
            "p" => "primary key",
            "u" => "unique constraint",
            "i" => "unique index",
            _ => "foreign key",
        };
        match key.kind.as_str() {
            "p" | "u" | "i" if !owner_global && !with_tenant => {
                found.push(format!("{}: {what} {} lacks tenant_id: {}", key.table_name, key.name, key.definition))
            }
            "f" => {
                let target = key.references.as_deref().unwrap_or_default();
                if global(target) {
                    continue;
                }
                if owner_global {
                    found.push(format!(
                        "{}: foreign key {} of a global table references tenant-owned {target}: {}",
                        key.table_name, key.name, key.definition
                    ));
                    continue;
                }
                // tenant_id must meet tenant_id: the referenced row is of the same tenant.
                let paired = key
                    .columns
                    .iter()
                    .zip(&key.referenced_columns)
                    .any(|(from, to)| from == "tenant_id" && to == "tenant_id");
                if !paired {
                    found.push(format!(
                        "{}: foreign key {} to tenant-owned {target} does not pair tenant_id with tenant_id: {}",
                        key.table_name, key.name, key.definition
                    ));
                }
            }
            _ => {}
        }
    }
    found
}

fn catalog(url: &str) -> (Vec<Table>, Vec<Key>) {
    let mut conn = diesel::PgConnection::establish(url).expect("test database reachable");
    let tables = diesel::sql_query(TABLES).load::<Table>(&mut conn).expect("tables from pg_class");
    let keys = diesel::sql_query(KEYS).load::<Key>(&mut conn).expect("keys from pg_constraint and pg_index");
    (tables, keys)
}

/// Every tenant-owned table keys and references by `tenant_id`; the global tables are the
/// listed ones and point at no tenant-owned table. Skipped on SQLite.
#[tokio::test]
async fn tenant_owned_keys_include_tenant_id_on_postgres() {
    let app = spawn_app().await;
    if !app.db.url.starts_with("postgres") {
        eprintln!("skipped: the sharding keys are checked on PostgreSQL only (set TEST_DATABASE_URL)");
        return;
    }
    let (tables, keys) = catalog(&app.db.url);
    assert!(tables.iter().any(|t| t.name == "memberships"), "the catalog query sees the schema: {tables:?}");
    assert!(keys.iter().any(|k| k.table_name == "regions" && k.kind == "f"), "and its foreign keys: {keys:?}");
    let found = violations(&tables, &keys);
    assert!(found.is_empty(), "keys a database sharded by tenant_id would refuse:\n  {}", found.join("\n  "));
}

/// The check itself: it names the table and key that break the rule.
#[test]
fn the_check_names_the_table_and_key_that_break_the_rule() {
    let table =
        |name: &str| Table { name: name.into(), has_tenant_id: true, tenant_id_not_null: true, partitioned: false };
    let key = |table: &str, name: &str, kind: &str, columns: &[&str], references: Option<&str>, to: &[&str]| Key {
        table_name: table.into(),
        name: name.into(),
        kind: kind.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        references: references.map(Into::into),
        referenced_columns: to.iter().map(|c| c.to_string()).collect(),
        definition: String::new(),
    };
    let mut tables: Vec<Table> = GLOBAL_TABLES.iter().map(|t| table(t)).collect();
    tables.push(table("regions"));
    tables.push(table("membership_regions"));
    let mut keys = vec![
        key("regions", "regions_pkey", "p", &["tenant_id", "id"], None, &[]),
        key("membership_regions", "membership_regions_pkey", "p", &["tenant_id", "user_id", "region_id"], None, &[]),
    ];
    assert_eq!(violations(&tables, &keys), Vec::<String>::new());
    keys.push(key("regions", "regions_slug", "i", &["slug"], None, &[]));
    keys.push(key("membership_regions", "mr_region_fkey", "f", &["region_id"], Some("regions"), &["id"]));
    keys.push(key("membership_regions", "mr_tenant_fkey", "f", &["tenant_id"], Some("tenants"), &["id"]));
    keys.push(key(
        "sessions",
        "sessions_region_fkey",
        "f",
        &["tenant_id", "region_id"],
        Some("regions"),
        &["tenant_id", "id"],
    ));
    let found = violations(&tables, &keys);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("regions: unique index regions_slug lacks tenant_id"), "{found:#?}");
    assert!(
        found[1].starts_with("membership_regions: foreign key mr_region_fkey to tenant-owned regions"),
        "{found:#?}"
    );
    assert!(found[2].starts_with("sessions: foreign key sessions_region_fkey of a global table"), "{found:#?}");
}

/// With `ROSTER_TEST_PARTITIONED=1`, the suite really runs on hash-partitioned tenant tables.
/// Skipped otherwise (and on SQLite).
#[tokio::test]
async fn tenant_owned_tables_are_hash_partitioned_in_the_partitioned_variant() {
    let app = spawn_app().await;
    if !app.db.url.starts_with("postgres") || !partitioned() {
        eprintln!("skipped: runs with TEST_DATABASE_URL and ROSTER_TEST_PARTITIONED=1 only");
        return;
    }
    let (tables, _) = catalog(&app.db.url);
    let wrong: Vec<String> = tables
        .iter()
        .filter(|t| !GLOBAL_TABLES.contains(&t.name.as_str()) && !t.partitioned)
        .map(|t| t.name.clone())
        .collect();
    assert!(wrong.is_empty(), "tenant-owned tables not partitioned: {wrong:?}");
    assert!(tables.iter().filter(|t| t.partitioned).all(|t| !GLOBAL_TABLES.contains(&t.name.as_str())));
}
