//! Password hashing: argon2id with OWASP parameters for anything a person typed, SHA-256 for
//! secrets the service generated. Hashing runs on `hash_concurrency` dedicated threads (each
//! argon2 hash holds 19 MiB), never on the actix workers.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Mutex;

use crate::domain::password::digest_generated;
use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// Argon2 runs on its own `concurrency` threads, at the lowest scheduling priority (nice 19): when
/// logins saturate the CPU, reads still get it first, and when nothing else runs, logins get
/// all of it.
#[derive(Clone)]
pub struct PasswordHashers {
    jobs: std::sync::mpsc::Sender<Job>,
    dummy_hash: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    // OWASP: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2id PHC string for a typed password (synchronous; call through `PasswordHashers`).
pub fn hash_typed_sync(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("argon2: {e}")))
}

/// Checks a password against a stored hash of either kind, in constant time for the digest.
pub fn verify_sync(password: &str, stored: &str) -> bool {
    if let Some(hex) = stored.strip_prefix("sha256:") {
        let got = digest_generated(&SecretString::from(password.to_string()));
        return constant_time_eq(got.as_bytes(), format!("sha256:{hex}").as_bytes());
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Compares secrets without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PasswordHashers {
    pub fn new(concurrency: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || {
                lower_priority();
                loop {
                    let job = match queue.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                log::error!("cannot start a password hashing thread: {e}");
            }
        }
        let dummy = hash_typed_sync("roster-dummy-password-for-timing").unwrap_or_default();
        Self { jobs, dummy_hash: Arc::new(dummy) }
    }

    async fn bounded<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(f());
            }))
            .map_err(|_| ApiError::internal("password hashing threads stopped"))?;
        result.await.map_err(|_| ApiError::internal("a password hashing job was dropped"))
    }

    /// Argon2id hash of a typed password.
    pub async fn hash(&self, password: &SecretString) -> Result<String, ApiError> {
        let pw = password.expose_secret().to_string();
        self.bounded(move || hash_typed_sync(&pw)).await?
    }

    /// Verifies against `stored`; with no stored hash, verifies against a dummy so unknown
    /// accounts take as long as wrong passwords.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> Result<bool, ApiError> {
        let pw = password.expose_secret().to_string();
        match stored {
            Some(h) if h.starts_with("sha256:") => {
                // A digest check is instant; pay the argon2 price anyway so response time
                // says nothing about which kind of password an account has.
                let ok = verify_sync(&pw, &h);
                let dummy = self.dummy_hash.clone();
                self.bounded(move || verify_sync("", &dummy)).await?;
                Ok(ok)
            }
            Some(h) => self.bounded(move || verify_sync(&pw, &h)).await,
            None => {
                let dummy = self.dummy_hash.clone();
                self.bounded(move || verify_sync(&pw, &dummy)).await?;
                Ok(false)
            }
        }
    }
}

/// Nice 19 for the calling thread (SCHED_OTHER, the lowest weight): a request thread that
/// wakes up takes the core first, yet logins keep a small guaranteed share however busy the
/// machine is (SCHED_IDLE measured no better here and could starve them). A hint, so failure
/// is only logged.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    // The cross-platform scale maps 0 to the lowest priority: nice 19 on Linux.
    match ThreadPriorityValue::try_from(0u8) {
        Ok(value) => {
            if let Err(e) = thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
                log::warn!("cannot lower the priority of a password hashing thread: {e:?}");
            }
        }
        Err(e) => log::warn!("bad thread priority value: {e:?}"),
    }
}
