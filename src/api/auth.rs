//! Sign-in: `POST /auth/login`, `POST /auth/switch`, `POST /auth/password`.

use actix_web::{HttpResponse, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::auth::guard::{PasswordChangeIdentity, session_of, token_version};
use crate::auth::jwt::{Claims, SCOPE_PASSWORD_CHANGE};
use crate::auth::{Identity, RequestMeta};
use crate::db;
use crate::domain::ids::parse_stored;
use crate::domain::password::check_policy;
use crate::domain::{EmailAddress, TenantId, UserId};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::store::domains::{self, sso_required};
use crate::store::resets;
use crate::store::sessions::{self, EndReason, TenantMembership};

/// Credentials. With `tenant_id`, sign straight into that tenant.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "owner@demo.example", "password": "the password you were given"}))]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 254))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    #[validate(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    pub tenant_id: Option<TenantId>,
}

/// A tenant the person can sign in to.
#[derive(Serialize, ToSchema)]
pub struct TenantChoice {
    #[schema(format = Uuid)]
    pub tenant_id: String,
    #[schema(example = "Acme")]
    pub name: String,
    #[schema(example = "admin")]
    pub role: String,
}

/// An access token and what it grants.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9...",
    "token_type": "Bearer",
    "expires_in": 900,
    "tenant_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e2f",
    "tenants": [{"tenant_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e2f", "name": "Acme", "role": "owner"}],
    "must_change_password": false,
    "refresh_token": "kq3V1x1nS2u8rYbqk0mZ7w",
    "session_id": "01937a2f-0000-7000-8000-000000000001"
}))]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// The tenant the token acts in; absent on an identity-only token (several tenants:
    /// pick one with `POST /auth/switch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    pub tenants: Vec<TenantChoice>,
    /// When true the token is good only for `POST /auth/password`.
    pub must_change_password: bool,
    /// Exchange it at `POST /auth/refresh` for a new access token (and a new refresh token:
    /// each works once). Given when a session starts (sign-in, password change) and on each
    /// refresh; absent on a password-change-only sign-in and on a switch (keep the one you have).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The sign-in session this token belongs to (see `GET /me/sessions`).
    #[schema(format = Uuid)]
    pub session_id: String,
}

fn choices(memberships: &[TenantMembership]) -> Vec<TenantChoice> {
    memberships
        .iter()
        .map(|m| TenantChoice { tenant_id: m.tenant_id.clone(), name: m.tenant_name.clone(), role: m.role.clone() })
        .collect()
}

/// The session an answer's token belongs to, and its refresh token when one is handed out.
pub(crate) struct SessionGrant<'a> {
    pub id: &'a str,
    pub refresh_token: Option<&'a SecretString>,
}

/// Issues the right token for a person whose credentials (or current token) are proven.
pub(crate) fn issue(
    state: &AppState,
    user: UserId,
    user_version: i32,
    must_change_password: bool,
    memberships: &[TenantMembership],
    tenant: Option<&TenantMembership>,
    session: SessionGrant<'_>,
) -> Result<TokenResponse, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let ttl = state.config.access_token_ttl_secs;
    let claims = Claims {
        sub: user.as_text(),
        tid: tenant.map(|t| t.tenant_id.clone()),
        role: tenant.map(|t| t.role.clone()),
        regions: tenant.map(|t| t.regions.clone()).unwrap_or_default(),
        ver: match tenant {
            Some(t) => token_version(user_version, t.auth_version),
            None => i64::from(user_version),
        },
        iat: now,
        exp: now + ttl,
        jti: uuid::Uuid::now_v7().to_string(),
        sid: Some(session.id.to_string()),
        scope: must_change_password.then(|| SCOPE_PASSWORD_CHANGE.to_string()),
    };
    Ok(TokenResponse {
        access_token: state.keys.sign(&claims)?,
        token_type: "Bearer".into(),
        expires_in: ttl,
        tenant_id: tenant.map(|t| t.tenant_id.clone()),
        tenants: choices(memberships),
        must_change_password,
        refresh_token: session.refresh_token.map(|t| t.expose_secret().to_string()),
        session_id: session.id.to_string(),
    })
}

