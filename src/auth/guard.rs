//! Request guards. `TenantContext` is the only way into tenant data: it reads `{tenant_id}`,
//! verifies the bearer token, reloads the membership and checks the token's auth version
//! against it, so a disabled member or a changed role is refused at once on every instance.
//! Its fields are private to this module: store functions that take it cannot be reached
//! without passing the check. The guards read only the token keys and the database from the
//! app data (not the whole `AppState`), and run their own session and membership queries.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use diesel::dsl::exists;
use diesel::prelude::*;

use super::jwt::{Claims, SCOPE_PASSWORD_CHANGE, TokenKeys};
use super::policy::{Actor, Principal};
use super::rate_limit::ApiKeyLimit;
use crate::db::models::ApiKeyRow;
use crate::db::schema::{
    api_keys::dsl as k, membership_regions::dsl as mr, memberships::dsl as m, regions::dsl as r, sessions::dsl as s,
    tenants::dsl as t, users::dsl as u,
};
use crate::db::{self, AnyConnection};
use crate::domain::ids::parse_stored;
use crate::domain::region_scope::expand_regions;
use crate::domain::{MemberStatus, RegionId, RegionScope, Role, TenantId, UserId};
use crate::error::ApiError;

/// Request facts recorded with every audit event.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    /// The client's address (`auth::client_addr`: the peer, or behind trusted proxies the
    /// client they name).
    pub ip: Option<String>,
    /// The client's `User-Agent` (at most 200 characters), kept with sessions.
    pub user_agent: Option<String>,
}

/// The request id set by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestMeta {
    pub fn from_request(req: &HttpRequest) -> Self {
        Self {
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
            ip: super::client_addr::client_addr(req).map(|ip| ip.to_string()),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect()),
        }
    }
}

/// How [`TenantContext::lock_and_recheck`] locks the tenant's row: shared by writers that need
/// only its settings to stay put, exclusive for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantLock {
    Shared,
    Exclusive,
}

/// A tenant's plan settings as read under its lock.
#[derive(Debug, Clone)]
pub struct TenantPlan {
    pub plan: String,
    pub seat_limit_override: Option<i32>,
}

/// A caller checked against one tenant: its membership is active and its token current.
#[derive(Debug, Clone)]
pub struct TenantContext {
    tenant_id: TenantId,
    actor: Actor,
    /// The membership's auth version, or the API key's version.
    actor_auth_version: i32,
    meta: RequestMeta,
    /// An API key whose `last_used_at` is older than a minute: written after the request.
    touch_key: bool,
}

impl TenantContext {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    pub fn tenant_text(&self) -> String {
        self.tenant_id.as_text()
    }
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    pub fn meta(&self) -> &RequestMeta {
        &self.meta
    }

    /// Inside a write transaction: locks the tenant's row (PostgreSQL; SQLite's writer lock
    /// is already held) and confirms, in the same statement, that the caller has not changed
    /// since the guard loaded it: the membership's auth version (role, regions and status
    /// changes bump it) and active status, or the API key's version and that it is not revoked.
    /// Returns the tenant's plan and seat-limit override as they stand under the lock.
    pub fn lock_and_recheck(&self, conn: &mut AnyConnection, lock: TenantLock) -> Result<TenantPlan, ApiError> {
        let tenant = self.tenant_text();
        let actor = self.actor.user_id.as_text();
        // The tenant's row, locked as asked, with one more column or two read beside it.
        macro_rules! locked {
            ($select:expr, $row:ty) => {{
                let q = t::tenants.filter(t::id.eq(&tenant)).select($select);
                crate::db::on_backend!(conn,
                    postgres: |c| match lock {
                        TenantLock::Shared => q.for_share().first::<$row>(c)?,
                        TenantLock::Exclusive => q.for_update().first::<$row>(c)?,
                    },
                    sqlite: |c| q.first::<$row>(c)?,
                )
            }};
        }
        if self.actor.is_key() {
            let version = k::api_keys
                .filter(k::tenant_id.eq(&tenant))
                .filter(k::id.eq(&actor))
                .filter(k::revoked_at.is_null())
                .select(k::version)
                .single_value();
            let (plan, seat_limit_override, current) =
                locked!((t::plan, t::seat_limit_override, version), (String, Option<i32>, Option<i32>));
            if current != Some(self.actor_auth_version) {
                return Err(ApiError::Unauthorized("the API key changed during this request; try again".into()));
            }
            return Ok(TenantPlan { plan, seat_limit_override });
        }
        let mine = m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&actor));
        let (plan, seat_limit_override, version, status) = locked!(
            (
                t::plan,
                t::seat_limit_override,
                mine.select(m::auth_version).single_value(),
                mine.select(m::status).single_value()
            ),
            (String, Option<i32>, Option<i32>, Option<String>)
        );
        if version != Some(self.actor_auth_version) || status.as_deref() != Some(MemberStatus::Active.as_str()) {
            return Err(ApiError::Unauthorized("your access changed during this request; sign in again".into()));
        }
        Ok(TenantPlan { plan, seat_limit_override })
    }
}

