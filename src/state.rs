//! `AppState`: what every request shares (configuration, the database, token keys, hashers,
//! the list cache, the master key, rate limits), and how it is made at start: connect,
//! migrate, load the signing key. Handlers take it as `web::Data<AppState>`; it knows nothing
//! of routes or the server (`startup` builds those).

use std::sync::Arc;

use crate::auth::jwt::TokenKeys;
use crate::auth::master_key::MasterKey;
use crate::auth::passwords::PasswordHashers;
use crate::config::Config;
use crate::db::{self, Db};
use crate::store::members::ListCache;

/// Shared by every request.
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Db,
    /// Also app data of its own, for the guards (`auth::guard`).
    pub keys: Arc<TokenKeys>,
    pub hashers: PasswordHashers,
    pub lists: ListCache,
    /// Seals secrets at rest (the signing key, queued email).
    pub master: Arc<MasterKey>,
    /// Woken when a request queues an email, so the worker sends it at once.
    pub mail_queued: tokio::sync::Notify,
    pub limits: crate::auth::rate_limit::RateLimits,
    /// Which webhook URLs may be registered (`ROSTER_WEBHOOK_ALLOWED_HOSTS`).
    pub outbound_policy: crate::outbound::OutboundPolicy,
    /// Woken when a request queues a webhook delivery (a test, a retry).
    pub webhook_queued: tokio::sync::Notify,
    /// Outbound requests of single sign-on (`ROSTER_SSO_INSECURE_HOSTS`).
    pub sso_http: crate::sso::http::SsoHttp,
    /// OpenID providers' discovery documents and keys, cached per issuer.
    pub oidc_providers: crate::sso::oidc::Providers,
    /// Domain verification's resolver (`ROSTER_DNS_RESOLVER`, else the system's), built on
    /// first use and kept for the process (`sso::dns`).
    pub dns: crate::sso::dns::TxtResolver,
}

impl AppState {
    /// Connects, migrates and loads the signing key.
    pub fn init(config: Config) -> Result<Self, String> {
        let mut pool = Db::connect(&config.database_url, config.pool_size)?;
        let mut conn = pool.writer()?;
        let applied = db::run_migrations(&mut conn)?;
        for m in &applied {
            log::info!("applied migration {m}");
        }
        let master = MasterKey::resolve(config.master_key.as_ref(), &config.data_dir)?;
        let keys = TokenKeys::load_or_create(&mut conn, &config.public_url, &master)
            .map_err(|e| format!("signing key: {e}"))?;
        log::info!("database: {} ({})", db::backend_name(conn.kind()), db::redact_url(&config.database_url));
        drop(conn);
        pool.start_writer()?;
        let hashers = PasswordHashers::new(config.hash_concurrency);
        let lists = ListCache::new(config.list_cache_bytes);
        let limits = crate::auth::rate_limit::RateLimits::new(&config, &pool);
        let config_hosts = config.webhook_allowed_hosts.clone();
        let sso_http = crate::sso::http::SsoHttp::new(&config.sso_insecure_hosts)?;
        let dns = crate::sso::dns::TxtResolver::new(config.dns_resolver.as_deref())?;
        Ok(Self {
            config: Arc::new(config),
            pool,
            keys: Arc::new(keys),
            hashers,
            lists,
            master: Arc::new(master),
            mail_queued: tokio::sync::Notify::new(),
            limits,
            outbound_policy: crate::outbound::OutboundPolicy::new(&config_hosts),
            webhook_queued: tokio::sync::Notify::new(),
            sso_http,
            oidc_providers: crate::sso::oidc::Providers::default(),
            dns,
        })
    }
}

impl AppState {
    /// How failed sign-ins lock accounts, from the configuration.
    pub fn lockout(&self) -> crate::store::sessions::Lockout {
        crate::store::sessions::Lockout {
            threshold: self.config.lockout_threshold,
            first_secs: self.config.lockout_secs,
        }
    }
}