/// One answer for an unknown email, a wrong password and a locked account, so it tells nobody
/// which it was.
fn bad_credentials() -> ApiError {
    ApiError::Unauthorized(
        "the email or password is wrong (after repeated failures an account is locked for a while: wait, or reset the password)".into(),
    )
}

/// Sign in with email and password.
///
/// With one tenant (or `tenant_id` given) the token acts in that tenant. With several, the
/// token is identity-only and `tenants` lists them: call `POST /auth/switch`. A person who
/// must change their password gets a token good only for `POST /auth/password`.
/// Unknown emails and wrong passwords get the same answer in about the same time. After
/// repeated failures (`ROSTER_LOCKOUT_THRESHOLD`, default 5) the account is locked for a while
/// (a minute, doubling with each further failure, at most an hour) and answers the same 401
/// even to the right password; an owner or admin can clear the lock.
///
/// The answer starts a session: `refresh_token` gets new access tokens at `POST /auth/refresh`.
///
/// A tenant that requires single sign-on for the person's email domain is not reachable with
/// a password (owners keep theirs unless the tenant says otherwise): it is left out of
/// `tenants`, and asking for it, or having no other tenant, answers 403 `sso-required`.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong email or password"),
        (status = 403, description = "No active membership in the requested tenant, or none at all (`no-membership`); or the requested tenant (or every tenant of the person) requires SSO for the person's email domain (`sso-required`: use `POST /api/v1/auth/sso/start`)"),
        (status = 422, description = "A field is missing or too long"),
        (status = 429, description = "Too many sign-in attempts from your address; `Retry-After` says when to try again"),
    )
)]
#[post("/api/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    body: crate::api::json::Json<LoginRequest>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.login.check_client(&req).await?;
    let body = body.into_inner();
    crate::api::validate(&body)?;
    let password = SecretString::from(body.password);
    let email = EmailAddress::parse(&body.email).ok();
    let user = match email {
        Some(email) => {
            let email = email.into_string();
            db::run(&state.pool, move |conn| sessions::find_by_email(conn, &email)).await?
        }
        None => None,
    };
    // Always one argon2 verify (a dummy one for an unknown email), so timing tells nothing.
    let ok = state.hashers.verify(&password, user.as_ref().and_then(|u| u.password_hash.clone())).await?;
    let Some(user) = user else { return Err(bad_credentials()) };
    if sessions::is_locked(&user) {
        return Err(bad_credentials());
    }
    if !ok {
        let (id, meta) = (parse_stored::<UserId>(&user.id), RequestMeta::from_request(&req));
        let lockout = state.lockout();
        db::run_write(&state.pool, move |conn| sessions::record_failed_login(conn, id, lockout, &meta)).await?;
        return Err(bad_credentials());
    }
    let user_id: UserId = user.id.parse().map_err(|_| ApiError::internal("stored user id is invalid"))?;
    // Only now, with the password proven, does the SSO requirement speak: a guesser learns
    // nothing from it. Tenants requiring SSO for this address drop out of the password's reach.
    let email = user.email.clone();
    let (memberships, refused) = db::run(&state.pool, move |conn| {
        let all = sessions::active_memberships(conn, user_id)?;
        domains::split_by_sso_requirement(conn, &email, all, None)
    })
    .await?;
    if let Some(enforcing) = refused.iter().find(|m| body.tenant_id.is_some_and(|t| t.as_text() == m.tenant_id)) {
        return Err(sso_login_refused(enforcing));
    }
    if let (true, Some(enforcing)) = (memberships.is_empty(), refused.first()) {
        return Err(sso_login_refused(enforcing));
    }
    let tenant = match body.tenant_id {
        Some(wanted) => Some(
            memberships
                .iter()
                .find(|m| m.tenant_id == wanted.as_text())
                .ok_or_else(|| ApiError::forbidden("no-membership", "you are not an active member of that tenant"))?,
        ),
        None if memberships.len() == 1 => memberships.first(),
        None if memberships.is_empty() => {
            return Err(ApiError::forbidden("no-membership", "your account is not an active member of any tenant"));
        }
        None => None,
    };
    let tenant_id = tenant.map(TenantMembership::tenant);
    let (meta, limits) = (RequestMeta::from_request(&req), state.config.session_limits());
    let session =
        db::run_write(&state.pool, move |conn| sessions::signed_in(conn, user_id, tenant_id, &meta, limits)).await?;
    // A password-change-only sign-in gets no refresh token: its session ends with the change.
    let handed_out = (!user.must_change_password).then_some(&session.refresh_token);
    let grant = SessionGrant { id: &session.id, refresh_token: handed_out };
    let response = issue(&state, user_id, user.auth_version, user.must_change_password, &memberships, tenant, grant)?;
    Ok(no_store(response))
}

