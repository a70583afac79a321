//! Configuration: environment variables -> typed `Config` (and the settings derived from it,
//! such as `SessionLimits`), plus fixed limits. Every variable is listed in README.

use std::path::PathBuf;

use secrecy::SecretString;

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 64 * 1024;

/// How long sessions last: `lifetime` from sign-in at most, and `idle` without a refresh.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub lifetime: chrono::Duration,
    pub idle: chrono::Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: `postgres://...`, `sqlite://path`, or a file path. Default: `<data dir>/roster.db`.
    pub database_url: String,
    /// `ROSTER_BIND`: address to listen on. Default `127.0.0.1:8080`.
    pub bind: String,
    /// `ROSTER_DATA_DIR`: where the SQLite file and local files live. Default `./data`.
    pub data_dir: PathBuf,
    /// `ROSTER_PUBLIC_URL`: the base URL people reach the service at (links, token issuer).
    pub public_url: String,
    /// `ROSTER_PLATFORM_TOKEN`: enables `POST /api/v1/tenants` for platform operators.
    pub platform_token: Option<SecretString>,
    /// `ROSTER_DEMO`: seed a demo tenant on an empty database. Default on.
    pub demo: bool,
    /// `ROSTER_ACCESS_TOKEN_TTL`: access token lifetime in seconds. Default 900.
    pub access_token_ttl_secs: i64,
    /// `ROSTER_DB_POOL_SIZE`: database connections per instance. Default 16.
    pub pool_size: u32,
    /// `ROSTER_WORKERS`: HTTP worker threads. Default: the number of cores.
    pub workers: usize,
    /// `ROSTER_HASH_CONCURRENCY`: argon2 hashes at once. Default: the number of cores.
    pub hash_concurrency: usize,
    /// `ROSTER_LIST_CACHE_BYTES`: member-list results kept in memory, in bytes
    /// (`store::members::list_cache`); 0 turns the cache off.
    pub list_cache_bytes: u64,
    /// `SMTP_URL`: deliver email over SMTP; unset, email is written to `<data dir>/outbox/`.
    pub smtp_url: Option<SecretString>,
    /// `ROSTER_MAIL_FROM`: the sender of every email.
    pub mail_from: String,
    /// `ROSTER_APP_URL`: where links in emails point (the product's front end).
    pub app_url: String,
    /// `ROSTER_RATE_LOGIN_PER_MINUTE`: sign-in attempts per client address (0: no limit).
    pub rate_login_per_minute: u32,
    /// `ROSTER_RATE_RESET_PER_HOUR`: password-reset requests per client address (0: no limit).
    pub rate_reset_per_hour: u32,
    /// `ROSTER_RATE_EMAILS_PER_RECIPIENT_PER_HOUR`: reset, invitation and set-password emails
    /// per recipient (0: no limit).
    pub rate_emails_per_recipient_per_hour: u32,
    /// `ROSTER_SESSION_DAYS`: a sign-in session lasts at most this long. Default 30.
    pub session_days: i64,
    /// `ROSTER_SESSION_IDLE_DAYS`: a session not refreshed for this long ends. Default 7.
    pub session_idle_days: i64,
    /// `ROSTER_LOCKOUT_THRESHOLD`: failed sign-ins in a row that lock an account (0: never).
    pub lockout_threshold: i32,
    /// `ROSTER_LOCKOUT_SECONDS`: the first lock's length; each further failure doubles it, up
    /// to an hour.
    pub lockout_secs: i64,
    /// `ROSTER_RATE_INVITE_PER_HOUR`: invitation look-ups and acceptances per client address.
    pub rate_invite_per_hour: u32,
    /// `ROSTER_RATE_TENANT_EMAILS_PER_HOUR`: invitation and reset emails one tenant may send.
    pub rate_tenant_emails_per_hour: u32,
    /// `ROSTER_RATE_API_KEY_PER_MINUTE`: requests per minute one API key may make (0: no limit).
    pub rate_api_key_per_minute: u32,
    /// `ROSTER_MASTER_KEY`: 32 bytes, base64; seals the signing key in the database. Default:
    /// the key file `<data dir>/master.key`, created on first start.
    pub master_key: Option<SecretString>,
    /// `ROSTER_CORS_ORIGINS`: browser origins (`https://app.example.com`, comma-separated)
    /// allowed to call the API; none by default.
    pub cors_origins: Vec<String>,
    /// `ROSTER_WEBHOOK_ALLOWED_HOSTS`: hosts (names or addresses, comma-separated) that webhooks
    /// may reach over plain http and at private or loopback addresses; none by default.
    pub webhook_allowed_hosts: Vec<String>,
    /// `ROSTER_WEBHOOK_RETRY_SECONDS`: the waits after each failed delivery attempt, in seconds.
    pub webhook_retry_secs: Vec<i64>,
    /// `ROSTER_EVENT_RETENTION_DAYS`: how long the event feed keeps events. Default 30.
    pub event_retention_days: i64,
    /// `ROSTER_DNS_RESOLVER`: the DNS server (`host:port`) that domain verification asks;
    /// default: the system's resolver.
    pub dns_resolver: Option<String>,
    /// `ROSTER_SSO_INSECURE_HOSTS`: hosts (names or addresses, comma-separated) that SSO's
    /// outbound calls (OIDC discovery, tokens, keys; SAML metadata) may reach over plain http
    /// and at private or loopback addresses; none by default (tests list 127.0.0.1).
    pub sso_insecure_hosts: Vec<String>,
    /// `ROSTER_TRUSTED_PROXIES`: proxies (CIDRs or addresses, comma-separated) whose
    /// `Forwarded` / `X-Forwarded-For` name the client (`auth::client_addr`); none by default.
    pub trusted_proxies: crate::auth::client_addr::TrustedProxies,
}