/// A caller with a valid, current token, whatever tenant (if any) it names.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: UserId,
    pub claims: Claims,
    pub meta: RequestMeta,
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send an access token: Authorization: Bearer <token>".into()))?;
    let value =
        header.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_string())
        }
        _ => Err(ApiError::Unauthorized("the Authorization header must be: Bearer <token>".into())),
    }
}

/// Whether a bearer credential is an API key secret (`rk_<kind>_...`) rather than a JWT.
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(crate::domain::api_key::SECRET_MARK)
}

/// App data the guards read: the token keys and the database (`startup` registers them).
fn app_data<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, ApiError> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| ApiError::internal("application state missing"))
}

/// Verifies the token's signature, expiry and issuer and returns its claims, with the
/// database to check them against.
pub fn verified_claims(req: &HttpRequest) -> Result<(web::Data<db::Db>, Claims), ApiError> {
    let keys = app_data::<TokenKeys>(req)?;
    let token = bearer(req)?;
    if is_api_key(&token) {
        return Err(ApiError::Unauthorized(
            "API keys work only on tenant routes (/api/v1/tenants/{tenant_id}/...), not here: send a person's access token"
                .into(),
        ));
    }
    let claims = keys.verify(&token)?;
    Ok((app_data::<db::Db>(req)?, claims))
}

/// Refuses a (current) password-change-only token where it is not enough. Called after the
/// revocation check, so a revoked token says 401 rather than 403.
fn refuse_password_change_only(claims: &Claims) -> Result<(), ApiError> {
    if claims.scope.as_deref() == Some(SCOPE_PASSWORD_CHANGE) {
        return Err(ApiError::forbidden(
            "password-change-required",
            "you must change your password first: POST /api/v1/auth/password",
        ));
    }
    Ok(())
}

/// The caller's membership as the guard checks it: role, status, the membership's and the
/// identity's auth versions, the tenant's `admins_can_manage_users`, and whether the token's
/// session is still going. Loaded by the guard, or with a read's own row
/// ([`TenantAccess::run_joined`]).
pub type MemberFacts = (String, String, i32, i32, bool, bool);

/// What a read joined to the caller ([`TenantAccess::run_joined`]) loads about them with its
/// row, as the guard would load it.
#[derive(Debug)]
pub enum CallerFacts {
    /// A person's membership.
    Member(MemberFacts),
    /// An API key of this tenant, not revoked, whose current or previous secret has the
    /// digest (the previous one still in its grace period), with its tenant's
    /// `admins_can_manage_users`. Its expiry is checked by the guard.
    Key(Box<ApiKeyRow>, bool),
}

/// Who a request's credential names, for a read that loads the [`CallerFacts`] with its row.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A person's access token: the identity and the token's session.
    Member { user: &'a str, session: &'a str },
    /// An API key: its secret's digest, and the time its grace periods are judged at.
    Key { digest: &'a str, at: chrono::NaiveDateTime },
}

/// What the guard loads about the caller's membership.
struct MembershipAuth {
    role: String,
    status: String,
    /// The token's session is still going.
    session_live: bool,
    membership_version: i32,
    user_version: i32,
    admins_can_manage_users: bool,
    regions: Vec<String>,
    tenant_regions: Vec<(String, Option<String>)>,
}

fn load_caller_facts(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    session: &str,
) -> Result<Option<MemberFacts>, ApiError> {
    let live = s::sessions
        .filter(s::id.eq(session))
        .filter(s::user_id.eq(user))
        .filter(s::ended_at.is_null())
        .filter(s::expires_at.gt(crate::domain::now()));
    Ok(m::memberships
        .inner_join(u::users)
        .inner_join(t::tenants)
        .filter(m::tenant_id.eq(tenant))
        .filter(m::user_id.eq(user))
        .select((m::role, m::status, m::auth_version, u::auth_version, t::admins_can_manage_users, exists(live)))
        .first::<MemberFacts>(conn)
        .optional()?)
}

