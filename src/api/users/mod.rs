//! Members of a tenant: `/api/v1/tenants/{tenant_id}/users[/{user_id}[/status|/password-reset]]`.

pub mod dto;
pub mod export;
pub mod import;

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use secrecy::{ExposeSecret, SecretString};
use utoipa_actix_web::service_config::ServiceConfig;

use self::dto::*;
use crate::api::invitations::{InvitationView, send_invitation};
use crate::api::{etag, if_match};
use crate::auth::guard::parse_path_id;
use crate::auth::{TenantAccess, TenantContext};
use crate::db;
use crate::domain::password::{check_policy, digest_generated, generate_secret};
use crate::domain::{MemberStatus, UserId};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::store::invitations::{Invited, NewInvitation};
use crate::store::{members, tenants};

fn member_response(status: actix_web::http::StatusCode, rec: members::MemberRecord) -> HttpResponse {
    let version = rec.membership.version;
    HttpResponse::build(status).insert_header(etag(version)).json(MemberView::from(&rec))
}

/// The stored form of a temporary password: an admin-typed one is checked against the
/// tenant's policy and hashed with argon2id; a generated one is a SHA-256 digest.
async fn temporary_password(
    state: &AppState,
    ctx: &TenantContext,
    typed: Option<String>,
    email: Option<&str>,
) -> Result<(SecretString, String), ApiError> {
    match typed {
        None => {
            let secret = generate_secret();
            let digest = digest_generated(&secret);
            Ok((secret, digest))
        }
        Some(pw) => {
            let c = ctx.clone();
            let min = db::run(&state.pool, move |conn| tenants::min_password_length(conn, &c)).await?;
            if let Err(problems) = check_policy(&pw, min, email, None) {
                return Err(ApiError::Validation(
                    problems.into_iter().map(|m| FieldError::new("temporary_password", m)).collect(),
                ));
            }
            let secret = SecretString::from(pw);
            let hash = state.hashers.hash(&secret).await?;
            Ok((secret, hash))
        }
    }
}

