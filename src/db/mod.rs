//! Storage plumbing: the two-backend connection, the pool, migrations and transactions.
//!
//! Owns how we talk to SQLite and PostgreSQL, and the one place that reaches the backend's own
//! connection ([`on_backend!`]); knows nothing about tenants or policy. Every call through here
//! is synchronous: callers run it through `run` or `run_write` (SQLite: on the blocking pool,
//! writes on the group-commit writer; PostgreSQL: on one thread per connection, `lanes`).

pub mod among;
mod lanes;
pub mod models;
pub mod schema;
pub mod writer;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::ApiError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Runs a statement on the backend's own connection: for what the two-backend enum cannot
/// build (`on_conflict`, `for_update`, multi-row inserts, transaction control, backend SQL).
/// Every such statement in the crate goes through here.
///
/// - `on_backend!(conn, |c| statement)`: the same statement on either backend; it is
///   compiled once per backend, with `c` the `PgConnection` or the `SqliteConnection`.
/// - `on_backend!(conn, postgres: |c| statement, sqlite: |c| statement)`: one per backend
///   (`_` for a backend with nothing to do).
///
/// `conn` is a `&mut AnyConnection` (or an `AnyConnection` place); the value is the arm's.
macro_rules! on_backend {
    ($conn:expr, |$c:pat_param| $each:expr) => {
        match $conn {
            $crate::db::AnyConnection::Postgresql($c) => $each,
            $crate::db::AnyConnection::Sqlite($c) => $each,
        }
    };
    ($conn:expr, postgres: |$pg:pat_param| $on_pg:expr, sqlite: |$lite:pat_param| $on_lite:expr $(,)?) => {
        match $conn {
            $crate::db::AnyConnection::Postgresql($pg) => $on_pg,
            $crate::db::AnyConnection::Sqlite($lite) => $on_lite,
        }
    };
}
pub(crate) use on_backend;

/// The backend a URL selects, decided by its scheme alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

impl BackendKind {
    /// `postgres://` and `postgresql://` select PostgreSQL; `sqlite://`, `file:` and plain
    /// paths select SQLite. Anything else with a scheme is refused rather than guessed.
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite://") || url.starts_with("file:") || !url.contains("://") {
            Ok(Self::Sqlite)
        } else {
            Err(format!(
                "DATABASE_URL must start with postgres://, postgresql://, sqlite:// or file:, or be a file path (got {})",
                redact_url(url)
            ))
        }
    }
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// r2d2 manager that connects only the backend the URL's scheme names, so the real
/// connection error reaches the operator (the derived `establish` would try each backend).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    kind: BackendKind,
}

impl ConnectionManager {
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(Self { url: url.to_string(), kind: BackendKind::from_url(url)? })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("{0}")]
    Query(#[from] diesel::result::Error),
}

impl ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        match self.kind {
            BackendKind::Postgres => Ok(AnyConnection::Postgresql(diesel::PgConnection::establish(&self.url)?)),
            BackendKind::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(sqlite_path(&self.url))?;
                // Reads map the file (one copy of each page, shared through the OS page cache by
                // every pooled connection) instead of copying pages into each connection's cache.
                // Savepoint journals (one per job in a group commit) stay in memory, not in a
                // temporary file.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA mmap_size = 1073741824; PRAGMA temp_store = MEMORY;",
                )?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        LOST.take() || on_backend!(conn, |c| AnsiTransactionManager::is_broken_transaction_manager(c))
    }
}