/// The caller's facts with, for an admin, their regions and the tenant's (to expand them).
fn membership_auth(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    facts: MemberFacts,
) -> Result<MembershipAuth, ApiError> {
    let (role, status, mv, uv, acm, session_live) = facts;
    let (regions, tenant_regions) = if role == Role::Admin.as_str() {
        let mine = mr::membership_regions
            .filter(mr::tenant_id.eq(tenant))
            .filter(mr::user_id.eq(user))
            .select(mr::region_id)
            .load::<String>(conn)?;
        let all = r::regions.filter(r::tenant_id.eq(tenant)).select((r::id, r::parent_id)).load(conn)?;
        (mine, all)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(MembershipAuth {
        role,
        status,
        session_live,
        membership_version: mv,
        user_version: uv,
        admins_can_manage_users: acm,
        regions,
        tenant_regions,
    })
}

/// Whether `session` belongs to `user` and is still going (asked on every request).
fn session_is_active(conn: &mut AnyConnection, session: &str, user: &str) -> Result<bool, ApiError> {
    let n: i64 = s::sessions
        .filter(s::id.eq(session))
        .filter(s::user_id.eq(user))
        .filter(s::ended_at.is_null())
        .filter(s::expires_at.gt(crate::domain::now()))
        .count()
        .get_result(conn)?;
    Ok(n == 1)
}

/// The session a token belongs to; every token Roster issues names one.
pub fn session_of(claims: &Claims) -> Result<&str, ApiError> {
    claims.sid.as_deref().ok_or_else(|| ApiError::Unauthorized("the access token is invalid (no session)".into()))
}

fn session_ended() -> ApiError {
    ApiError::Unauthorized("the session of this access token has ended; sign in again".into())
}

/// The token's `ver` for a membership: user's plus membership's auth versions.
pub fn token_version(user_version: i32, membership_version: i32) -> i64 {
    i64::from(user_version) + i64::from(membership_version)
}

pub fn parse_path_id<T: std::str::FromStr>(req: &HttpRequest, name: &str) -> Result<T, ApiError> {
    let raw = req.match_info().get(name).unwrap_or_default();
    raw.parse().map_err(|_| ApiError::bad_request("invalid-id", format!("`{name}` must be a UUID (got {raw:?})")))
}

/// A request for one tenant's data whose token is verified (signature, expiry, tenant) but not
/// yet checked against the membership. The only way on is [`TenantAccess::run`] (or
/// [`TenantAccess::run_write`]), which checks the membership on the same database connection as
/// the work it guards, so one blocking call does both.
pub struct TenantAccess {
    tenant_id: TenantId,
    credential: Credential,
    meta: RequestMeta,
}

/// What the request authenticates with.
enum Credential {
    /// A person's access token (verified).
    Token { user_id: UserId, claims: Claims },
    /// An API key secret's SHA-256 digest (looked up in the database on every request).
    Key { digest: String, limit: Option<web::Data<ApiKeyLimit>> },
}

/// A key that is unknown, revoked or expired answers exactly as a bad token does.
fn bad_key() -> ApiError {
    ApiError::Unauthorized("the access token is invalid".into())
}

/// The live key with this secret digest (current, or the previous one in its rotation's grace
/// period): not revoked, not expired; with its tenant's `admins_can_manage_users`, in the same
/// statement (a key's tenant always exists: its keys go with it). Anything else answers as a
/// bad token.
fn find_key(conn: &mut AnyConnection, digest: &str, at: chrono::NaiveDateTime) -> Result<(ApiKeyRow, bool), ApiError> {
    let found = k::api_keys
        .inner_join(t::tenants)
        .filter(key_digest_is(digest, at))
        .filter(k::revoked_at.is_null())
        .select((ApiKeyRow::as_select(), t::admins_can_manage_users))
        .first::<(ApiKeyRow, bool)>(conn)
        .optional()?;
    unexpired(found, at)
}

/// The key's current secret has `digest`, or its previous one does and is still in its grace
/// period at `at`.
pub type KeyDigestIs<'a> = diesel::dsl::Or<
    diesel::dsl::Eq<k::secret_digest, &'a str>,
    diesel::dsl::And<
        diesel::dsl::Eq<k::previous_digest, &'a str>,
        diesel::dsl::Gt<k::previous_expires_at, chrono::NaiveDateTime>,
    >,
>;

/// [`KeyDigestIs`]: how [`find_key`] and the reads joined to a key pick it.
pub fn key_digest_is(digest: &str, at: chrono::NaiveDateTime) -> KeyDigestIs<'_> {
    k::secret_digest.eq(digest).or(k::previous_digest.eq(digest).and(k::previous_expires_at.gt(at)))
}