/// The Standard Webhooks schedule: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
pub const WEBHOOK_RETRY_SECS: [i64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

fn retry_schedule(raw: Option<String>) -> Result<Vec<i64>, String> {
    let Some(raw) = raw else { return Ok(WEBHOOK_RETRY_SECS.to_vec()) };
    let waits: Result<Vec<i64>, _> = raw.split(',').map(|s| s.trim().parse::<i64>()).collect();
    match waits {
        Ok(w) if !w.is_empty() && w.len() <= 20 && w.iter().all(|s| (1..=86_400).contains(s)) => Ok(w),
        _ => Err(format!(
            "ROSTER_WEBHOOK_RETRY_SECONDS={raw:?}: give 1 to 20 waits in seconds (1 to 86400), comma-separated"
        )),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| format!("{name}={v:?} is not a valid value")),
    }
}

/// `ROSTER_LIST_CACHE_BYTES` (default 32 MiB). The entry count it replaced,
/// `ROSTER_LIST_CACHE_ITEMS`, is still read when the new variable is unset: 0 still turns the
/// cache off, and a count becomes 256 bytes an entry.
fn list_cache_bytes() -> Result<u64, String> {
    if var("ROSTER_LIST_CACHE_BYTES").is_none()
        && let Some(items) = var("ROSTER_LIST_CACHE_ITEMS")
    {
        return items.trim().parse::<u64>().map(|n| n.saturating_mul(256)).map_err(|_| {
            format!(
                "ROSTER_LIST_CACHE_ITEMS={items:?} is not a valid value (it is replaced by ROSTER_LIST_CACHE_BYTES)"
            )
        });
    }
    parse_var("ROSTER_LIST_CACHE_BYTES", 32 * 1024 * 1024)
}

fn parse_bool(name: &str, default: bool) -> Result<bool, String> {
    match var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(format!("{name}={v:?}: use true or false")),
    }
}

/// `https://app.example.com, http://localhost:5173` -> each origin, checked: a scheme, a host,
/// an optional port, nothing else (a browser's `Origin` never has a path or a trailing `/`).
fn cors_origins(raw: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
        if !valid {
            return Err(format!(
                "ROSTER_CORS_ORIGINS: {origin:?} is not an origin; write it as a browser sends it, like https://app.example.com or http://localhost:5173"
            ));
        }
        out.push(origin.to_string());
    }
    Ok(out)
}

/// `a.example, 127.0.0.1` -> each host, lower case.
fn host_list(raw: Option<String>) -> Vec<String> {
    raw.unwrap_or_default().split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
}