/// List members you can see, with filters, sort and cursor paging.
///
/// Owners see everyone; admins see members within their regions and themselves; operators
/// and viewers see only themselves.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ListParams),
    responses(
        (status = 200, body = MemberPage),
        (status = 404, description = "No such tenant for you"),
        (status = 422, description = "A filter is invalid"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/users")]
pub async fn list_members(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().parse()?;
    let lists = state.lists.clone();
    let page = access.run(&state.pool, move |conn, ctx| members::list(conn, ctx, &filter, &lists)).await?;
    Ok(HttpResponse::Ok().json(MemberPage {
        items: page.items.iter().map(MemberView::from).collect(),
        next_cursor: page.next_cursor.clone(),
        total: page.total,
    }))
}

/// Counts for a filter sidebar: members by role, status, department and region.
///
/// Takes the list's filters (`sort`, `limit` and `cursor` are ignored) and counts only members
/// you can see. Each count is what the list shows with that value added as a filter: a
/// region's count includes its sub-regions, as `region=<id>` does.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ListParams),
    responses(
        (status = 200, body = MemberFacets),
        (status = 404, description = "No such tenant for you"),
        (status = 422, description = "A filter is invalid"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/users/facets")]
pub async fn member_facets(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().parse()?;
    let facets = access.run(&state.pool, move |conn, ctx| members::facets(conn, ctx, &filter)).await?;
    Ok(HttpResponse::Ok().json(MemberFacets::from(facets)))
}

/// Create a member with a temporary password, or with an email to choose one.
///
/// The answer carries the temporary password once (generated unless you typed one); the
/// member must change it at first sign-in. With `delivery: email` there is none: the member
/// gets an email with a link (7 days, single use) to choose their password.
///
/// An email that already has a Roster account (someone who is a member of other tenants) is
/// never changed or shown here: that person is invited instead, as with
/// `POST .../invitations`, and the answer is 202 with the invitation. They accept with their
/// own credentials and join with `role` and `regions`; the other fields (their name, username,
/// password, job title, department, section, manager, status) are theirs or set once they
/// have joined. Invitations follow the same rules: a seat, the email allowances (429), 409
/// `invitation-pending` while one is open for this email.
///
/// With an `Idempotency-Key` header, a retry of the same request within 24 hours answers the
/// first result again (with `Idempotent-Replayed: true`, and without the temporary password,
/// which is never stored); the same key with a different request answers 409.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the first answer is replayed for 24 h"),
    ),
    request_body = CreateMemberRequest,
    responses(
        (status = 201, description = "Created", body = MemberCreated, headers(("ETag" = String))),
        (status = 202, description = "The email already has a Roster account: that person is invited instead (the invitation email is on its way)", body = InvitationView),
        (status = 403, description = "Your role cannot create members, or cannot grant this role or these regions"),
        (status = 404, description = "No such tenant for you"),
        (status = 409, description = "Seat limit reached, already a member, an open invitation for this email (resend it), username taken"),
        (status = 422, description = "Invalid fields"),
        (status = 429, description = "`delivery: email`, or an invitation: too many emails from this tenant or to this address this hour"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/users")]
pub async fn create_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<CreateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let idem = crate::api::idempotency_key(&req)?;
    let body = body.into_inner();
    let delivery = body.delivery;
    let delivery_text = match delivery {
        Delivery::TemporaryPassword => "temporary_password",
        Delivery::Email => "email",
    };
    let (new, typed) = body.parse()?;
    let email = new.email.as_str().to_string();
    // What the person is invited with when the email already has an account.
    let invitation = NewInvitation { email: new.email.clone(), role: new.role, regions: new.regions.clone() };
    let invitation_key = idem.clone();
    let create = move |conn: &mut crate::db::AnyConnection,
                       ctx: &TenantContext,
                       credential: members::Credential<'_>| {
        // A replay has the first answer's shape, without the temporary password (never stored).
        let render = |rec: &members::MemberRecord| {
            let replay = MemberCreated {
                member: MemberView::from(rec),
                temporary_password: None,
                delivery: delivery_text.into(),
            };
            serde_json::to_string(&replay).unwrap_or_default()
        };
        members::create(conn, ctx, new, credential, idem.as_ref().map(|k| (k, &render as members::RenderReplay<'_>)))
    };
    let (secret, ctx, created) = match (delivery, typed) {
        (Delivery::Email, Some(_)) => {
            return Err(ApiError::invalid("temporary_password", "only goes with `delivery: temporary_password`"));
        }
        // An email with a link: the caller is checked before the email allowance is spent.
        (Delivery::Email, None) => {
            let ctx = access.check(&state.pool).await?;
            ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
            state.limits.tenant_email(&ctx.tenant_text(), &email).await?;
            let (st, c) = (state.clone(), ctx.clone());
            let created = db::run_write(&state.pool, move |conn| {
                let mailer = crate::store::outbox::Mailer { master: &st.master, app_url: &st.config.app_url };
                create(conn, &c, members::Credential::EmailLink(&mailer))
            })
            .await?;
            state.mail_queued.notify_one();
            (None, ctx, created)
        }
        // Generated: a digest, no hashing work, so the caller is checked with the write itself.
        (Delivery::TemporaryPassword, None) => {
            let secret = generate_secret();
            let hash = members::Credential::Temporary(digest_generated(&secret));
            let (ctx, created) =
                access.run_write(&state.pool, move |conn, ctx| Ok((ctx.clone(), create(conn, ctx, hash)?))).await?;
            (Some(secret), ctx, created)
        }
        // Typed: check the caller before spending an argon2 hash on the request.
        (Delivery::TemporaryPassword, Some(typed)) => {
            let ctx = access.check(&state.pool).await?;
            ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
            let (secret, hash) = temporary_password(&state, &ctx, Some(typed), Some(&email)).await?;
            let hash = members::Credential::Temporary(hash);
            let c = ctx.clone();
            (Some(secret), ctx, db::run_write(&state.pool, move |conn| create(conn, &c, hash)).await?)
        }
    };
    match created {
        members::Created::New(rec) => {
            let version = rec.membership.version;
            let delivery = if secret.is_some() { "temporary_password" } else { "email" };
            Ok(HttpResponse::Created().insert_header(etag(version)).insert_header(("Cache-Control", "no-store")).json(
                MemberCreated {
                    member: MemberView::from(&*rec),
                    temporary_password: secret.map(|s| s.expose_secret().to_string()),
                    delivery: delivery.into(),
                },
            ))
        }
        members::Created::Replayed(replay) => Ok(crate::api::replayed(replay)),
        // `delivery: email` already counted its one email against the allowances.
        members::Created::HasAccount => {
            let key = invitation_key.map(|k| (k, 202));
            Ok(match send_invitation(&state, ctx, invitation, key, delivery == Delivery::Email).await? {
                Invited::New(row) => HttpResponse::Accepted().json(InvitationView::from(&*row)),
                Invited::Replayed(replay) => crate::api::replayed(replay),
            })
        }
    }
}

fn user_id(req: &HttpRequest) -> Result<UserId, ApiError> {
    parse_path_id(req, "user_id")
}

/// Read one member.
///
/// `id` is the person's user id. Owners see everyone; admins see members within their regions and
/// themselves; operators and viewers see only themselves (others answer 404). The `ETag` carries
/// the member's version for `If-Match`.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses((status = 200, body = MemberView, headers(("ETag" = String))), (status = 404, description = "No such member for you"))
)]
#[get("/api/v1/tenants/{tenant_id}/users/{user_id}")]
pub async fn get_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let rec = access
        .run_joined(
            &state.pool,
            move |conn, tenant, caller| members::load_for_get(conn, tenant, user, caller),
            move |_, ctx, rec| members::check_get(ctx, user, rec),
        )
        .await?;
    Ok(member_response(actix_web::http::StatusCode::OK, rec))
}

/// Change a member's profile, role, regions or manager.
///
/// Changing role or regions revokes the member's current tokens. Send `If-Match` with the
/// ETag you read to avoid overwriting someone else's change (412 when stale).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
    ),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, body = MemberView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot make this change, or it would change yourself"),
        (status = 404, description = "No such member for you"),
        (status = 409, description = "Last owner, email or username taken"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "Invalid fields"),
    )
)]
#[patch("/api/v1/tenants/{tenant_id}/users/{user_id}")]
pub async fn update_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<UpdateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let patch = body.into_inner().parse()?;
    let version = if_match(&req)?;
    let rec = access.run_write(&state.pool, move |conn, ctx| members::update(conn, ctx, user, patch, version)).await?;
    Ok(member_response(actix_web::http::StatusCode::OK, rec))
}