/// A key found by its digest, unless it has expired by `at`; else answers as a bad token.
fn unexpired(found: Option<(ApiKeyRow, bool)>, at: chrono::NaiveDateTime) -> Result<(ApiKeyRow, bool), ApiError> {
    found.filter(|(key, _)| key.expires_at.is_none_or(|e| e > at)).ok_or_else(bad_key)
}

/// The tenant admins' regions, expanded, or the whole tenant for owners.
fn scope_of(conn: &mut AnyConnection, tenant: &str, role: Role, roots: &[String]) -> Result<RegionScope, ApiError> {
    if role == Role::Owner {
        return Ok(RegionScope::Tenant);
    }
    if role != Role::Admin {
        // Operators and viewers have no scope (as for members: they see only "self").
        return Ok(RegionScope::Regions(expand_regions(&[], &[])));
    }
    let all = r::regions.filter(r::tenant_id.eq(tenant)).select((r::id, r::parent_id)).load(conn)?;
    let roots: Vec<RegionId> = roots.iter().map(|s| parse_stored(s)).collect();
    Ok(RegionScope::Regions(expand_regions(&roots, &all)))
}

impl TenantAccess {
    /// Loads the membership (or the API key) and checks the token's auth version, status and
    /// scope.
    pub fn authorize(&self, conn: &mut AnyConnection) -> Result<TenantContext, ApiError> {
        match &self.credential {
            Credential::Token { user_id, claims } => self.authorize_token(conn, *user_id, claims),
            Credential::Key { digest, limit } => self.authorize_key(conn, digest, limit.as_ref().map(|l| l.get_ref())),
        }
    }

    /// An API key: current (or in its rotation's grace period), not revoked, not expired, of
    /// this tenant (another tenant's key sees no such tenant), of kind `api`, within its
    /// request limit.
    fn authorize_key(
        &self,
        conn: &mut AnyConnection,
        digest: &str,
        limit: Option<&ApiKeyLimit>,
    ) -> Result<TenantContext, ApiError> {
        let at = crate::domain::now();
        let found = find_key(conn, digest, at)?;
        self.check_key(conn, found, at, limit)
    }

    /// Checks a live key found by its digest ([`find_key`]) against the route and its limit.
    fn check_key(
        &self,
        conn: &mut AnyConnection,
        (key, acm): (ApiKeyRow, bool),
        at: chrono::NaiveDateTime,
        limit: Option<&ApiKeyLimit>,
    ) -> Result<TenantContext, ApiError> {
        let tenant = self.tenant_id.as_text();
        if key.tenant_id != tenant {
            return Err(ApiError::not_found(format!("tenant {tenant} not found (your API key is for another tenant)")));
        }
        if key.kind != crate::domain::api_key::KeyKind::Api.as_str() {
            return Err(ApiError::forbidden(
                "key-kind-not-allowed",
                format!("an API key of kind `{}` cannot call this route; only `api` keys reach the REST API", key.kind),
            ));
        }
        if let Some(limit) = limit {
            limit.0.check_on(conn, &key.id)?;
        }
        let role = Role::parse(&key.role).ok_or_else(|| ApiError::internal("stored role is invalid"))?;
        let scope = scope_of(conn, &tenant, role, &key.region_ids())?;
        let touch_key = key.last_used_at.is_none_or(|t| at - t >= chrono::TimeDelta::seconds(60));
        Ok(TenantContext {
            tenant_id: self.tenant_id,
            actor: Actor {
                user_id: parse_stored(&key.id),
                principal: Principal::ApiKey { name: key.name },
                role,
                scope,
                admins_can_manage_users: acm,
            },
            actor_auth_version: key.version,
            meta: self.meta.clone(),
            touch_key,
        })
    }

    fn authorize_token(
        &self,
        conn: &mut AnyConnection,
        user_id: UserId,
        claims: &Claims,
    ) -> Result<TenantContext, ApiError> {
        let session = session_of(claims)?;
        let facts = load_caller_facts(conn, &self.tenant_id.as_text(), &user_id.as_text(), session)?;
        self.check_token(conn, user_id, claims, facts)
    }

