//! Per-client and per-recipient request limits, answered with 429 and `Retry-After`. Keyed
//! limits use the generic cell rate algorithm (GCRA): a burst of the whole allowance, then one
//! more each `period / allowance`. On PostgreSQL the state lives in the database
//! (`rate_limits`: one row per bucket with its theoretical arrival time, taken in one
//! statement), so every instance shares it and a client spread over several gets the
//! configured allowance, not a multiple of it. On SQLite (one instance by design), and on
//! PostgreSQL should that statement fail, the state is this instance's memory (`governor`).
//! A shared take moves a whole lease of [`Limit::lease_size`] requests (1% of the allowance, at
//! least one) into the instance, which spends it from memory: a key making thousands of
//! requests a second costs the database one statement per lease, not one per request, and no
//! longer queues every request on one row's lock. Across instances a client still gets at most
//! the allowance, and at least the allowance less one lease per instance.
//! Clients are told apart by [`client_key`]. Must never key a limit on a header a client can
//! set unless a trusted proxy set it (`auth::client_addr`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::db::{self, BackendKind, Db};
use crate::error::ApiError;

/// One kind of limit: `allowance` requests per `period` for each key; off when 0.
pub struct Limit {
    /// This instance's state: the only one on SQLite, the fallback on PostgreSQL.
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Names the limit's buckets in the shared table.
    name: &'static str,
    what: &'static str,
    allowance: u32,
    period: Duration,
    /// The database that holds the shared state (PostgreSQL only).
    shared: Option<Db>,
    /// Requests already taken from the shared state and not yet spent, per key.
    leases: Mutex<HashMap<String, Lease>>,
}

/// Part of a shared take that this instance has yet to spend.
struct Lease {
    left: u32,
    /// Taken at: a lease older than the period is dropped unspent.
    at: Instant,
}

/// More leased keys than this and the map is swept of stale leases.
const LEASES_SWEPT_PAST: usize = 4096;

/// Why a request did not fit.
enum Refused {
    /// The allowance is used up for now: this long until the request would fit.
    Wait(Duration),
    /// More at once than the whole allowance.
    TooMany,
}

impl Limit {
    /// `allowance` 0 switches the limit off. With `shared` (a PostgreSQL database), the state
    /// is kept there for every instance.
    pub fn new(name: &'static str, what: &'static str, allowance: u32, period: Duration, shared: Option<Db>) -> Self {
        let limiter = NonZeroU32::new(allowance)
            .and_then(|n| Quota::with_period(period / n.get()).map(|q| governor::RateLimiter::keyed(q.allow_burst(n))));
        let shared = shared.filter(|db| db.kind() == BackendKind::Postgres);
        Self { limiter, name, what, allowance, period, shared, leases: Mutex::new(HashMap::new()) }
    }

    /// Requests one shared take moves into the instance: 1% of the allowance, at least one
    /// (so small allowances stay exact across instances).
    pub fn lease_size(&self) -> u32 {
        (self.allowance / 100).max(1)
    }