thread_local! {
    /// The connection this thread holds was found lost ([`connection_lost`]).
    static LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the pooled connection this thread holds as lost: given back, the pool drops it
/// ([`ManageConnection::has_broken`] runs on the thread that gives it back) and opens another.
fn connection_lost() {
    LOST.set(true);
}

pub type Pool = r2d2::Pool<ConnectionManager>;

/// The database as the application uses it: a pool for reads and one for writes. On SQLite the
/// write pool is a single connection (SQLite has one writer; a lone writer keeps its page cache
/// warm); on PostgreSQL both are the same pool.
#[derive(Clone)]
pub struct Db {
    read: Pool,
    write: Pool,
    kind: BackendKind,
    /// SQLite only: the group-commit writer over `write`.
    writer: Option<writer::SqliteWriter>,
    /// PostgreSQL only: the threads that run database work, one per connection (`lanes`).
    lanes: Option<lanes::Lanes>,
}

impl Db {
    pub fn connect(url: &str, max_size: u32) -> Result<Self, String> {
        let kind = BackendKind::from_url(url)?;
        let read = build_pool(url, max_size)?;
        let write = match kind {
            BackendKind::Sqlite => build_pool(url, 1)?,
            BackendKind::Postgres => read.clone(),
        };
        let lanes = match kind {
            BackendKind::Postgres => Some(lanes::Lanes::start(read.clone())?),
            BackendKind::Sqlite => None,
        };
        Ok(Self { read, write, kind, writer: None, lanes })
    }

    /// Starts SQLite's group-commit writer (call once start-up work on the writer is done).
    pub fn start_writer(&mut self) -> Result<(), String> {
        if self.kind == BackendKind::Sqlite && self.writer.is_none() {
            self.writer = Some(writer::SqliteWriter::start(self.write.clone())?);
        }
        Ok(())
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Pool state for metrics: (read, write).
    pub fn pool_states(&self) -> (r2d2::State, r2d2::State) {
        (self.read.state(), self.write.state())
    }

    /// A connection for start-up work (migrations, keys): the writer.
    pub fn writer(&self) -> Result<PooledConn, String> {
        self.write.get().map_err(|e| format!("cannot connect to the database: {e}"))
    }
}
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

/// Builds the pool. For SQLite the parent directory is created and WAL is switched on once,
/// on a single connection, before any pooled connection exists.
pub fn build_pool(url: &str, max_size: u32) -> Result<Pool, String> {
    let manager = ConnectionManager::new(url)?;
    if manager.kind == BackendKind::Postgres {
        // One direct attempt first, so a wrong password or a down server is reported at once
        // and as it is (the pool would retry until its timeout and then summarise).
        manager.connect().map_err(|e| format!("cannot connect to PostgreSQL at {}: {e}", redact_url(url)))?;
    }
    if manager.kind == BackendKind::Sqlite {
        let path = std::path::Path::new(sqlite_path(url));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create database directory {}: {e}", dir.display()))?;
        }
        let mut conn = manager.connect().map_err(|e| format!("cannot open SQLite database {url}: {e}"))?;
        conn.batch_execute("PRAGMA journal_mode = WAL;").map_err(|e| format!("cannot switch SQLite to WAL: {e}"))?;
    }
    r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .test_on_check_out(false)
        .build(manager)
        .map_err(|e| format!("cannot connect to the database at {}: {e}", redact_url(url)))
}

impl AnyConnection {
    pub fn kind(&self) -> BackendKind {
        on_backend!(self, postgres: |_| BackendKind::Postgres, sqlite: |_| BackendKind::Sqlite)
    }
}

/// Applies pending migrations of the connection's backend; safe with several instances
/// starting at once (advisory lock on PostgreSQL, an immediate transaction on SQLite).
pub fn run_migrations(conn: &mut AnyConnection) -> Result<Vec<String>, String> {
    let names = |applied: Vec<diesel::migration::MigrationVersion<'_>>| -> Vec<String> {
        applied.iter().map(|m| m.to_string()).collect()
    };
    on_backend!(conn,
        postgres: |c| {
            c.batch_execute("SELECT pg_advisory_lock(72010501)").map_err(|e| e.to_string())?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(names).map_err(|e| e.to_string());
            let _ = c.batch_execute("SELECT pg_advisory_unlock(72010501)");
            result
        },
        sqlite: |c| {
            // Take the write lock first so a second migrator waits instead of colliding.
            c.batch_execute("BEGIN IMMEDIATE; COMMIT;").map_err(|e| e.to_string())?;
            c.run_pending_migrations(SQLITE_MIGRATIONS).map(names).map_err(|e| e.to_string())
        },
    )
}