/// Enable or disable a member.
///
/// Disabling revokes the member's tokens at once. Enabling needs a free seat.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
    ),
    request_body = StatusRequest,
    responses(
        (status = 200, body = MemberView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot change this member's status, or it is yourself"),
        (status = 404, description = "No such member for you"),
        (status = 409, description = "Seat limit reached, or the last active owner"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "Status must be active or disabled"),
    )
)]
#[put("/api/v1/tenants/{tenant_id}/users/{user_id}/status")]
pub async fn set_member_status(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<StatusRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let status = MemberStatus::from(body.into_inner().status);
    if !matches!(status, MemberStatus::Active | MemberStatus::Disabled) {
        return Err(ApiError::invalid("status", "must be active or disabled"));
    }
    let version = if_match(&req)?;
    let rec =
        access.run_write(&state.pool, move |conn, ctx| members::set_status(conn, ctx, user, status, version)).await?;
    Ok(member_response(actix_web::http::StatusCode::OK, rec))
}

/// Delete a disabled member.
///
/// Removes the membership; the person's identity goes too when this was its last one.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Your role cannot delete this member, or it is yourself"),
        (status = 404, description = "No such member for you"),
        (status = 409, description = "The member is not disabled"),
        (status = 412, description = "If-Match is stale"),
    )
)]
#[delete("/api/v1/tenants/{tenant_id}/users/{user_id}")]
pub async fn delete_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let version = if_match(&req)?;
    access.run_write(&state.pool, move |conn, ctx| members::delete(conn, ctx, user, version)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reset a member's password: a temporary password, or an email with a link.
///
/// `delivery: temporary_password` (the default): a new temporary password, generated unless
/// you send one, shown once; the member's tokens stop working and they must choose a new
/// password at next sign-in; only for people whose sign-in this tenant manages (409
/// `identity-not-managed` for someone who is also a member elsewhere). `delivery: email`: the
/// member gets a link (one hour, single use) to choose a new password themselves; answers 202.
/// This works for everyone you may reset, as the link goes only to the person. The body is
/// optional.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    request_body(content = Option<PasswordResetRequest>, description = "Optional"),
    responses(
        (status = 200, description = "A temporary password, shown once", body = PasswordResetResponse),
        (status = 202, description = "The email with the link is queued", body = PasswordResetEmailed),
        (status = 403, description = "Your role cannot reset this member's password, or it is yourself"),
        (status = 404, description = "No such member for you"),
        (status = 409, description = "`delivery: temporary_password`: the person's sign-in is not managed by this tenant (send a link with `delivery: email`)"),
        (status = 422, description = "The typed password breaks the policy"),
        (status = 429, description = "`delivery: email`: too many emails from this tenant or to this address this hour"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/users/{user_id}/password-reset")]
pub async fn reset_member_password(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let body = body.map_err(crate::api::json::payload_error)?;
    let body: PasswordResetRequest = crate::api::json_or_empty(&req, &body)?;
    if body.delivery == Delivery::Email {
        if body.temporary_password.is_some() {
            return Err(ApiError::invalid("temporary_password", "only goes with `delivery: temporary_password`"));
        }
        let c = ctx.clone();
        let member = db::run(&state.pool, move |conn| members::get(conn, &c, user)).await?;
        state.limits.tenant_email(&ctx.tenant_text(), &member.email).await?;
        let (master, app_url) = (state.master.clone(), state.config.app_url.clone());
        db::run_write(&state.pool, move |conn| members::email_password_reset(conn, &ctx, user, &master, &app_url))
            .await?;
        state.mail_queued.notify_one();
        return Ok(HttpResponse::Accepted().json(PasswordResetEmailed {
            user_id: user,
            delivery: "email".into(),
            message: "A link to choose a new password is on its way to the member; it works once, for an hour.".into(),
        }));
    }
    let (secret, hash) = temporary_password(&state, &ctx, body.temporary_password, None).await?;
    db::run_write(&state.pool, move |conn| members::reset_password(conn, &ctx, user, hash)).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(PasswordResetResponse {
        user_id: user,
        temporary_password: secret.expose_secret().to_string(),
        must_change_password: true,
    }))
}

/// End every session of a member in this tenant.
///
/// Their access tokens for this tenant stop working at once and their refresh tokens no
/// longer refresh; sessions they hold in other tenants go on. Signing in again works (disable
/// the member to stop that).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses(
        (status = 200, description = "The sessions are ended", body = SessionsEnded),
        (status = 403, description = "Your role cannot manage this member, or it is yourself (use DELETE /me/sessions/{id})"),
        (status = 404, description = "No such member for you"),
    )
)]
#[delete("/api/v1/tenants/{tenant_id}/users/{user_id}/sessions")]
pub async fn end_member_sessions(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let ended = access.run_write(&state.pool, move |conn, ctx| members::end_sessions(conn, ctx, user)).await?;
    Ok(HttpResponse::Ok().json(SessionsEnded { user_id: user, sessions_ended: ended as i64 }))
}