/// `ROSTER_DNS_RESOLVER`: `host:port` of a DNS server, checked at start.
fn dns_resolver(raw: Option<String>) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let raw = raw.trim().to_string();
    match raw.parse::<std::net::SocketAddr>() {
        Ok(_) => Ok(Some(raw)),
        Err(_) => Err(format!("ROSTER_DNS_RESOLVER={raw:?}: give the DNS server as address:port, like 127.0.0.1:5353")),
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let data_dir = PathBuf::from(var("ROSTER_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let bind = var("ROSTER_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let database_url =
            var("DATABASE_URL").unwrap_or_else(|| data_dir.join("roster.db").to_string_lossy().into_owned());
        let public_url =
            var("ROSTER_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}")).trim_end_matches('/').to_string();
        let ttl: i64 = parse_var("ROSTER_ACCESS_TOKEN_TTL", 900)?;
        if !(30..=86_400).contains(&ttl) {
            return Err("ROSTER_ACCESS_TOKEN_TTL must be between 30 and 86400 seconds".into());
        }
        let session_days: i64 = parse_var("ROSTER_SESSION_DAYS", 30)?;
        let session_idle_days: i64 = parse_var("ROSTER_SESSION_IDLE_DAYS", 7)?;
        if !(1..=365).contains(&session_days) || !(1..=session_days).contains(&session_idle_days) {
            return Err("ROSTER_SESSION_DAYS must be 1 to 365, and ROSTER_SESSION_IDLE_DAYS 1 to that".into());
        }
        let cors_origins = cors_origins(var("ROSTER_CORS_ORIGINS").as_deref().unwrap_or(""))?;
        let app_url = var("ROSTER_APP_URL").unwrap_or_else(|| public_url.clone()).trim_end_matches('/').to_string();
        Ok(Self {
            database_url,
            bind,
            data_dir,
            public_url,
            platform_token: var("ROSTER_PLATFORM_TOKEN").map(SecretString::from),
            demo: parse_bool("ROSTER_DEMO", true)?,
            access_token_ttl_secs: ttl,
            pool_size: parse_var("ROSTER_DB_POOL_SIZE", 16)?.max(1),
            workers: parse_var("ROSTER_WORKERS", cores())?.max(1),
            hash_concurrency: parse_var("ROSTER_HASH_CONCURRENCY", cores())?.max(1),
            master_key: var("ROSTER_MASTER_KEY").map(SecretString::from),
            list_cache_bytes: list_cache_bytes()?,
            smtp_url: var("SMTP_URL").map(SecretString::from),
            mail_from: var("ROSTER_MAIL_FROM").unwrap_or_else(|| "Roster <roster@localhost>".into()),
            app_url,
            rate_login_per_minute: parse_var("ROSTER_RATE_LOGIN_PER_MINUTE", 30)?,
            rate_reset_per_hour: parse_var("ROSTER_RATE_RESET_PER_HOUR", 20)?,
            rate_emails_per_recipient_per_hour: parse_var("ROSTER_RATE_EMAILS_PER_RECIPIENT_PER_HOUR", 5)?,
            session_days,
            session_idle_days,
            lockout_threshold: parse_var("ROSTER_LOCKOUT_THRESHOLD", 5)?,
            lockout_secs: parse_var("ROSTER_LOCKOUT_SECONDS", 60)?.clamp(1, 3600),
            rate_invite_per_hour: parse_var("ROSTER_RATE_INVITE_PER_HOUR", 60)?,
            rate_tenant_emails_per_hour: parse_var("ROSTER_RATE_TENANT_EMAILS_PER_HOUR", 500)?,
            rate_api_key_per_minute: parse_var("ROSTER_RATE_API_KEY_PER_MINUTE", 600)?,
            cors_origins,
            webhook_allowed_hosts: host_list(var("ROSTER_WEBHOOK_ALLOWED_HOSTS")),
            webhook_retry_secs: retry_schedule(var("ROSTER_WEBHOOK_RETRY_SECONDS"))?,
            event_retention_days: parse_var("ROSTER_EVENT_RETENTION_DAYS", 30)?.clamp(1, 3650),
            dns_resolver: dns_resolver(var("ROSTER_DNS_RESOLVER"))?,
            sso_insecure_hosts: host_list(var("ROSTER_SSO_INSECURE_HOSTS")),
            trusted_proxies: crate::auth::client_addr::TrustedProxies::parse(
                var("ROSTER_TRUSTED_PROXIES").as_deref().unwrap_or(""),
            )?,
        })
    }

    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            lifetime: chrono::Duration::days(self.session_days),
            idle: chrono::Duration::days(self.session_idle_days),
        }
    }
}