    /// Checks a person's token against the caller's facts (`None`: no membership here).
    fn check_token(
        &self,
        conn: &mut AnyConnection,
        user_id: UserId,
        claims: &Claims,
        facts: Option<MemberFacts>,
    ) -> Result<TenantContext, ApiError> {
        let facts = facts.ok_or_else(|| ApiError::Unauthorized("the access token has been revoked".into()))?;
        let found = membership_auth(conn, &self.tenant_id.as_text(), &user_id.as_text(), facts)?;
        if !found.session_live {
            return Err(session_ended());
        }
        if token_version(found.user_version, found.membership_version) != claims.ver
            || found.status != MemberStatus::Active.as_str()
        {
            return Err(ApiError::Unauthorized("the access token has been revoked; sign in again".into()));
        }
        refuse_password_change_only(claims)?;
        let role = Role::parse(&found.role).ok_or_else(|| ApiError::internal("stored role is invalid"))?;
        let scope = if role == Role::Owner {
            RegionScope::Tenant
        } else {
            let roots: Vec<RegionId> = found.regions.iter().map(|s| parse_stored(s)).collect();
            RegionScope::Regions(expand_regions(&roots, &found.tenant_regions))
        };
        Ok(TenantContext {
            tenant_id: self.tenant_id,
            actor: Actor {
                user_id,
                principal: Principal::Member,
                role,
                scope,
                admins_can_manage_users: found.admins_can_manage_users,
            },
            actor_auth_version: found.membership_version,
            meta: self.meta.clone(),
            touch_key: false,
        })
    }

    /// Checks the caller and runs a read with the checked context, in one blocking call.
    pub async fn run<T, F>(self, db: &db::Db, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection, &TenantContext) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        run_checked(self, db, f).await
    }

    /// Like [`TenantAccess::run`], for a read whose first statement can carry the caller's
    /// facts as well. On PostgreSQL `read` gets the [`Caller`] and returns their
    /// [`CallerFacts`] with its row: one round trip instead of two (each statement there is
    /// one). Where its row is missing it may return no facts, and the guard loads them itself.
    /// On SQLite the caller is checked first and `read` gets `None`. Either way `then` sees the
    /// row only with a context the guard has checked, and nothing is written before it.
    pub async fn run_joined<R, T, L, F>(self, db: &db::Db, read: L, then: F) -> Result<T, ApiError>
    where
        L: FnOnce(&mut AnyConnection, &str, Option<Caller<'_>>) -> Result<(Option<CallerFacts>, R), ApiError>
            + Send
            + 'static,
        F: FnOnce(&mut AnyConnection, &TenantContext, R) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        if db.kind() != db::BackendKind::Postgres {
            return run_checked(self, db, move |conn, ctx| {
                let (_, row) = read(conn, &ctx.tenant_text(), None)?;
                then(conn, ctx, row)
            })
            .await;
        }
        let (out, touch) = db::run(db, move |conn| {
            let tenant = self.tenant_id.as_text();
            let (ctx, row) = match &self.credential {
                Credential::Token { user_id, claims } => {
                    let (user, session) = (user_id.as_text(), session_of(claims)?);
                    let (facts, row) = read(conn, &tenant, Some(Caller::Member { user: &user, session }))?;
                    let facts = match facts {
                        Some(CallerFacts::Member(facts)) => Some(facts),
                        _ => load_caller_facts(conn, &tenant, &user, session)?,
                    };
                    (self.check_token(conn, *user_id, claims, facts)?, row)
                }
                Credential::Key { digest, limit } => {
                    let at = crate::domain::now();
                    let (facts, row) = read(conn, &tenant, Some(Caller::Key { digest, at }))?;
                    // No key of this tenant joined: find it anywhere, for the answer the guard gives.
                    let found = match facts {
                        Some(CallerFacts::Key(key, acm)) => unexpired(Some((*key, acm)), at)?,
                        _ => find_key(conn, digest, at)?,
                    };
                    (self.check_key(conn, found, at, limit.as_ref().map(|l| l.get_ref()))?, row)
                }
            };
            let touch = ctx.key_to_touch();
            then(conn, &ctx, row).map(|out| (out, touch))
        })
        .await?;
        touch_key_later(db, touch).await;
        Ok(out)
    }

    /// Like [`TenantAccess::run`], on the writer.
    pub async fn run_write<T, F>(self, db: &db::Db, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection, &TenantContext) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        run_write_checked(self, db, f).await
    }

    /// Checks now that the caller may do `action`, and hands the access back for the work
    /// itself. For a handler whose input checks call out (SSO discovery, metadata by URL): an
    /// unauthorised caller must not make Roster call anywhere.
    pub async fn require(self, db: &db::Db, action: crate::auth::policy::TenantAction) -> Result<Self, ApiError> {
        db::run(db, move |conn| {
            self.authorize(conn)?.actor().require(action)?;
            Ok(self)
        })
        .await
    }

    /// Checks the caller now, for handlers that need the context before their database work.
    pub async fn check(self, db: &db::Db) -> Result<TenantContext, ApiError> {
        let ctx = db::run(db, move |conn| self.authorize(conn)).await?;
        touch_key_later(db, ctx.key_to_touch()).await;
        Ok(ctx)
    }
}