/// SQLite has one writer at a time. Writers of this process queue here, so they never sit in
/// SQLite's busy handler (which sleeps in coarse steps); another process writing to the same
/// file is still waited for by `busy_timeout`.
pub(crate) static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` in a write transaction at the outermost level: `BEGIN IMMEDIATE` on SQLite, so
/// concurrent writers queue instead of failing, a plain transaction on PostgreSQL (callers
/// take row locks with [`lock_tenant`]).
pub fn write_tx<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let nested = writer::in_batch();
    let _writer = (conn.kind() == BackendKind::Sqlite && !nested)
        .then(|| SQLITE_WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    on_backend!(&mut *conn,
        postgres: |c| AnsiTransactionManager::begin_transaction(c)?,
        // Inside a writer batch the transaction is open: this becomes a savepoint.
        sqlite: |c| if nested {
            AnsiTransactionManager::begin_transaction(c)?
        } else {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        },
    );
    let mut result = f(conn);
    if result.is_ok()
        && !nested
        && let Err(e) = on_backend!(&mut *conn, postgres: |_| Ok(()), sqlite: |c| flush_search_index(c))
    {
        result = Err(e.into());
    }
    let end = match &result {
        Ok(_) => on_backend!(conn, |c| AnsiTransactionManager::commit_transaction(c)),
        Err(_) => on_backend!(conn, |c| AnsiTransactionManager::rollback_transaction(c)),
    };
    match (result, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// SQLite: applies the queued member-search changes (see the `fts_deferred` migration) inside
/// the open write transaction, right before its commit, so the index is current at every commit
/// and gains one segment per transaction rather than one per write.
pub fn flush_search_index(c: &mut diesel::SqliteConnection) -> QueryResult<()> {
    c.batch_execute(
        "INSERT INTO memberships_fts (memberships_fts, rowid, search_text) \
           SELECT op, seq, search_text FROM memberships_fts_pending ORDER BY id; \
         DELETE FROM memberships_fts_pending;",
    )
}

/// Escapes `%`, `_` and `\\` for a `LIKE ... ESCAPE '\\'` pattern (also PostgreSQL's default
/// escape, so a pattern without the clause reads the same).
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Serialises writers of one tenant: `SELECT ... FOR UPDATE` on the tenant row on
/// PostgreSQL; on SQLite the immediate transaction already holds the database write lock.
pub fn lock_tenant(conn: &mut AnyConnection, tenant_id: &str) -> Result<(), ApiError> {
    use schema::tenants::dsl as t;
    on_backend!(conn,
        postgres: |c| {
            t::tenants.filter(t::id.eq(tenant_id)).select(t::id).for_update().first::<String>(c)?;
        },
        sqlite: |_| {},
    );
    Ok(())
}

/// Like [`lock_tenant`], but shared: writers that only need the tenant's settings to stay put
/// (plan, seat limit) run in parallel, while a settings change waits for them. No-op on SQLite.
pub fn lock_tenant_shared(conn: &mut AnyConnection, tenant_id: &str) -> Result<(), ApiError> {
    use schema::tenants::dsl as t;
    on_backend!(conn,
        postgres: |c| {
            t::tenants.filter(t::id.eq(tenant_id)).select(t::id).for_share().first::<String>(c)?;
        },
        sqlite: |_| {},
    );
    Ok(())
}

/// Puts a tenant's seat-taking writes that hold its row shared (`FOR SHARE`: member creates) in
/// single file, for the rest of the transaction: a PostgreSQL advisory lock keyed on the tenant
/// (two tenants whose keys collide merely wait for each other). Writers that hold the row
/// exclusively are kept apart from these by the row lock itself. No-op on SQLite, whose writer
/// lock already puts every write in single file.
pub fn lock_tenant_seats(conn: &mut AnyConnection, tenant_id: &str) -> Result<(), ApiError> {
    on_backend!(conn,
        postgres: |c| {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(tenant_id)
                .execute(c)?;
        },
        sqlite: |_| {},
    );
    Ok(())
}

/// The database's own name for logs: "SQLite" or "PostgreSQL".
pub fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Postgres => "PostgreSQL",
        BackendKind::Sqlite => "SQLite",
    }
}

/// Runs a synchronous read on the blocking pool with a pooled connection.
pub async fn run<T, F>(db: &Db, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match &db.lanes {
        Some(lanes) => lanes.run(f).await,
        None => on_blocking_pool(db.read.clone(), f).await,
    }
}

/// Runs a synchronous write (use `write_tx` inside) on the blocking pool with the writer.
pub async fn run_write<T, F>(db: &Db, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match &db.writer {
        Some(writer) => writer.run(f).await,
        // PostgreSQL: the write pool is the read pool; writes run on its write lanes.
        None => match &db.lanes {
            Some(lanes) => lanes.run_write(f).await,
            None => on_blocking_pool(db.write.clone(), f).await,
        },
    }
}

async fn on_blocking_pool<T, F>(pool: Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(|e| ApiError::Unavailable(e.to_string()))?;
        f(&mut conn)
    })
    .await
    .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}