/// 403 `sso-required` for a password sign-in into `tenant`, which requires SSO for the person.
fn sso_login_refused(tenant: &TenantMembership) -> ApiError {
    sso_required(format!(
        "{} requires single sign-on (SSO) for your email address: sign in through your organisation's identity provider \
         (POST /api/v1/auth/sso/start with your email), not with a password",
        tenant.tenant_name
    ))
}

pub(crate) fn no_store(response: TokenResponse) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(response)
}

/// The tenant to act in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    pub tenant_id: TenantId,
}

/// Exchange a current token for one that acts in another of your tenants.
///
/// The session moves with you: later refreshes issue tokens for this tenant.
#[utoipa::path(
    tag = "auth",
    security(("bearer_auth" = [])),
    request_body = SwitchRequest,
    responses(
        (status = 200, description = "A token for the tenant", body = TokenResponse),
        (status = 403, description = "Not an active member of that tenant (`no-membership`); the session came from single sign-on, which is for its tenant only (`sso-session`); or the tenant requires SSO for your email domain and this session did not come from its SSO (`sso-required`)"),
    )
)]
#[post("/api/v1/auth/switch")]
pub async fn switch(
    state: web::Data<AppState>,
    who: Identity,
    body: crate::api::json::Json<SwitchRequest>,
) -> Result<HttpResponse, ApiError> {
    let user_id = who.user_id;
    let sid = session_of(&who.claims)?.to_string();
    let probe = sid.clone();
    let (user, memberships, refused) = db::run(&state.pool, move |conn| {
        let user = sessions::find_by_id(conn, user_id)?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
        let all = sessions::active_memberships(conn, user_id)?;
        let (usable, refused) = domains::split_by_sso_requirement(conn, &user.email, all, Some(&probe))?;
        Ok((user, usable, refused))
    })
    .await?;
    let wanted = body.tenant_id.as_text();
    if let Some(enforcing) = refused.iter().find(|m| m.tenant_id == wanted) {
        return Err(sso_login_refused(enforcing));
    }
    let tenant = memberships
        .iter()
        .find(|m| m.tenant_id == wanted)
        .ok_or_else(|| ApiError::forbidden("no-membership", "you are not an active member of that tenant"))?;
    let tenant_id = tenant.tenant();
    let session = sid.clone();
    let moved = db::run_write(&state.pool, move |conn| {
        // A session from single sign-on is for its connection's tenant only.
        if let Some((_, acting_in)) = crate::store::sso::session_connection(conn, &session)?
            && acting_in.as_deref() != Some(tenant_id.as_text().as_str())
        {
            return Err(ApiError::forbidden(
                "sso-session",
                "this session came from single sign-on and is for its tenant only: sign in to the other tenant on its own",
            ));
        }
        sessions::record_login(conn, user_id, Some(tenant_id))?;
        sessions::switch(conn, &session, user_id, tenant_id)
    })
    .await?;
    if !moved {
        return Err(ApiError::Unauthorized("the session of this access token has ended; sign in again".into()));
    }
    let grant = SessionGrant { id: &sid, refresh_token: None };
    let response =
        issue(&state, user_id, user.auth_version, user.must_change_password, &memberships, Some(tenant), grant)?;
    Ok(no_store(response))
}