    /// Spends one request of `key`'s lease, if this instance holds one.
    fn spend_lease(&self, key: &str) -> bool {
        if self.shared.is_none() {
            return false;
        }
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(key) {
            Some(lease) if lease.left > 0 && lease.at.elapsed() < self.period => {
                lease.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Keeps `left` requests of a shared take just made for `key`.
    fn keep_lease(&self, key: &str, left: u32) {
        if left == 0 {
            return;
        }
        let period = self.period;
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if leases.len() >= LEASES_SWEPT_PAST {
            leases.retain(|_, lease| lease.left > 0 && lease.at.elapsed() < period);
        }
        // Requests that missed together each took a lease: their rests add up.
        let lease = leases.entry(key.to_string()).or_insert(Lease { left: 0, at: Instant::now() });
        if lease.at.elapsed() >= period {
            *lease = Lease { left: 0, at: Instant::now() };
        }
        lease.left = lease.left.saturating_add(left);
    }

    /// What a take of `n` for `key` asks of the shared state: a whole lease when `n` is one
    /// (with the single request to fall back on should the lease not fit), else `n`.
    fn shared_plan(&self, key: &str, n: NonZeroU32) -> Option<SharedPlan> {
        let size = if n == NonZeroU32::MIN { NonZeroU32::new(self.lease_size()).unwrap_or(n) } else { n };
        let first = self.shared_take(key, size)?;
        let fallback = (size > n).then(|| self.shared_take(key, n)).flatten();
        Some(SharedPlan { first, leased: size.get() - n.get(), fallback })
    }

    /// Settles a plan's answer: keeps the lease's rest for `key` when it was taken.
    fn settle(&self, key: &str, leased: u32, answer: PlanAnswer) -> Result<(), Refused> {
        match answer {
            PlanAnswer::Leased => {
                self.keep_lease(key, leased);
                Ok(())
            }
            PlanAnswer::Single(wait) => fitted(wait),
        }
    }

    /// Takes one request for the client of `req` ([`client_key`]): 429 with the wait when its
    /// allowance is used up.
    pub async fn check_client(&self, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
        self.check(&client_key(req)).await
    }

    /// Takes one request for `key`: 429 with the wait when the allowance is used up.
    pub async fn check(&self, key: &str) -> Result<(), ApiError> {
        self.check_for(key, "from you").await
    }

    /// Like [`Limit::check`], for a limit on something other than the caller.
    pub async fn check_for(&self, key: &str, whose: &str) -> Result<(), ApiError> {
        self.try_take(key).await.map_err(|wait| self.too_many(wait, whose))
    }

    /// Takes `n` at once for `key` (a whole batch, or nothing): 429 when they do not fit.
    pub async fn check_n(&self, key: &str, n: usize, whose: &str) -> Result<(), ApiError> {
        let Some(count) = u32::try_from(n).ok().and_then(NonZeroU32::new) else { return Ok(()) };
        match self.take(key, count).await {
            Ok(()) => Ok(()),
            Err(Refused::Wait(wait)) => {
                let wait = wait.as_secs().max(1);
                Err(ApiError::TooManyRequests {
                    detail: format!("{n} is more {} than are left {whose}; try again in {wait} seconds", self.what),
                    retry_after_secs: wait,
                })
            }
            Err(Refused::TooMany) => Err(ApiError::TooManyRequests {
                detail: format!("{n} is more {} than are allowed {whose}; send fewer at a time", self.what),
                retry_after_secs: 3600,
            }),
        }
    }

    /// Takes one request for `key`, or says how long until one is allowed.
    pub async fn try_take(&self, key: &str) -> Result<(), Duration> {
        self.take(key, NonZeroU32::MIN).await.map_err(|refused| match refused {
            Refused::Wait(wait) => wait,
            Refused::TooMany => self.period,
        })
    }

    /// [`Limit::check`] on a connection the caller already holds, outside any transaction
    /// (the API key guard, which checks the key on it): the shared state costs one statement
    /// there and no further round trip.
    pub fn check_on(&self, conn: &mut db::AnyConnection, key: &str) -> Result<(), ApiError> {
        let n = NonZeroU32::MIN;
        if self.allowance == 0 || self.spend_lease(key) {
            return Ok(());
        }
        let taken = match self.shared_plan(key, n) {
            Some(plan) if conn.kind() == BackendKind::Postgres => match run_plan(conn, &plan) {
                Ok(answer) => self.settle(key, plan.leased, answer),
                Err(e) => {
                    log::warn!("shared rate limit unavailable, this instance's applies: {e}");
                    self.take_here(key, n)
                }
            },
            _ => self.take_here(key, n),
        };
        taken.map_err(|refused| match refused {
            Refused::Wait(wait) => self.too_many(wait, "from you"),
            Refused::TooMany => self.too_many(self.period, "from you"),
        })
    }

    fn too_many(&self, wait: Duration, whose: &str) -> ApiError {
        ApiError::TooManyRequests {
            detail: format!("too many {} {whose}; try again in {} seconds", self.what, wait.as_secs().max(1)),
            retry_after_secs: wait.as_secs().max(1),
        }
    }

    /// Takes `n` for `key` from the shared state when there is one, else from this
    /// instance's.
    async fn take(&self, key: &str, n: NonZeroU32) -> Result<(), Refused> {
        if self.allowance == 0 {
            return Ok(());
        }
        if n.get() > self.allowance {
            return Err(Refused::TooMany);
        }
        if n == NonZeroU32::MIN && self.spend_lease(key) {
            return Ok(());
        }
        if let (Some(db), Some(plan)) = (&self.shared, self.shared_plan(key, n)) {
            let leased = plan.leased;
            match db::run(db, move |conn| run_plan(conn, &plan)).await {
                Ok(answer) => return self.settle(key, leased, answer),
                Err(e) => log::warn!("shared rate limit unavailable, this instance's applies: {e}"),
            }
        }
        self.take_here(key, n)
    }

    /// What taking `n` for `key` from the shared state means, when the state is shared and
    /// the limit on.
    fn shared_take(&self, key: &str, n: NonZeroU32) -> Option<SharedTake> {
        if self.shared.is_none() || self.allowance == 0 {
            return None;
        }
        let period_us = i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX);
        let cost_us = period_us / i64::from(self.allowance) * i64::from(n.get());
        Some(SharedTake { bucket: bucket(self.name, key), cost_us, period_us })
    }

    fn take_here(&self, key: &str, n: NonZeroU32) -> Result<(), Refused> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        match limiter.check_key_n(&key.to_string(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refused::Wait(not_until.wait_time_from(DefaultClock::default().now()))),
            Err(_) => Err(Refused::TooMany),
        }
    }
}

/// A bucket's name in the shared table: a digest, so that no address or email is stored.
fn bucket(name: &str, key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{name}\n{key}").as_bytes());
    crate::domain::password::hex_lower(&digest[..16])
}

/// One take from a shared bucket: its name, the cost and the period in microseconds.
struct SharedTake {
    bucket: String,
    cost_us: i64,
    period_us: i64,
}

/// A take from the shared state: `first` (a lease of `leased` more than asked, or just what
/// was asked), then `fallback` (just what was asked) should a lease not fit.
struct SharedPlan {
    first: SharedTake,
    leased: u32,
    fallback: Option<SharedTake>,
}

/// What a [`SharedPlan`] came to.
enum PlanAnswer {
    /// The first take fitted.
    Leased,
    /// Only what was asked was tried last: fitted (`None`) or the wait in microseconds.
    Single(Option<i64>),
}

/// Runs a plan: one statement, two when a lease did not fit.
fn run_plan(conn: &mut db::AnyConnection, plan: &SharedPlan) -> Result<PlanAnswer, ApiError> {
    let wait = take_shared(conn, &plan.first)?;
    match (wait, &plan.fallback) {
        (None, _) => Ok(PlanAnswer::Leased),
        (Some(wait), None) => Ok(PlanAnswer::Single(Some(wait))),
        (Some(_), Some(one)) => Ok(PlanAnswer::Single(take_shared(conn, one)?)),
    }
}

/// A shared take's answer: fitted (`None`) or the wait in microseconds.
fn fitted(wait_us: Option<i64>) -> Result<(), Refused> {
    match wait_us {
        None => Ok(()),
        Some(us) => Err(Refused::Wait(Duration::from_micros(u64::try_from(us).unwrap_or(0)))),
    }
}

/// One row of [`TAKE`].
#[derive(diesel::QueryableByName)]
struct Taken {
    #[diesel(sql_type = BigInt)]
    now_us: i64,
    #[diesel(sql_type = Bool)]
    taken: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    tat_us: Option<i64>,
}

/// GCRA in one statement, in microseconds on the database's clock (`$1` bucket, `$2` cost,
/// `$3` period): the bucket's theoretical arrival time moves on by the cost from now or from
/// where it stood, whichever is later, unless that would put it more than a period ahead. The
/// row lock of `ON CONFLICT DO UPDATE` makes concurrent takers (on any instance) queue. The
/// outer `SELECT` sees the row as it was before the statement, which gives the wait when the
/// request did not fit. Rows behind the clock are as good as absent: housekeeping removes them.
const TAKE: &str = "
WITH clock AS (SELECT (extract(epoch FROM now()) * 1000000)::bigint AS now_us),
taken AS (
    INSERT INTO rate_limits AS r (bucket, tat_us)
    SELECT $1, now_us + $2 FROM clock
    ON CONFLICT (bucket) DO UPDATE SET tat_us = GREATEST(r.tat_us, EXCLUDED.tat_us - $2) + $2
    WHERE GREATEST(r.tat_us, EXCLUDED.tat_us - $2) + $2 <= EXCLUDED.tat_us - $2 + $3
    RETURNING 1
)
SELECT clock.now_us, EXISTS (SELECT 1 FROM taken) AS taken,
       (SELECT tat_us FROM rate_limits WHERE bucket = $1) AS tat_us
FROM clock";

/// Takes from a shared bucket: `None` when it fit, else the wait in microseconds.
fn take_shared(conn: &mut db::AnyConnection, take: &SharedTake) -> Result<Option<i64>, ApiError> {
    let SharedTake { bucket, cost_us, period_us } = take;
    let (cost_us, period_us) = (*cost_us, *period_us);
    use diesel::RunQueryDsl;
    db::on_backend!(conn,
        postgres: |c| {
            let row: Taken = diesel::sql_query(TAKE)
                .bind::<Text, _>(bucket)
                .bind::<BigInt, _>(cost_us)
                .bind::<BigInt, _>(period_us)
                .get_result(c)?;
            if row.taken {
                return Ok(None);
            }
            let wait = row.tat_us.map_or(cost_us, |tat| tat + cost_us - row.now_us - period_us);
            Ok(Some(wait.max(0)))
        },
        sqlite: |_| Err(ApiError::internal("the shared rate limit is kept on PostgreSQL only")),
    )
}

/// The limits one instance applies.
pub struct RateLimits {
    /// Sign-in attempts per client address.
    pub login: Limit,
    /// Password-reset requests and confirmations per client address.
    pub reset: Limit,
    /// Emails per recipient (beyond it a self-service reset still answers 202 and sends nothing;
    /// an admin's request answers 429).
    pub recipient_emails: Limit,
    /// Invitation look-ups and acceptances per client address.
    pub invite: Limit,
    /// Invitation and reset emails per tenant.
    pub tenant_emails: Limit,
    /// Requests per API key (also app data of its own, for the guard).
    pub api_key: std::sync::Arc<ApiKeyLimit>,
}

/// Requests per API key and minute; the guards take one for every request a key makes, on the
/// connection they check the key on ([`Limit::check_on`]).
pub struct ApiKeyLimit(pub Limit);

impl RateLimits {
    /// The limits of `config`; on PostgreSQL they are shared through `db`.
    pub fn new(config: &crate::config::Config, db: &Db) -> Self {
        Self {
            login: Limit::new("login", "sign-in attempts", config.rate_login_per_minute, MINUTE, Some(db.clone())),
            reset: Limit::new("reset", "password reset requests", config.rate_reset_per_hour, HOUR, Some(db.clone())),
            recipient_emails: Limit::new(
                "recipient-emails",
                "emails to this address",
                config.rate_emails_per_recipient_per_hour,
                HOUR,
                Some(db.clone()),
            ),
            invite: Limit::new("invite", "invitation requests", config.rate_invite_per_hour, HOUR, Some(db.clone())),
            tenant_emails: Limit::new(
                "tenant-emails",
                "emails from this tenant",
                config.rate_tenant_emails_per_hour,
                HOUR,
                Some(db.clone()),
            ),
            api_key: std::sync::Arc::new(ApiKeyLimit(Limit::new(
                "api-key",
                "requests with this API key",
                config.rate_api_key_per_minute,
                MINUTE,
                Some(db.clone()),
            ))),
        }
    }
}

impl RateLimits {
    /// An email a tenant's owner or admin asks for: within the tenant's and the recipient's
    /// hourly allowances, else 429.
    pub async fn tenant_email(&self, tenant: &str, recipient: &str) -> Result<(), ApiError> {
        self.tenant_emails.check_for(tenant, "this hour").await?;
        self.recipient_emails.check_for(&recipient.to_lowercase(), "this hour").await
    }
}

/// The client a request comes from: its address (`auth::client_addr`: the peer, or behind a
/// trusted proxy the client that the proxy names; never a header an untrusted peer sent).
pub fn client_key(req: &actix_web::HttpRequest) -> String {
    super::client_addr::client_addr(req).map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
