//! Per-client and per-recipient request limits (in memory, per instance), answered with 429 and
//! `Retry-After`. Keyed limits use the generic cell rate algorithm from `governor`: a burst of
//! the whole allowance, then one more each `period / allowance`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// One kind of limit: `allowance` requests per `period` for each key; `None` when switched off.
pub struct Limit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    what: &'static str,
}

impl Limit {
    /// `allowance` 0 switches the limit off.
    pub fn new(what: &'static str, allowance: u32, period: Duration) -> Self {
        let limiter = NonZeroU32::new(allowance)
            .and_then(|n| Quota::with_period(period / n.get()).map(|q| governor::RateLimiter::keyed(q.allow_burst(n))));
        Self { limiter, what }
    }

    /// Takes one request for `key`: 429 with the wait when the allowance is used up.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        self.try_take(key).map_err(|wait| ApiError::TooManyRequests {
            detail: format!("too many {} from you; try again in {} seconds", self.what, wait.as_secs().max(1)),
            retry_after_secs: wait.as_secs().max(1),
        })
    }

    /// Like [`Limit::check`], for a limit on something other than the caller.
    pub fn check_for(&self, key: &str, whose: &str) -> Result<(), ApiError> {
        self.try_take(key).map_err(|wait| ApiError::TooManyRequests {
            detail: format!("too many {} {whose}; try again in {} seconds", self.what, wait.as_secs().max(1)),
            retry_after_secs: wait.as_secs().max(1),
        })
    }

    /// Takes `n` at once for `key` (a whole batch, or nothing): 429 when they do not fit.
    pub fn check_n(&self, key: &str, n: usize, whose: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let Some(count) = u32::try_from(n).ok().and_then(NonZeroU32::new) else { return Ok(()) };
        match limiter.check_key_n(&key.to_string(), count) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1);
                Err(ApiError::TooManyRequests {
                    detail: format!("{n} is more {} than are left {whose}; try again in {wait} seconds", self.what),
                    retry_after_secs: wait,
                })
            }
            Err(_) => Err(ApiError::TooManyRequests {
                detail: format!("{n} is more {} than are allowed {whose}; send fewer at a time", self.what),
                retry_after_secs: 3600,
            }),
        }
    }

    /// Takes one request for `key`, or says how long until one is allowed.
    pub fn try_take(&self, key: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(&key.to_string()).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
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

/// Requests per API key and minute; the tenant guard takes one for every request a key makes.
pub struct ApiKeyLimit(pub Limit);

impl RateLimits {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            login: Limit::new("sign-in attempts", config.rate_login_per_minute, Duration::from_secs(60)),
            reset: Limit::new("password reset requests", config.rate_reset_per_hour, Duration::from_secs(3600)),
            recipient_emails: Limit::new(
                "emails to this address",
                config.rate_emails_per_recipient_per_hour,
                Duration::from_secs(3600),
            ),
            invite: Limit::new("invitation requests", config.rate_invite_per_hour, Duration::from_secs(3600)),
            tenant_emails: Limit::new(
                "emails from this tenant",
                config.rate_tenant_emails_per_hour,
                Duration::from_secs(3600),
            ),
            api_key: std::sync::Arc::new(ApiKeyLimit(Limit::new(
                "requests with this API key",
                config.rate_api_key_per_minute,
                Duration::from_secs(60),
            ))),
        }
    }
}

impl RateLimits {
    /// An email a tenant's owner or admin asks for: within the tenant's and the recipient's
    /// hourly allowances, else 429.
    pub fn tenant_email(&self, tenant: &str, recipient: &str) -> Result<(), ApiError> {
        self.tenant_emails.check_for(tenant, "this hour")?;
        self.recipient_emails.check_for(&recipient.to_lowercase(), "this hour")
    }
}

/// The client a request comes from: the connection's peer address (not a header a client can
/// set).
pub fn client_key(req: &actix_web::HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}