/// Your current password and the new one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "the temporary password", "new_password": "a long passphrase of your own"}))]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 1024)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

/// Change your own password.
///
/// Works with a password-change-only token too (after signing in with a temporary
/// password). Every session and token you held before ends; the answer starts a new session.
#[utoipa::path(
    tag = "auth",
    security(("bearer_auth" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; a fresh token", body = TokenResponse),
        (status = 422, description = "The current password is wrong, or the new one breaks the policy"),
    )
)]
#[post("/api/v1/auth/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    who: PasswordChangeIdentity,
    body: crate::api::json::Json<ChangePasswordRequest>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = who.0;
    let body = body.into_inner();
    let user_id = who.user_id;
    let probe = who.claims.sid.clone();
    let (user, memberships, min_length) = db::run(&state.pool, move |conn| {
        let user = sessions::find_by_id(conn, user_id)?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
        let all = sessions::active_memberships(conn, user_id)?;
        // The new session reaches only what this one may (the SSO requirement stands).
        let (memberships, _) = domains::split_by_sso_requirement(conn, &user.email, all, probe.as_deref())?;
        let min = crate::store::tenants::strictest_min_length(conn, user_id)?;
        Ok((user, memberships, min))
    })
    .await?;
    let current = SecretString::from(body.current_password);
    if !state.hashers.verify(&current, user.password_hash.clone()).await? {
        return Err(ApiError::invalid("current_password", "is wrong"));
    }
    let mut errors: Vec<FieldError> =
        check_policy(&body.new_password, min_length, Some(&user.email), user.username.as_deref())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|m| FieldError::new("new_password", m))
            .collect();
    if body.new_password == secrecy::ExposeSecret::expose_secret(&current) {
        errors.push(FieldError::new("new_password", "must differ from the current password"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let hash = state.hashers.hash(&SecretString::from(body.new_password)).await?;
    let meta = RequestMeta::from_request(&req);
    let tenant = who.claims.tid.as_ref().and_then(|tid| memberships.iter().find(|m| &m.tenant_id == tid));
    let tenant = tenant.or(if memberships.len() == 1 { memberships.first() } else { None });
    let (tenant_id, limits) = (tenant.map(TenantMembership::tenant), state.config.session_limits());
    let (user, session) = db::run_write(&state.pool, move |conn| {
        let user = sessions::change_password(conn, user_id, hash, &meta)?;
        let session = sessions::start(conn, user_id, tenant_id, &meta, limits)?;
        Ok((user, session))
    })
    .await?;
    let grant = SessionGrant { id: &session.id, refresh_token: Some(&session.refresh_token) };
    Ok(no_store(issue(&state, user_id, user.auth_version, false, &memberships, tenant, grant)?))
}

/// A refresh token to exchange.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "kq3V1x1nS2u8rYbqk0mZ7w"}))]
pub struct RefreshRequest {
    /// As `refresh_token` was handed out. Any string that is not a live one (empty, cut,
    /// made up, used, ended) answers 401.
    #[schema(format = Password)]
    pub refresh_token: String,
}

/// Refresh tokens are 22 characters; a string beyond this is refused without a lookup.
const REFRESH_TOKEN_MAX_LEN: usize = 200;

fn refresh_refused(detail: &str) -> ApiError {
    ApiError::Unauthorized(detail.to_string())
}

/// Exchange a refresh token for a new access token and a new refresh token.
///
/// Each refresh token works once. Presenting one that was already exchanged ends its whole
/// session (someone else may hold a copy): sign in again. A session lasts at most
/// `ROSTER_SESSION_DAYS` (30) and ends after `ROSTER_SESSION_IDLE_DAYS` (7) without a refresh.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and refresh token", body = TokenResponse),
        (status = 401, description = "The refresh token is not a live one: empty, malformed, unknown, already used (the session is now ended), or its session has ended or run out. Sign in again"),
        (status = 403, description = "The session's tenant now requires SSO for your email domain and the session came from a password (`sso-required`); the session is ended"),
        (status = 422, description = "The body is not an object with a string `refresh_token`"),
    )
)]
#[post("/api/v1/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: crate::api::json::Json<RefreshRequest>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // A token that is not a live one is a sign-in that ran out, whatever its shape: 401, so a
    // client's "on 401, sign in again" covers it. Only a body without the string is 422.
    if body.refresh_token.is_empty() || body.refresh_token.len() > REFRESH_TOKEN_MAX_LEN {
        return Err(refresh_refused("the refresh token is not one this service issued; sign in again"));
    }
    let token = SecretString::from(body.refresh_token);
    let (meta, limits) = (RequestMeta::from_request(&req), state.config.session_limits());
    let outcome = db::run_write(&state.pool, move |conn| sessions::refresh(conn, &token, limits, &meta)).await?;
    let (session_id, user_id, tenant_id, next) = match outcome {
        sessions::Refreshed::Rotated { session_id, user_id, tenant_id, refresh_token } => {
            (session_id, parse_stored::<UserId>(&user_id), tenant_id, refresh_token)
        }
        sessions::Refreshed::Invalid => {
            return Err(refresh_refused("the refresh token is unknown, or its session has ended; sign in again"));
        }
        sessions::Refreshed::Reused => {
            return Err(refresh_refused(
                "this refresh token was already used, so its session has been ended (a copy may be in other hands); sign in again",
            ));
        }
    };
    let probe = session_id.clone();
    let (user, memberships, refused) = db::run(&state.pool, move |conn| {
        let Some(user) = sessions::find_by_id(conn, user_id)? else { return Ok((None, Vec::new(), Vec::new())) };
        let all = sessions::active_memberships(conn, user_id)?;
        let (usable, refused) = domains::split_by_sso_requirement(conn, &user.email, all, Some(&probe))?;
        Ok((Some(user), usable, refused))
    })
    .await?;
    let user = user.ok_or_else(|| refresh_refused("the account no longer exists"))?;
    // A password session in a tenant that has since required SSO goes no further there.
    if let Some(enforcing) = refused.iter().find(|m| tenant_id.as_deref() == Some(m.tenant_id.as_str())) {
        let (sid, meta) = (session_id.clone(), RequestMeta::from_request(&req));
        db::run_write(&state.pool, move |conn| sessions::end_own(conn, user_id, &sid, EndReason::SsoRequired, &meta))
            .await?;
        return Err(sso_login_refused(enforcing));
    }
    let tenant = match &tenant_id {
        Some(tid) => Some(memberships.iter().find(|m| &m.tenant_id == tid).ok_or_else(|| {
            refresh_refused("you are no longer an active member of this session's tenant; sign in again")
        })?),
        None => None,
    };
    let grant = SessionGrant { id: &session_id, refresh_token: Some(&next) };
    Ok(no_store(issue(&state, user_id, user.auth_version, user.must_change_password, &memberships, tenant, grant)?))
}

