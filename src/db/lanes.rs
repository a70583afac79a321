//! PostgreSQL: database work runs on a fixed set of threads ("lanes"), one per pooled
//! connection, that take jobs from one queue in the order they came.
//!
//! Through actix's blocking pool every request took a blocking thread and then waited in the
//! r2d2 pool for a connection. With a pool as small as a database on few cores wants (8 on 2
//! cores), dozens of threads waited there, and r2d2's waiters wake in no particular order: the
//! slowest requests waited over a second. A fair queue in front of the blocking pool (a
//! semaphore) fixed the order but added a thread hop between a connection coming free and its
//! next job, which on a small pool left the connections idle a fifth of the time. Here a lane
//! that finishes a job takes the next one straight from the queue, on the thread that holds the
//! connection, first come first served.
//!
//! Writes have lanes of their own, a quarter of the connections (at most 4): a tenant's writes
//! meet at its counter rows (events, member lists), which each holds while it commits, so past
//! a few writers more of them only queue inside PostgreSQL, where every commit wakes the
//! waiters to fight for the row again. Member creation on 2 cores: 550/s with all 32
//! connections writing, 1,000-1,350/s with 2 to 6 of them. Reads keep the rest, so a burst of
//! writes never holds up the reads.
//!
//! A job that waited longer than the pool's checkout timeout is answered 503 without running,
//! as a pool checkout that timed out was. A job that panics is answered as failed; its lane
//! carries on. A job answered 503 has its connection tried: one the server dropped (a
//! restart, a failover) is not given back to the pool, which opens a new one (diesel notices a
//! dropped connection only on some of the ways a statement fails; on the others the pool kept
//! handing it out, and every request it served failed).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::{AnyConnection, Pool};
use crate::error::ApiError;

/// A job: runs on the lane's connection (or is told why there is none); says whether it was
/// answered 503, when the connection may have been lost.
type Job = Box<dyn FnOnce(Result<&mut AnyConnection, ApiError>) -> bool + Send>;

/// How long a job may wait for a lane (the pool's checkout timeout).
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Lanes {
    reads: crossbeam_channel::Sender<(Instant, Job)>,
    writes: crossbeam_channel::Sender<(Instant, Job)>,
}

impl Lanes {
    /// Starts one lane per connection of `pool`: [`write_lanes`] of them for writes, the rest
    /// for reads.
    pub fn start(pool: Pool) -> Result<Self, String> {
        let size = pool.max_size();
        let (reads, read_queue) = crossbeam_channel::unbounded::<(Instant, Job)>();
        let writers = write_lanes(size);
        let (writes, write_queue) = match writers {
            0 => (reads.clone(), read_queue.clone()),
            _ => crossbeam_channel::unbounded::<(Instant, Job)>(),
        };
        for i in 0..size {
            let (pool, queue, name) = match i < writers {
                true => (pool.clone(), write_queue.clone(), format!("db-write-{i}")),
                false => (pool.clone(), read_queue.clone(), format!("db-lane-{}", i - writers)),
            };
            std::thread::Builder::new()
                .name(name)
                .spawn(move || lane(pool, queue))
                .map_err(|e| format!("cannot start a database thread: {e}"))?;
        }
        Ok(Self { reads, writes })
    }

    /// Runs `f` on the next free read lane with its connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        send(&self.reads, f).await
    }

    /// Runs `f` on the next free write lane with its connection.
    pub async fn run_write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        send(&self.writes, f).await
    }
}

/// How many of `size` connections write: a quarter, at least 1, at most 4; none of their own
/// (writes share the read lanes) below 3 connections.
fn write_lanes(size: u32) -> u32 {
    match size {
        0..=2 => 0,
        _ => (size / 4).clamp(1, 4),
    }
}

async fn send<T, F>(queue: &crossbeam_channel::Sender<(Instant, Job)>, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let (done, answer) = tokio::sync::oneshot::channel::<Result<T, ApiError>>();
    let job: Job = Box::new(move |conn| {
        let out = conn.and_then(f);
        let unavailable = matches!(out, Err(ApiError::Unavailable(_)));
        let _ = done.send(out);
        unavailable
    });
    queue.send((Instant::now(), job)).map_err(|_| ApiError::internal("the database threads have stopped"))?;
    answer.await.map_err(|_| ApiError::internal("the database work failed (see the log)"))?
}

fn lane(pool: Pool, queue: crossbeam_channel::Receiver<(Instant, Job)>) {
    while let Ok((queued, job)) = queue.recv() {
        let waited = queued.elapsed();
        let run = AssertUnwindSafe(|| {
            if waited > MAX_WAIT {
                job(Err(ApiError::Unavailable(format!(
                    "the database is busy: no connection came free within {}s",
                    MAX_WAIT.as_secs()
                ))));
                return;
            }
            let mut conn = match pool.get() {
                Ok(conn) => conn,
                Err(e) => {
                    job(Err(ApiError::Unavailable(e.to_string())));
                    return;
                }
            };
            if job(Ok(&mut conn))
                && diesel::connection::SimpleConnection::batch_execute(&mut *conn, "SELECT 1").is_err()
            {
                log::warn!("a database connection was lost; the pool opens a new one");
                super::connection_lost();
            }
        });
        if catch_unwind(run).is_err() {
            log::error!("a database job panicked; its request was answered with an error");
        }
    }
}