impl TenantContext {
    /// The API key to mark as used, when its `last_used_at` is older than a minute.
    fn key_to_touch(&self) -> Option<(String, String)> {
        self.touch_key.then(|| (self.tenant_text(), self.actor.user_id.as_text()))
    }
}

/// Sets a key's `last_used_at`, unless another request did within the last minute.
fn touch_key(conn: &mut AnyConnection, tenant: &str, key: &str) -> Result<(), ApiError> {
    let at = crate::domain::now();
    diesel::update(k::api_keys.filter(k::tenant_id.eq(tenant)).filter(k::id.eq(key)))
        .filter(k::last_used_at.is_null().or(k::last_used_at.lt(at - chrono::TimeDelta::seconds(60))))
        .set(k::last_used_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// [`touch_key`] on the writer, after a read; a failure is logged, not answered.
async fn touch_key_later(db: &db::Db, touch: Option<(String, String)>) {
    let Some((tenant, key)) = touch else { return };
    if let Err(e) = db::run_write(db, move |conn| touch_key(conn, &tenant, &key)).await {
        log::warn!("could not record an API key's last use: {e}");
    }
}

fn tenant_access(req: &HttpRequest) -> Result<(web::Data<db::Db>, TenantAccess), ApiError> {
    let tenant_id: TenantId = parse_path_id(req, "tenant_id")?;
    let token = bearer(req)?;
    if is_api_key(&token) {
        let digest = crate::domain::api_key::digest(&token);
        let limit = req.app_data::<web::Data<ApiKeyLimit>>().cloned();
        crate::error::deferred_problem(req)?;
        let credential = Credential::Key { digest, limit };
        return Ok((
            app_data::<db::Db>(req)?,
            TenantAccess { tenant_id, credential, meta: RequestMeta::from_request(req) },
        ));
    }
    let (st, claims) = verified_claims(req)?;
    let user_id: UserId =
        claims.sub.parse().map_err(|_| ApiError::Unauthorized("the access token is invalid".into()))?;
    if claims.tid.as_deref() != Some(tenant_id.as_text().as_str()) {
        // A token for another tenant (or an identity-only token) sees no such tenant.
        return Err(ApiError::not_found(format!(
            "tenant {tenant_id} not found (your token is for another tenant or none: use POST /api/v1/auth/switch)"
        )));
    }
    crate::error::deferred_problem(req)?;
    let credential = Credential::Token { user_id, claims };
    Ok((st, TenantAccess { tenant_id, credential, meta: RequestMeta::from_request(req) }))
}

impl FromRequest for TenantAccess {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(tenant_access(req).map(|(_, access)| access))
    }
}

impl FromRequest for TenantContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = tenant_access(req);
        Box::pin(async move {
            let (db, access) = checked?;
            access.check(&db).await
        })
    }
}

/// A device agent's request (`/api/v1/agent/...`): an `agent` key, whose tenant is the one it
/// acts in. Like [`TenantAccess`], checked against the database on the connection that does
/// the work.
pub struct AgentAccess {
    digest: String,
    limit: Option<web::Data<ApiKeyLimit>>,
    meta: RequestMeta,
}

/// A checked agent key: the tenant context it acts in (the key as actor, audited by name), and
/// the role and regions the people it enrols get.
#[derive(Debug, Clone)]
pub struct AgentContext {
    pub ctx: TenantContext,
    pub key_id: String,
    pub role: Role,
    pub regions: Vec<RegionId>,
}

impl AgentAccess {
    pub fn authorize(&self, conn: &mut AnyConnection) -> Result<AgentContext, ApiError> {
        let at = crate::domain::now();
        let (key, acm) = find_key(conn, &self.digest, at)?;
        if key.kind != crate::domain::api_key::KeyKind::Agent.as_str() {
            return Err(ApiError::forbidden(
                "key-kind-not-allowed",
                format!(
                    "an API key of kind `{}` cannot call the agent routes; only `agent` keys enrol devices",
                    key.kind
                ),
            ));
        }
        if let Some(limit) = &self.limit {
            limit.0.check_on(conn, &key.id)?;
        }
        let role = Role::parse(&key.role).ok_or_else(|| ApiError::internal("stored role is invalid"))?;
        let regions = key.region_ids().iter().map(|r| parse_stored(r)).collect();
        let touch_key = key.last_used_at.is_none_or(|t| at - t >= chrono::TimeDelta::seconds(60));
        let ctx = TenantContext {
            tenant_id: parse_stored(&key.tenant_id),
            actor: Actor {
                user_id: parse_stored(&key.id),
                principal: Principal::ApiKey { name: key.name },
                role,
                // An agent acts on nobody through the member policy: it only enrols.
                scope: RegionScope::Regions(expand_regions(&[], &[])),
                admins_can_manage_users: acm,
            },
            actor_auth_version: key.version,
            meta: self.meta.clone(),
            touch_key,
        };
        Ok(AgentContext { ctx, key_id: key.id, role, regions })
    }