/// Sign out: end the session of the access token you send.
///
/// Its access tokens stop working at once and its refresh token no longer refreshes.
#[utoipa::path(
    tag = "auth",
    security(("bearer_auth" = [])),
    responses((status = 204, description = "Signed out"))
)]
#[post("/api/v1/auth/logout")]
pub async fn logout(state: web::Data<AppState>, who: PasswordChangeIdentity) -> Result<HttpResponse, ApiError> {
    let who = who.0;
    let sid = session_of(&who.claims)?.to_string();
    let (user, meta) = (who.user_id, who.meta.clone());
    db::run_write(&state.pool, move |conn| sessions::end_own(conn, user, &sid, EndReason::Logout, &meta)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ask for a password reset link.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com"}))]
pub struct PasswordResetRequest {
    #[validate(length(min = 1, max = 254))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
}

/// Set a new password with the token from the reset email.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "the token from the link in the email", "new_password": "a long passphrase of your own"}))]
pub struct PasswordResetConfirm {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
    #[validate(length(min = 1, max = 1024))]
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

/// What happened, in words.
#[derive(Serialize, ToSchema)]
pub struct Notice {
    #[schema(example = "If an account uses this email, a link to reset its password is on its way.")]
    pub message: String,
}

/// Forgot my password: email a reset link.
///
/// Answers 202 whether or not an account uses the email, so the answer tells nobody who has
/// an account. The link works once, for an hour; asking again replaces it.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted; an email follows if the account exists", body = Notice),
        (status = 403, description = "The address's domain is verified by a tenant that requires SSO (`sso-required`), whether or not an account uses it"),
        (status = 422, description = "The body is not valid"),
        (status = 429, description = "Too many reset requests from your address; `Retry-After` says when to try again"),
    )
)]
#[post("/api/v1/auth/password-reset")]
pub async fn request_password_reset(
    state: web::Data<AppState>,
    body: crate::api::json::Json<PasswordResetRequest>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.reset.check_client(&req).await?;
    let email = body.into_inner().email.trim().to_lowercase();
    // An address in a domain whose tenant requires SSO: refused on the domain alone, before
    // any account is looked up, so the answer is the same whether one exists.
    let probe = email.clone();
    if db::run(&state.pool, move |conn| domains::enforcement_for_email(conn, &probe)).await?.is_some() {
        let domain = crate::sso::email_domain(&email).unwrap_or_default();
        return Err(sso_required(format!(
            "addresses at {domain} sign in with single sign-on (SSO), so their passwords are not reset here: \
             sign in through your organisation's identity provider (POST /api/v1/auth/sso/start with your email)"
        )));
    }
    // Past the allowance for this address, the answer is the same and no email is sent.
    if state.limits.recipient_emails.try_take(&email).await.is_err() {
        log::warn!("reset emails to one address are over their hourly allowance; none sent");
        return Ok(accepted());
    }
    let meta = RequestMeta::from_request(&req);
    let (master, app_url) = (state.master.clone(), state.config.app_url.clone());
    let queued =
        db::run_write(&state.pool, move |conn| resets::request(conn, &master, &email, &app_url, &meta)).await?;
    if queued {
        state.mail_queued.notify_one();
    }
    Ok(accepted())
}

