//! Invitations: `/api/v1/tenants/{tenant_id}/invitations[/{invitation_id}[/resend]]` for owners
//! and admins, and `/api/v1/invitations/{token}[/accept]` for the invited person.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::api::auth::{SessionGrant, TokenResponse, issue, no_store};
use crate::api::users::dto::parse_regions;
use crate::api::{Problems, page_limit};
use crate::auth::guard::parse_path_id;
use crate::auth::policy::TenantAction;
use crate::auth::{RequestMeta, TenantAccess, TenantContext};
use crate::db;
use crate::domain::ids::parse_stored;
use crate::domain::password::check_policy;
use crate::domain::{EmailAddress, RegionId, Role, UserId};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::store::idempotency::{IdempotencyKey, Render};
use crate::store::invitations::{self, Acceptor, InvitationRow, InvitationState, Invited, NewInvitation};
use crate::store::outbox::Mailer;
use crate::store::sessions;

/// Whom to invite, with which role and regions.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bo@example.com", "role": "operator", "regions": []}))]
pub struct CreateInvitationRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    pub role: Role,
    /// Region ids (admins must give at least one of theirs).
    #[serde(default)]
    #[schema(value_type = BTreeSet<RegionId>)]
    pub regions: Vec<String>,
}

/// An invitation. The link itself is only ever in the email.
#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "bo@example.com")]
    pub email: String,
    pub role: Role,
    pub regions: Vec<RegionId>,
    /// `pending`, `accepted`, `revoked` or `expired`.
    #[schema(example = "pending")]
    pub status: String,
    /// The link works until then (UTC); resending starts the 7 days again.
    pub expires_at: DateTime<Utc>,
    /// The user id of whoever sent it.
    pub invited_by: Option<String>,
    /// How often the email was sent.
    pub sent_count: i32,
    pub last_sent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The user id of the person who accepted.
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&InvitationRow> for InvitationView {
    fn from(row: &InvitationRow) -> Self {
        Self {
            id: row.id.clone(),
            email: row.email.clone(),
            role: row.role(),
            regions: row.region_ids(),
            status: row.state().as_str().into(),
            expires_at: row.expires_at.and_utc(),
            invited_by: row.invited_by.clone(),
            sent_count: row.sent_count,
            last_sent_at: row.last_sent_at.and_utc(),
            created_at: row.created_at.and_utc(),
            accepted_by: row.accepted_by.clone(),
            accepted_at: row.accepted_at.map(|t| t.and_utc()),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
        }
    }
}