    /// Checks the key and runs a read with its context, in one blocking call.
    pub async fn run<T, F>(self, db: &db::Db, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection, &AgentContext) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        run_checked(self, db, f).await
    }

    /// Like [`AgentAccess::run`], on the writer.
    pub async fn run_write<T, F>(self, db: &db::Db, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection, &AgentContext) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        run_write_checked(self, db, f).await
    }
}

/// A directory's request (`/scim/v2/...`): a `scim` key, whose tenant is the one it provisions.
/// Like [`TenantAccess`], checked against the database on the connection that does the work.
pub struct ScimAccess {
    digest: String,
    limit: Option<web::Data<ApiKeyLimit>>,
    meta: RequestMeta,
}

impl ScimAccess {
    /// The key as actor: it provisions every member but owners (the SCIM store refuses to
    /// touch an owner), so it acts with the whole tenant in scope and is audited by name.
    pub fn authorize(&self, conn: &mut AnyConnection) -> Result<TenantContext, ApiError> {
        let at = crate::domain::now();
        let (key, _) = find_key(conn, &self.digest, at)?;
        if key.kind != crate::domain::api_key::KeyKind::Scim.as_str() {
            return Err(ApiError::forbidden(
                "key-kind-not-allowed",
                format!("an API key of kind `{}` cannot call /scim/v2; only `scim` keys provision members", key.kind),
            ));
        }
        if let Some(limit) = &self.limit {
            limit.0.check_on(conn, &key.id)?;
        }
        let touch_key = key.last_used_at.is_none_or(|t| at - t >= chrono::TimeDelta::seconds(60));
        Ok(TenantContext {
            tenant_id: parse_stored(&key.tenant_id),
            actor: Actor {
                user_id: parse_stored(&key.id),
                principal: Principal::ApiKey { name: key.name },
                role: Role::Owner,
                scope: RegionScope::Tenant,
                admins_can_manage_users: true,
            },
            actor_auth_version: key.version,
            meta: self.meta.clone(),
            touch_key,
        })
    }

    /// Checks the key and runs a read with its context, in one blocking call.
    pub async fn run<T, F>(self, db: &db::Db, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection, &TenantContext) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        run_checked(self, db, f).await
    }

    /// Like [`ScimAccess::run`], on the writer.
    pub async fn run_write<T, F>(self, db: &db::Db, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection, &TenantContext) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        run_write_checked(self, db, f).await
    }
}

/// The bearer of a `/scim/v2` request, as a [`ScimAccess`]: a person's token or anything that
/// is not an API key is refused before any work.
pub fn scim_access(req: &HttpRequest) -> Result<ScimAccess, ApiError> {
    let token = bearer(req)?;
    if !is_api_key(&token) {
        let keys = app_data::<TokenKeys>(req)?;
        keys.verify(&token)?;
        return Err(ApiError::forbidden(
            "scim-key-required",
            "/scim/v2 takes a SCIM API key (`Authorization: Bearer rk_scim_...`), not a person's access token",
        ));
    }
    Ok(ScimAccess {
        digest: crate::domain::api_key::digest(&token),
        limit: req.app_data::<web::Data<ApiKeyLimit>>().cloned(),
        meta: RequestMeta::from_request(req),
    })
}

impl Checked for ScimAccess {
    type Context = TenantContext;
    fn authorize(&self, conn: &mut AnyConnection) -> Result<TenantContext, ApiError> {
        ScimAccess::authorize(self, conn)
    }
    fn key_to_touch(ctx: &TenantContext) -> Option<(String, String)> {
        ctx.key_to_touch()
    }
}

/// A credential that is checked on the same connection as the work it guards.
trait Checked: Send + 'static {
    type Context: Send + 'static;
    fn authorize(&self, conn: &mut AnyConnection) -> Result<Self::Context, ApiError>;
    /// The API key to mark as used, if any (see [`touch_key`]).
    fn key_to_touch(ctx: &Self::Context) -> Option<(String, String)>;
}

impl Checked for TenantAccess {
    type Context = TenantContext;
    fn authorize(&self, conn: &mut AnyConnection) -> Result<TenantContext, ApiError> {
        TenantAccess::authorize(self, conn)
    }
    fn key_to_touch(ctx: &TenantContext) -> Option<(String, String)> {
        ctx.key_to_touch()
    }
}