fn accepted() -> HttpResponse {
    HttpResponse::Accepted()
        .json(Notice { message: "If an account uses this email, a link to reset its password is on its way.".into() })
}

/// Set a new password with the token from a reset email.
///
/// Every session and access token of the account ends; sign in with the new password.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = PasswordResetConfirm,
    responses(
        (status = 200, description = "The password is changed", body = Notice),
        (status = 422, description = "The token is not current, or the password breaks the policy"),
        (status = 429, description = "Too many reset requests from your address; `Retry-After` says when to try again"),
    )
)]
#[post("/api/v1/auth/password-reset/confirm")]
pub async fn confirm_password_reset(
    state: web::Data<AppState>,
    body: crate::api::json::Json<PasswordResetConfirm>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.reset.check_client(&req).await?;
    let body = body.into_inner();
    let token = SecretString::from(body.token);
    let probe = token.clone();
    let (user, min_length) = db::run(&state.pool, move |conn| {
        let user = resets::holder(conn, &probe)?;
        let min = crate::store::tenants::strictest_min_length(conn, parse_stored(&user.id))?;
        Ok((user, min))
    })
    .await?;
    if let Err(problems) = check_policy(&body.new_password, min_length, Some(&user.email), user.username.as_deref()) {
        return Err(ApiError::Validation(problems.into_iter().map(|m| FieldError::new("new_password", m)).collect()));
    }
    let hash = state.hashers.hash(&SecretString::from(body.new_password)).await?;
    let meta = RequestMeta::from_request(&req);
    db::run_write(&state.pool, move |conn| resets::complete(conn, &token, hash, &meta)).await?;
    Ok(HttpResponse::Ok().json(Notice { message: "Your password is changed; sign in with it.".into() }))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(login)
        .service(switch)
        .service(change_password)
        .service(refresh)
        .service(logout)
        .service(request_password_reset)
        .service(confirm_password_reset);
}
