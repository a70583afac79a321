//! SQLite group commit. SQLite has one writer at a time and pays a fixed price per commit (WAL
//! frames, the full-text index's new segment: its queued changes are applied once per batch, just
//! before the commit, see `flush_search_index`), so one writer thread runs the queued write jobs
//! back to back inside a single `BEGIN IMMEDIATE ... COMMIT`, each job in its own savepoint
//! (`write_tx` nests as a savepoint while a batch is open). A job that fails rolls back only
//! its savepoint; callers hear their answer only after the commit succeeded. With a quiet queue
//! a batch is one job, so nothing waits for company.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};

use super::{AnyConnection, Pool};
use crate::error::ApiError;

/// Called after the batch ended: `Ok` when it committed.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut AnyConnection) -> Reply + Send>;

/// Most jobs committed together.
const MAX_BATCH: usize = 128;

thread_local! {
    static IN_BATCH: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside a writer batch (so `write_tx` must nest as a savepoint).
pub fn in_batch() -> bool {
    IN_BATCH.with(Cell::get)
}

#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Starts the writer thread over `pool` (a single-connection pool).
    pub fn start(pool: Pool) -> Result<Self, String> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(pool, queue))
            .map_err(|e| format!("cannot start the SQLite writer: {e}"))?;
        Ok(Self { jobs })
    }

    /// Runs `f` as part of the next batch and answers once that batch committed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel::<Result<T, ApiError>>();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |committed: Result<(), String>| {
                let _ = done.send(match (committed, result) {
                    (Ok(()), result) => result,
                    (Err(_), Err(own)) => Err(own),
                    (Err(e), Ok(_)) => Err(ApiError::Unavailable(format!("commit failed: {e}"))),
                });
            })
        });
        self.jobs.send(job).map_err(|_| ApiError::internal("the SQLite writer has stopped"))?;
        answer.await.map_err(|_| ApiError::Unavailable("the SQLite writer could not run the write".into()))?
    }
}

fn sqlite(conn: &mut AnyConnection) -> Option<&mut diesel::SqliteConnection> {
    super::on_backend!(conn, postgres: |_| None, sqlite: |c| Some(c))
}

/// How long the writer waits with nothing to do before tidying the search index.
const IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// More index segments than this are merged while the writer is idle.
pub const MAX_SEARCH_SEGMENTS: i64 = 4;

/// Pages of merge work per step; each step is its own short write transaction.
const MERGE_STEP_PAGES: i32 = 256;

/// Idle upkeep of the member search index. Every batch that changes it adds a segment, and a
/// search walks every segment, so while no write waits the writer merges them into one, a
/// bounded step at a time. A write that arrives meanwhile is handed back and runs first.
fn tidy_search_index(pool: &Pool, queue: &mpsc::Receiver<Job>) -> (bool, Option<Job>) {
    use diesel::RunQueryDsl;
    let Ok(mut conn) = pool.get() else { return (true, None) };
    let Some(c) = sqlite(&mut conn) else { return (false, None) };
    let count = "(SELECT count(DISTINCT segid) FROM memberships_fts_idx)";
    match diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(count)).get_result::<i64>(c) {
        Ok(n) if n <= MAX_SEARCH_SEGMENTS => return (false, None),
        Ok(_) => {}
        Err(e) => {
            log::warn!("cannot count the search index's segments: {e}");
            return (false, None);
        }
    }
    let step = format!("INSERT INTO memberships_fts (memberships_fts, rank) VALUES ('merge', -{MERGE_STEP_PAGES})");
    let total_changes = |c: &mut diesel::SqliteConnection| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("total_changes()")).get_result::<i64>(c)
    };
    loop {
        let worked = {
            let _process = super::SQLITE_WRITER.lock().unwrap_or_else(|p| p.into_inner());
            total_changes(c).and_then(|before| {
                diesel::sql_query(&step).execute(c)?;
                Ok(total_changes(c)? - before)
            })
        };
        match worked {
            // Fewer than two changes: nothing was left to merge (FTS5's documented signal).
            Ok(changes) if changes < 2 => return (false, None),
            Ok(_) => {}
            Err(e) => {
                log::warn!("merging the search index failed: {e}");
                return (false, None);
            }
        }
        if let Ok(job) = queue.try_recv() {
            return (true, Some(job));
        }
    }
}

fn writer_loop(pool: Pool, queue: mpsc::Receiver<Job>) {
    let mut untidy = true;
    let mut handed_back: Option<Job> = None;
    loop {
        let first = match handed_back.take() {
            Some(job) => job,
            None if untidy => match queue.recv_timeout(IDLE) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    (untidy, handed_back) = tidy_search_index(&pool, &queue);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        untidy = true;
        // Without a connection or a transaction the job cannot run: dropping it answers its
        // caller "unavailable".
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                log::warn!("SQLite writer cannot get its connection: {e}");
                drop(first);
                continue;
            }
        };
        let Some(c) = sqlite(&mut conn) else { continue };
        let _process = super::SQLITE_WRITER.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE") {
            log::warn!("SQLite writer cannot begin a transaction: {e}");
            drop(first);
            continue;
        }
        IN_BATCH.with(|b| b.set(true));
        let mut replies: Vec<Reply> = Vec::new();
        let mut poisoned = false;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match catch_unwind(AssertUnwindSafe(|| job(&mut conn))) {
                Ok(reply) => replies.push(reply),
                Err(_) => {
                    log::error!("a write job panicked; rolling its batch back");
                    poisoned = true;
                    break;
                }
            }
            if replies.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        IN_BATCH.with(|b| b.set(false));
        let Some(c) = sqlite(&mut conn) else { continue };
        let outcome = if poisoned {
            let _ = AnsiTransactionManager::rollback_transaction(c);
            Err("the batch was rolled back after a failure".to_string())
        } else {
            super::flush_search_index(c).and_then(|()| AnsiTransactionManager::commit_transaction(c)).map_err(|e| {
                let _ = AnsiTransactionManager::rollback_transaction(c);
                e.to_string()
            })
        };
        for reply in replies {
            reply(outcome.clone());
        }
    }
}
