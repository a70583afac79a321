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
//! A job that waited longer than the pool's checkout timeout is answered 503 without running,
//! as a pool checkout that timed out was. A job that panics is answered as failed; its lane
//! carries on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::{AnyConnection, Pool};
use crate::error::ApiError;

type Job = Box<dyn FnOnce(Result<&mut AnyConnection, ApiError>) + Send>;

/// How long a job may wait for a lane (the pool's checkout timeout).
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Lanes {
    jobs: crossbeam_channel::Sender<(Instant, Job)>,
}

impl Lanes {
    /// Starts one lane per connection of `pool`.
    pub fn start(pool: Pool) -> Result<Self, String> {
        let (jobs, queue) = crossbeam_channel::unbounded::<(Instant, Job)>();
        for i in 0..pool.max_size() {
            let (pool, queue) = (pool.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("db-lane-{i}"))
                .spawn(move || lane(pool, queue))
                .map_err(|e| format!("cannot start a database thread: {e}"))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `f` on the next free lane with its connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel::<Result<T, ApiError>>();
        let job: Job = Box::new(move |conn| {
            let _ = done.send(conn.and_then(f));
        });
        self.jobs.send((Instant::now(), job)).map_err(|_| ApiError::internal("the database threads have stopped"))?;
        answer.await.map_err(|_| ApiError::internal("the database work failed (see the log)"))?
    }
}

fn lane(pool: Pool, queue: crossbeam_channel::Receiver<(Instant, Job)>) {
    while let Ok((queued, job)) = queue.recv() {
        let waited = queued.elapsed();
        let run = AssertUnwindSafe(|| {
            if waited > MAX_WAIT {
                return job(Err(ApiError::Unavailable(format!(
                    "the database is busy: no connection came free within {}s",
                    MAX_WAIT.as_secs()
                ))));
            }
            match pool.get() {
                Ok(mut conn) => job(Ok(&mut conn)),
                Err(e) => job(Err(ApiError::Unavailable(e.to_string()))),
            }
        });
        if catch_unwind(run).is_err() {
            log::error!("a database job panicked; its request was answered with an error");
        }
    }
}