impl Checked for AgentAccess {
    type Context = AgentContext;
    fn authorize(&self, conn: &mut AnyConnection) -> Result<AgentContext, ApiError> {
        AgentAccess::authorize(self, conn)
    }
    fn key_to_touch(agent: &AgentContext) -> Option<(String, String)> {
        agent.ctx.key_to_touch()
    }
}

/// Checks `access` and runs a read with its context in one blocking call; a key's last use is
/// written afterwards, on the writer.
async fn run_checked<A, T, F>(access: A, db: &db::Db, f: F) -> Result<T, ApiError>
where
    A: Checked,
    F: FnOnce(&mut AnyConnection, &A::Context) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let (out, touch) = db::run(db, move |conn| {
        let ctx = access.authorize(conn)?;
        let touch = A::key_to_touch(&ctx);
        f(conn, &ctx).map(|out| (out, touch))
    })
    .await?;
    touch_key_later(db, touch).await;
    Ok(out)
}

/// Checks `access` and runs a write with its context on the writer.
async fn run_write_checked<A, T, F>(access: A, db: &db::Db, f: F) -> Result<T, ApiError>
where
    A: Checked,
    F: FnOnce(&mut AnyConnection, &A::Context) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    db::run_write(db, move |conn| {
        let ctx = access.authorize(conn)?;
        if let Some((tenant, key)) = A::key_to_touch(&ctx) {
            touch_key(conn, &tenant, &key)?;
        }
        f(conn, &ctx)
    })
    .await
}

fn agent_access(req: &HttpRequest) -> Result<AgentAccess, ApiError> {
    let token = bearer(req)?;
    if !is_api_key(&token) {
        // A person's (valid) token is the wrong kind of credential; anything else is a bad one.
        let keys = app_data::<TokenKeys>(req)?;
        keys.verify(&token)?;
        return Err(ApiError::forbidden(
            "agent-key-required",
            "the agent routes take a device agent's API key (`Authorization: Bearer rk_agent_...`), not a person's access token",
        ));
    }
    crate::error::deferred_problem(req)?;
    Ok(AgentAccess {
        digest: crate::domain::api_key::digest(&token),
        limit: req.app_data::<web::Data<ApiKeyLimit>>().cloned(),
        meta: RequestMeta::from_request(req),
    })
}

impl FromRequest for AgentAccess {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(agent_access(req))
    }
}

fn identity_from_request(
    req: HttpRequest,
    allow_password_change: bool,
) -> Pin<Box<dyn Future<Output = Result<Identity, ApiError>>>> {
    Box::pin(async move {
        let (db, claims) = verified_claims(&req)?;
        let user_id: UserId =
            claims.sub.parse().map_err(|_| ApiError::Unauthorized("the access token is invalid".into()))?;
        let (uid, tid) = (user_id.as_text(), claims.tid.clone());
        let sid = session_of(&claims)?.to_string();
        let current = db::run(&db, move |conn| {
            if !session_is_active(conn, &sid, &uid)? {
                return Err(session_ended());
            }
            let uv = u::users.filter(u::id.eq(&uid)).select(u::auth_version).first::<i32>(conn).optional()?;
            let Some(uv) = uv else { return Ok(None) };
            match tid {
                None => Ok(Some(i64::from(uv))),
                Some(tid) => {
                    let mv = m::memberships
                        .filter(m::tenant_id.eq(&tid))
                        .filter(m::user_id.eq(&uid))
                        .filter(m::status.eq(MemberStatus::Active.as_str()))
                        .select(m::auth_version)
                        .first::<i32>(conn)
                        .optional()?;
                    Ok(mv.map(|mv| token_version(uv, mv)))
                }
            }
        })
        .await?;
        if current != Some(claims.ver) {
            return Err(ApiError::Unauthorized("the access token has been revoked; sign in again".into()));
        }
        if !allow_password_change {
            refuse_password_change_only(&claims)?;
        }
        crate::error::deferred_problem(&req)?;
        Ok(Identity { user_id, claims, meta: RequestMeta::from_request(&req) })
    })
}

impl FromRequest for Identity {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        identity_from_request(req.clone(), false)
    }
}

/// Like [`Identity`], but also accepts a password-change-only token. Only
/// `POST /auth/password` takes it.
#[derive(Debug, Clone)]
pub struct PasswordChangeIdentity(pub Identity);

impl FromRequest for PasswordChangeIdentity {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = identity_from_request(req.clone(), true);
        Box::pin(async move { fut.await.map(PasswordChangeIdentity) })
    }
}