/// The devices a member was enrolled on by a device agent.
///
/// Whoever may read the member sees them (owners, admins within their regions, the member
/// themselves), oldest first; a rejected enrolment is not listed.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses((status = 200, body = DeviceList), (status = 404, description = "No such member for you"))
)]
#[get("/api/v1/tenants/{tenant_id}/users/{user_id}/devices")]
pub async fn member_devices(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let rows = access.run(&state.pool, move |conn, ctx| members::devices(conn, ctx, user)).await?;
    let items: Vec<DeviceView> = rows.into_iter().map(DeviceView::from).collect();
    Ok(HttpResponse::Ok().json(DeviceList { total: items.len(), items }))
}

/// Approve a member a device agent enrolled.
///
/// `pending_approval` becomes `active` (the seat is already theirs). The policy is that of
/// enabling: owners, and admins for operators and viewers within their regions. The person
/// signs in once their address is confirmed too. Also a bulk action (`approve`).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
    ),
    responses(
        (status = 200, body = MemberView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot approve this member"),
        (status = 404, description = "No such member for you"),
        (status = 409, description = "The member is not waiting for approval"),
        (status = 412, description = "If-Match is stale"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/users/{user_id}/approve")]
pub async fn approve_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let version = if_match(&req)?;
    let rec = access.run_write(&state.pool, move |conn, ctx| members::approve(conn, ctx, user, version)).await?;
    Ok(member_response(actix_web::http::StatusCode::OK, rec))
}

/// Reject a member a device agent enrolled.
///
/// The membership is removed (and the identity, which has no other); the agent sees the
/// enrolment `rejected`. The policy is that of deleting. Also a bulk action (`reject`).
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
    ),
    responses(
        (status = 204, description = "Rejected and removed"),
        (status = 403, description = "Your role cannot reject this member"),
        (status = 404, description = "No such member for you"),
        (status = 409, description = "The member is not waiting for approval"),
        (status = 412, description = "If-Match is stale"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/users/{user_id}/reject")]
pub async fn reject_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let version = if_match(&req)?;
    access.run_write(&state.pool, move |conn, ctx| members::reject(conn, ctx, user, version)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Clear a sign-in lock.
///
/// After repeated failed sign-ins an account is locked for a while (`locked_until` on the
/// member). This lets the member sign in again at once and starts the failure count afresh.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses(
        (status = 200, description = "Unlocked (also when it was not locked)", body = MemberView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot manage this member, or it is yourself"),
        (status = 404, description = "No such member for you"),
    )
)]
#[delete("/api/v1/tenants/{tenant_id}/users/{user_id}/lock")]
pub async fn unlock_member(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let rec = access.run_write(&state.pool, move |conn, ctx| members::unlock(conn, ctx, user)).await?;
    Ok(member_response(actix_web::http::StatusCode::OK, rec))
}

/// One action for many members: enable, disable, delete, reset_password, set_role or
/// set_department.
///
/// Each member is checked against the policy on its own and changed in its own transaction,
/// so some may succeed while others fail; each is audited on its own. The answer reports every
/// item in the order sent, with the status it alone would have answered. `reset_password`
/// returns each member's new temporary password, shown only in this answer.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = BulkRequest,
    responses(
        (status = 200, description = "Every item's outcome", body = BulkResponse),
        (status = 403, description = "Your role cannot manage members at all"),
        (status = 404, description = "No such tenant for you"),
        (status = 422, description = "No ids, more than 1,000, a malformed or repeated id, or a missing or stray field for the action"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/users/bulk")]
pub async fn bulk_action(
    state: web::Data<AppState>,
    access: TenantAccess,
    body: crate::api::json::Json<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let (action, users) = body.into_inner().parse()?;
    let ctx = access.check(&state.pool).await?;
    ctx.actor().require(crate::auth::policy::TenantAction::BulkManageMembers)?;
    let outcomes =
        db::run_write(&state.pool, move |conn| Ok(crate::store::bulk::run(conn, &ctx, &action, &users))).await?;
    let results: Vec<BulkItemResult> = outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok(done) => BulkItemResult {
                user_id: o.user_id,
                ok: true,
                status: if done.member.is_some() { 200 } else { 204 },
                temporary_password: done.password_text(),
                member: done.member.as_ref().map(MemberView::from),
                problem: None,
            },
            Err(problem) => BulkItemResult {
                user_id: o.user_id,
                ok: false,
                status: problem.status,
                member: None,
                temporary_password: None,
                problem: Some(problem),
            },
        })
        .collect();
    let succeeded = results.iter().filter(|r| r.ok).count();
    let failed = results.len() - succeeded;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(BulkResponse {
        succeeded,
        failed,
        results,
    }))
}

/// A manager's reports: direct, or with `depth=all` everyone below them.
///
/// Only reports you can see are listed, by depth then name.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("user_id" = uuid::Uuid, Path, description = "The manager's user id"),
        ReportsParams,
    ),
    responses(
        (status = 200, body = ReportList),
        (status = 404, description = "No such member for you"),
        (status = 422, description = "`depth` is not direct or all"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/users/{user_id}/reports")]
pub async fn member_reports(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    query: web::Query<ReportsParams>,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&req)?;
    let all = match query.into_inner().depth.as_deref() {
        None | Some("direct") => false,
        Some("all") => true,
        Some(other) => return Err(ApiError::invalid("depth", format!("must be direct or all (got {other:?})"))),
    };
    let found = access.run(&state.pool, move |conn, ctx| members::reports(conn, ctx, user, all)).await?;
    let items: Vec<Report> =
        found.iter().map(|(rec, depth)| Report { member: MemberView::from(rec), depth: *depth }).collect();
    Ok(HttpResponse::Ok().json(ReportList { total: items.len(), items }))
}

pub fn configure(cfg: &mut ServiceConfig) {
    // `facets` before `{user_id}`, which would take it for an id.
    cfg.service(list_members)
        .service(member_facets)
        .service(bulk_action)
        .service(import::import_members)
        .service(export::export_members)
        .service(create_member)
        .service(get_member)
        .service(member_reports)
        .service(update_member)
        .service(set_member_status)
        .service(delete_member)
        .service(reset_member_password)
        .service(end_member_sessions)
        .service(member_devices)
        .service(approve_member)
        .service(reject_member)
        .service(unlock_member);
}