/// A page of invitations, newest first.
#[derive(Serialize, ToSchema)]
pub struct InvitationPage {
    pub items: Vec<InvitationView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvitationListParams {
    /// `pending`, `accepted`, `revoked` or `expired`; all when absent.
    #[param(schema_with = crate::api::params::invitation_status)]
    pub status: Option<String>,
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

fn invitation_id(req: &HttpRequest) -> Result<String, ApiError> {
    parse_path_id::<uuid::Uuid>(req, "invitation_id").map(|id| id.to_string())
}

fn mailer(state: &AppState) -> Mailer<'_> {
    Mailer { master: &state.master, app_url: &state.config.app_url }
}

/// Invite someone to this tenant.
///
/// The policy is that of creating members: admins invite operators and viewers within their
/// regions. The person gets an email with a link (7 days, single use); an open invitation
/// holds a seat. Someone who already has a Roster account joins with it; anyone else chooses
/// a name and password when accepting.
#[utoipa::path(
    tag = "invitations",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = CreateInvitationRequest,
    responses(
        (status = 201, description = "Invited; the email is on its way", body = InvitationView),
        (status = 403, description = "Your role cannot invite, or cannot grant this role or these regions"),
        (status = 404, description = "No such tenant for you"),
        (status = 409, description = "Already a member, an open invitation exists (resend it), or no seat is free"),
        (status = 422, description = "Invalid fields"),
        (status = 429, description = "Too many emails from this tenant or to this address this hour"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/invitations")]
pub async fn create_invitation(
    state: web::Data<AppState>,
    access: TenantAccess,
    body: crate::api::json::Json<CreateInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut p = Problems::validated(&body);
    let email = p.check("email", EmailAddress::parse(&body.email));
    let regions = parse_regions(&mut p, &body.regions);
    p.finish()?;
    let email = email.ok_or_else(|| ApiError::internal("email parsed"))?;
    let ctx = access.check(&state.pool).await?;
    ctx.actor().require(TenantAction::CreateMember)?;
    let new = NewInvitation { email, role: body.role, regions };
    Ok(match send_invitation(&state, ctx, new, None, false).await? {
        Invited::New(row) => HttpResponse::Created().json(InvitationView::from(&*row)),
        Invited::Replayed(replay) => crate::api::replayed(replay),
    })
}

/// Invites `new.email` (within the email allowances, unless `allowance_spent` says this
/// request already counted its email) and wakes the mail worker. With an idempotency key, the
/// answer is kept with `status`.
pub(crate) async fn send_invitation(
    state: &web::Data<AppState>,
    ctx: TenantContext,
    new: NewInvitation,
    idem: Option<(IdempotencyKey, u16)>,
    allowance_spent: bool,
) -> Result<Invited, ApiError> {
    if !allowance_spent {
        state.limits.tenant_email(&ctx.tenant_text(), new.email.as_str()).await?;
    }
    let st = state.clone();
    let invited = db::run_write(&state.pool, move |conn| {
        let render = |row: &InvitationRow| serde_json::to_string(&InvitationView::from(row)).unwrap_or_default();
        let idem = idem.as_ref().map(|(key, status)| (key, *status, &render as Render<'_, InvitationRow>));
        invitations::create(conn, &ctx, new, &mailer(&st), idem)
    })
    .await?;
    if let Invited::New(_) = invited {
        state.mail_queued.notify_one();
    }
    Ok(invited)
}

/// List invitations, newest first.
///
/// Owners see all; admins see those they could have sent.
#[utoipa::path(
    tag = "invitations",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), InvitationListParams),
    responses(
        (status = 200, body = InvitationPage),
        (status = 403, description = "Your role cannot manage invitations"),
        (status = 404, description = "No such tenant for you"),
        (status = 422, description = "A filter is invalid"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/invitations")]
pub async fn list_invitations(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<InvitationListParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(InvitationState::parse(s).ok_or_else(|| {
            ApiError::invalid("status", format!("must be pending, accepted, revoked or expired (got {s:?})"))
        })?),
    };
    let limit = page_limit(q.limit)?;
    let cursor = crate::store::cursor::decode_id(q.cursor.as_deref())?;
    let (rows, next_cursor) = access
        .run(&state.pool, move |conn, ctx| invitations::list(conn, ctx, status, cursor.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(InvitationPage { items: rows.iter().map(InvitationView::from).collect(), next_cursor }))
}

/// Read one invitation.
///
/// Its state (`pending`, `accepted`, `revoked`, `expired`), who sent it, how often, and until when
/// it works. Admins see only invitations they could have sent.
#[utoipa::path(
    tag = "invitations",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("invitation_id" = uuid::Uuid, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 200, body = InvitationView),
        (status = 403, description = "Your role cannot manage invitations"),
        (status = 404, description = "No such invitation for you"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/invitations/{invitation_id}")]
pub async fn get_invitation(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = invitation_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| invitations::get(conn, ctx, &id)).await?;
    Ok(HttpResponse::Ok().json(InvitationView::from(&row)))
}

/// Send the invitation again, with a new link.
///
/// The previous link stops working; the new one works for 7 days. An expired invitation
/// opens again if a seat is free.
#[utoipa::path(
    tag = "invitations",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("invitation_id" = uuid::Uuid, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 200, description = "Sent again", body = InvitationView),
        (status = 403, description = "Your role cannot manage invitations"),
        (status = 404, description = "No such invitation for you"),
        (status = 409, description = "Already accepted or revoked, or (expired) no seat is free"),
        (status = 429, description = "Too many emails from this tenant or to this address this hour"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/invitations/{invitation_id}/resend")]
pub async fn resend_invitation(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = invitation_id(&req)?;
    let ctx = access.check(&state.pool).await?;
    let (c, probe) = (ctx.clone(), id.clone());
    let current = db::run(&state.pool, move |conn| invitations::get(conn, &c, &probe)).await?;
    state.limits.tenant_email(&ctx.tenant_text(), &current.email).await?;
    let st = state.clone();
    let row = db::run_write(&state.pool, move |conn| invitations::resend(conn, &ctx, &id, &mailer(&st))).await?;
    state.mail_queued.notify_one();
    Ok(HttpResponse::Ok().json(InvitationView::from(&row)))
}

/// Revoke an invitation: its link stops working and its seat is free again.
///
/// Only a pending invitation can be revoked (409 otherwise). Admins revoke only invitations they
/// could have sent.
#[utoipa::path(
    tag = "invitations",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("invitation_id" = uuid::Uuid, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 403, description = "Your role cannot manage invitations"),
        (status = 404, description = "No such invitation for you"),
        (status = 409, description = "Already accepted"),
    )
)]
#[delete("/api/v1/tenants/{tenant_id}/invitations/{invitation_id}")]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = invitation_id(&req)?;
    access.run_write(&state.pool, move |conn, ctx| invitations::revoke(conn, ctx, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What an invitation link offers, for the page that accepts it.
#[derive(Serialize, ToSchema)]
pub struct InvitationPreview {
    #[schema(format = Uuid)]
    pub tenant_id: String,
    #[schema(example = "Acme")]
    pub tenant_name: String,
    #[schema(example = "Ann Smith")]
    pub invited_by: Option<String>,
    #[schema(example = "bo@example.com")]
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    /// True: a Roster account uses this email; accept with its password. False: accept with
    /// your full name and a new password.
    pub account_exists: bool,
    /// The shortest password the tenant accepts (for a new account).
    #[schema(example = 12)]
    pub password_min_length: i32,
}

/// Accept an invitation.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"full_name": "Bo Berg", "password": "a long passphrase of my own"}))]
pub struct AcceptInvitationRequest {
    /// Your name, for a new account (ignored when you already have one).
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub full_name: Option<String>,
    /// A new password for a new account; the password of your account if you have one.
    #[validate(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

fn token_from(path: web::Path<String>) -> Result<SecretString, ApiError> {
    let token = path.into_inner();
    if token.is_empty() || token.len() > 200 {
        return Err(ApiError::not_found("invitation not found"));
    }
    Ok(SecretString::from(token))
}

/// See an invitation before accepting it.
///
/// Anyone with the link may look: the tenant, who invited, the role, and whether the address
/// already has a Roster account (then accepting takes that account's password). Unknown, used,
/// revoked and expired links answer 404.
#[utoipa::path(
    tag = "invitations",
    security(()),
    params(("token" = String, Path, description = "The token from the link in the email")),
    responses(
        (status = 200, body = InvitationPreview),
        (status = 404, description = "The link is wrong, used, revoked, replaced or expired"),
        (status = 429, description = "Too many invitation requests from your address"),
    )
)]
#[get("/api/v1/invitations/{token}")]
pub async fn preview_invitation(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.invite.check_client(&req).await?;
    let token = token_from(path)?;
    let opened = db::run(&state.pool, move |conn| invitations::open(conn, &token)).await?;
    Ok(HttpResponse::Ok().json(InvitationPreview {
        tenant_id: opened.invitation.tenant_id.clone(),
        tenant_name: opened.tenant_name,
        invited_by: opened.inviter_name,
        email: opened.invitation.email.clone(),
        role: opened.invitation.role(),
        expires_at: opened.invitation.expires_at.and_utc(),
        account_exists: opened.account.is_some(),
        password_min_length: opened.min_password_length,
    }))
}

/// Accept an invitation and sign in to the tenant.
///
/// Without a Roster account: send `full_name` and a new `password` (the tenant's policy
/// applies); the account is made. With one: send its `password`; the tenant joins your
/// account and shows in `GET /me/tenants`. Either way the answer signs you in to the tenant.
/// The link works once.
#[utoipa::path(
    tag = "invitations",
    security(()),
    params(("token" = String, Path, description = "The token from the link in the email")),
    request_body = AcceptInvitationRequest,
    responses(
        (status = 200, description = "Joined and signed in", body = TokenResponse),
        (status = 404, description = "The link is wrong, used, revoked, replaced or expired"),
        (status = 409, description = "Already a member of the tenant"),
        (status = 422, description = "Name missing, password breaks the policy, or is not your account's"),
        (status = 429, description = "Too many invitation requests from your address"),
    )
)]
#[post("/api/v1/invitations/{token}/accept")]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: crate::api::json::Json<AcceptInvitationRequest>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.invite.check_client(&req).await?;
    let token = token_from(path)?;
    let body = body.into_inner();
    crate::api::validate(&body)?;
    let meta = RequestMeta::from_request(&req);
    let probe = token.clone();
    let opened = db::run(&state.pool, move |conn| invitations::open(conn, &probe)).await?;
    let password = SecretString::from(body.password.clone());
    let acceptor = match &opened.account {
        Some(account) => {
            let user: UserId = parse_stored(&account.id);
            if sessions::is_locked(account) {
                return Err(ApiError::invalid(
                    "password",
                    "your account is locked after repeated failed sign-ins; try again later or reset your password",
                ));
            }
            if !state.hashers.verify(&password, account.password_hash.clone()).await? {
                let (lockout, m) = (state.lockout(), meta.clone());
                db::run_write(&state.pool, move |conn| sessions::record_failed_login(conn, user, lockout, &m)).await?;
                return Err(ApiError::invalid(
                    "password",
                    format!("is not the password of your Roster account {}; use it, or reset it first", account.email),
                ));
            }
            Acceptor::Existing { user }
        }
        None => {
            let full_name = body.full_name.as_deref().map(str::trim).unwrap_or_default().to_string();
            let mut errors = Vec::new();
            if full_name.is_empty() {
                errors.push(FieldError::new("full_name", "is required to make your account"));
            }
            let email = &opened.invitation.email;
            if let Err(problems) = check_policy(&body.password, opened.min_password_length, Some(email), None) {
                errors.extend(problems.into_iter().map(|m| FieldError::new("password", m)));
            }
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            Acceptor::New { full_name, password_hash: state.hashers.hash(&password).await? }
        }
    };
    let (limits, m) = (state.config.session_limits(), meta.clone());
    let (user_id, user, memberships, session) = db::run_write(&state.pool, move |conn| {
        let (user_id, tenant) = invitations::accept(conn, &token, acceptor, &m)?;
        let session = sessions::signed_in(conn, user_id, Some(tenant), &m, limits)?;
        let user = sessions::find_by_id(conn, user_id)?.ok_or_else(|| ApiError::internal("account vanished"))?;
        Ok((user_id, user, sessions::active_memberships(conn, user_id)?, session))
    })
    .await?;
    let tenant = memberships.iter().find(|m| m.tenant_id == opened.invitation.tenant_id);
    let grant = SessionGrant { id: &session.id, refresh_token: Some(&session.refresh_token) };
    Ok(no_store(issue(&state, user_id, user.auth_version, user.must_change_password, &memberships, tenant, grant)?))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_invitation)
        .service(list_invitations)
        .service(get_invitation)
        .service(resend_invitation)
        .service(revoke_invitation)
        .service(preview_invitation)
        .service(accept_invitation);
}
