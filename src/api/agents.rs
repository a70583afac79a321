//! Device agents and the people they enrol (DESIGN.md section 11):
//! `POST /api/v1/agent/enrollments` and `GET /api/v1/agent/enrollments/{enrollment_id}` with an
//! `agent` key; `GET|POST /api/v1/profile-completions/{token}` and
//! `POST /api/v1/email-confirmations/{token}` for the person, without signing in. Approving and
//! rejecting are member routes (`api/users`).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::RequestMeta;
use crate::auth::guard::{AgentAccess, parse_path_id};
use crate::db;
use crate::db::models::EnrollmentRow;
use crate::domain::enrollment::{EnrollmentStatus, MAX_USERNAME, ProfileState};
use crate::domain::password::check_policy;
use crate::domain::{EmailAddress, UserId};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::store::enrollments::{self, EnrollmentState, Enrolment, ProfileInput};
use crate::store::outbox::Mailer;

/// The device an agent runs on.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_id": "agent-7f3a2c", "hostname": "PC-042", "os": "Windows 11 Pro 23H2"}))]
pub struct DeviceInfo {
    /// The agent installation's own stable id (printable ASCII, no spaces).
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7E]+$")]
    pub agent_id: String,
    /// No control characters.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x1F\x7F-\x9F\s][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub hostname: String,
    #[schema(max_length = 200)]
    pub os: Option<String>,
}

/// What the agent saw: the OS username signed in on the device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "jdoe", "device": {"agent_id": "agent-7f3a2c", "hostname": "PC-042", "os": "Windows 11 Pro 23H2"}}))]
pub struct EnrollmentRequest {
    /// The OS username (`jdoe`, or `ACME\jdoe`); matched without regard to case. No control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 104,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x1F\x7F-\x9F\s][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub username: String,
    pub device: DeviceInfo,
}

/// The member an enrolment is for.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnrolledMember {
    /// Their user id (the id admins approve or reject).
    pub id: UserId,
    /// The OS username the enrolment recorded.
    pub username: String,
    /// Their name: the OS username until they complete the profile.
    pub full_name: String,
}

/// An enrolment, as the agent sees it.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "enrollment_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e90", "status": "pending_approval", "profile": "incomplete",
    "member": {"id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e31", "username": "jdoe", "full_name": "jdoe"},
    "device": {"agent_id": "agent-7f3a2c", "hostname": "PC-042", "os": "Windows 11 Pro 23H2"},
    "completion_token": "kQ3m9xV0pZ7wB2nL5sT8yA", "completion_url": "http://localhost:3000/complete-profile?token=kQ3m9xV0pZ7wB2nL5sT8yA",
    "completion_expires_at": "2026-12-14T10:00:00Z", "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z"
}))]
pub struct EnrollmentView {
    #[schema(format = Uuid)]
    pub enrollment_id: String,
    /// `pending_approval` until an admin decides; `active` once approved; `rejected` (the
    /// membership is gone), `disabled`, `invited`, or `removed` (deleted after approval).
    pub status: EnrollmentStatus,
    pub profile: ProfileState,
    pub member: EnrolledMember,
    pub device: DeviceInfo,
    /// One-time token for the person to complete their profile (7 days); only in the answer to
    /// an enrolment, and only while the profile is not complete. Enrolling again issues a new one
    /// and voids this.
    pub completion_token: Option<String>,
    /// `ROSTER_APP_URL/complete-profile?token=...`: what the agent shows the person.
    pub completion_url: Option<String>,
    pub completion_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn device_info(row: &EnrollmentRow) -> DeviceInfo {
    DeviceInfo { agent_id: row.agent_id.clone(), hostname: row.hostname.clone(), os: row.os.clone() }
}

impl EnrollmentView {
    fn new(state: EnrollmentState, token: Option<(SecretString, chrono::NaiveDateTime)>, app_url: &str) -> Self {
        let row = &state.row;
        let (completion_token, completion_url, completion_expires_at) = match token {
            Some((token, expires)) => {
                let token = token.expose_secret().to_string();
                let url = format!("{app_url}/complete-profile?token={token}");
                (Some(token), Some(url), Some(expires.and_utc()))
            }
            None => (None, None, None),
        };
        EnrollmentView {
            enrollment_id: row.id.clone(),
            status: state.status,
            profile: state.profile,
            member: EnrolledMember {
                id: crate::domain::ids::parse_stored(&row.user_id),
                username: row.os_username.clone(),
                full_name: state.full_name.clone(),
            },
            device: device_info(row),
            completion_token,
            completion_url,
            completion_expires_at,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        }
    }
}

/// Enrol the person signed in on a device (an `agent` key).
///
/// An OS username that a member of the key's tenant has (their Roster username, or the OS
/// username an earlier enrolment recorded) attaches the device to them: 200. Any other makes a
/// member waiting for approval (`pending_approval`, with the key's role and regions; it takes a
/// seat) with a provisional address under `.invalid`: 201. Enrolling the same device and
/// username again makes nothing new and answers a fresh `completion_token` (the old one stops
/// working). Show the person `completion_url`; poll `GET .../enrollments/{enrollment_id}` to
/// tell them when an admin has approved.
#[utoipa::path(
    tag = "agents",
    security(("agent_key" = [])),
    request_body = EnrollmentRequest,
    responses(
        (status = 201, description = "A new member, waiting for approval", body = EnrollmentView,
            headers(("Location" = String, description = "The enrolment's URL"))),
        (status = 200, description = "An existing member (or the same device again)", body = EnrollmentView),
        (status = 401, description = "No agent key, or it is unknown, revoked or expired"),
        (status = 403, description = "Not an agent key (an `api` or `scim` key, or a person's token)"),
        (status = 409, description = "Every seat of the tenant's plan is taken: nothing was created"),
        (status = 429, description = "The key's request limit; `Retry-After` says when to try again"),
    )
)]
#[post("/api/v1/agent/enrollments")]
pub async fn enrol(
    state: web::Data<AppState>,
    access: AgentAccess,
    body: crate::api::json::Json<EnrollmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut errors = Vec::new();
    if body.username.chars().any(char::is_control) {
        errors.push(FieldError::new("username", "must not contain control characters"));
    }
    if body.username.trim().chars().count() > MAX_USERNAME {
        errors.push(FieldError::new("username", format!("must be at most {MAX_USERNAME} characters")));
    }
    if body.device.hostname.chars().any(char::is_control) {
        errors.push(FieldError::new("device.hostname", "must not contain control characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let who = Enrolment {
        username: body.username.trim().to_string(),
        agent_id: body.device.agent_id,
        hostname: body.device.hostname.trim().to_string(),
        os: body.device.os.map(|o| o.trim().to_string()).filter(|o| !o.is_empty()),
    };
    let done = access.run_write(&state.pool, move |conn, agent| enrollments::enrol(conn, agent, who)).await?;
    let view = EnrollmentView::new(done.state, done.token, &state.config.app_url);
    if done.created {
        let location = format!("/api/v1/agent/enrollments/{}", view.enrollment_id);
        return Ok(HttpResponse::Created().insert_header((actix_web::http::header::LOCATION, location)).json(view));
    }
    Ok(HttpResponse::Ok().json(view))
}

/// Where an enrolment stands (an `agent` key of the same tenant).
///
/// `status` tells the agent when to notify the person (`active`: approved; `rejected`), and
/// `profile` whether they still have to complete it. No token here.
#[utoipa::path(
    tag = "agents",
    security(("agent_key" = [])),
    params(("enrollment_id" = uuid::Uuid, Path, description = "The enrolment's id")),
    responses(
        (status = 200, body = EnrollmentView),
        (status = 401, description = "No agent key, or it is unknown, revoked or expired"),
        (status = 403, description = "Not an agent key"),
        (status = 404, description = "No such enrolment in the key's tenant"),
        (status = 429, description = "The key's request limit; `Retry-After` says when to try again"),
    )
)]
#[get("/api/v1/agent/enrollments/{enrollment_id}")]
pub async fn get_enrollment(
    state: web::Data<AppState>,
    access: AgentAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_path_id::<uuid::Uuid>(&req, "enrollment_id")?.to_string();
    let found = access.run(&state.pool, move |conn, agent| enrollments::get(conn, agent, &id)).await?;
    Ok(HttpResponse::Ok().json(EnrollmentView::new(found, None, &state.config.app_url)))
}

// ---------------------------------------------------------------- the person

/// What a completion link is for.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "tenant_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e10", "tenant_name": "Acme", "username": "jdoe",
    "device": {"agent_id": "agent-7f3a2c", "hostname": "PC-042", "os": "Windows 11 Pro 23H2"},
    "password_min_length": 12, "expires_at": "2026-12-14T10:00:00Z"
}))]
pub struct CompletionPreview {
    #[schema(format = Uuid)]
    pub tenant_id: String,
    pub tenant_name: String,
    /// The OS username the device reported.
    pub username: String,
    pub device: DeviceInfo,
    /// The tenant's password policy: at least this many characters.
    pub password_min_length: i32,
    pub expires_at: DateTime<Utc>,
}

/// Your name, your own email address and a password. The address becomes your sign-in address
/// when you follow the link sent to it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"full_name": "Jane Doe", "email": "jane.doe@acme.example", "password": "a long passphrase of my own"}))]
pub struct CompleteProfileRequest {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub full_name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// The profile is complete but for the address: a link is on its way to it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProfileSubmitted {
    pub email: String,
    #[schema(example = "A link is on its way to jane.doe@acme.example: follow it to confirm the address (7 days).")]
    pub message: String,
}

/// The address is confirmed and is now the sign-in address.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EmailConfirmed {
    pub email: String,
    /// The membership is approved: sign in now with the address and your password.
    pub can_sign_in: bool,
    pub message: String,
}

fn token_from(path: web::Path<String>, what: &str) -> Result<SecretString, ApiError> {
    let token = path.into_inner();
    if token.is_empty() || token.len() > 200 {
        return Err(ApiError::not_found(format!("this {what} link is unknown")));
    }
    Ok(SecretString::from(token))
}

/// See what a profile-completion link is for (no sign-in).
///
/// The tenant, the OS username and device, and the tenant's password length. Unknown, used,
/// replaced and expired links answer 404.
#[utoipa::path(
    tag = "agents",
    security(()),
    params(("token" = String, Path, description = "The token from `completion_url`")),
    responses(
        (status = 200, body = CompletionPreview),
        (status = 404, description = "The link is wrong, used, replaced or expired"),
        (status = 429, description = "Too many requests from your address"),
    )
)]
#[get("/api/v1/profile-completions/{token}")]
pub async fn preview_completion(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.invite.check_client(&req).await?;
    let token = token_from(path, "profile-completion")?;
    let opened = db::run(&state.pool, move |conn| enrollments::open_completion(conn, &token)).await?;
    Ok(HttpResponse::Ok().json(CompletionPreview {
        tenant_id: opened.tenant_id.as_text(),
        tenant_name: opened.tenant_name,
        username: opened.os_username,
        device: device_info(&opened.device),
        password_min_length: opened.password_min_length,
        expires_at: opened.expires_at.and_utc(),
    }))
}

/// Complete your profile (no sign-in): name, email and password.
///
/// The name shows at once. The address and password become yours when you follow the link
/// sent to the address (7 days); you sign in with them once an admin has also approved you, in
/// either order. An address that already has a Roster account is refused (409): ask an admin to
/// invite it instead. The link works once.
#[utoipa::path(
    tag = "agents",
    security(()),
    params(("token" = String, Path, description = "The token from `completion_url`")),
    request_body = CompleteProfileRequest,
    responses(
        (status = 202, description = "Saved; confirm the address with the link sent to it", body = ProfileSubmitted),
        (status = 404, description = "The link is wrong, used, replaced or expired"),
        (status = 409, description = "The address already belongs to a Roster account"),
        (status = 422, description = "A field is invalid, or the password breaks the tenant's policy"),
        (status = 429, description = "Too many requests from your address"),
    )
)]
#[post("/api/v1/profile-completions/{token}")]
pub async fn complete_profile(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: crate::api::json::Json<CompleteProfileRequest>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.invite.check_client(&req).await?;
    let token = token_from(path, "profile-completion")?;
    let body = body.into_inner();
    let probe = token.clone();
    let opened = db::run(&state.pool, move |conn| enrollments::open_completion(conn, &probe)).await?;
    let mut errors = Vec::new();
    let full_name = body.full_name.trim().to_string();
    if full_name.chars().any(char::is_control) {
        errors.push(FieldError::new("full_name", "must not contain control characters"));
    }
    let email = match EmailAddress::parse(&body.email) {
        Ok(email) => Some(email),
        Err(why) => {
            errors.push(FieldError::new("email", why));
            None
        }
    };
    if let Err(problems) = check_policy(
        &body.password,
        opened.password_min_length,
        email.as_ref().map(EmailAddress::as_str),
        Some(&opened.os_username),
    ) {
        errors.extend(problems.into_iter().map(|m| FieldError::new("password", m)));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else { return Err(ApiError::Validation(errors)) };
    let password_hash = state.hashers.hash(&SecretString::from(body.password)).await?;
    let meta = RequestMeta::from_request(&req);
    let input = ProfileInput { full_name, email: email.clone(), password_hash };
    let st = state.clone();
    db::run_write(&state.pool, move |conn| {
        let mailer = Mailer { master: &st.master, app_url: &st.config.app_url };
        enrollments::complete_profile(conn, &mailer, &token, input, &meta)
    })
    .await?;
    state.mail_queued.notify_one();
    Ok(HttpResponse::Accepted().json(ProfileSubmitted {
        message: format!("A link is on its way to {email}: follow it to confirm the address (7 days)."),
        email: email.into_string(),
    }))
}

/// Confirm the address given with a profile (no sign-in).
///
/// It becomes the sign-in address, with the password chosen then. `can_sign_in` says whether
/// the membership is approved yet. The link works once.
#[utoipa::path(
    tag = "agents",
    security(()),
    params(("token" = String, Path, description = "The token from the link in the email")),
    responses(
        (status = 200, body = EmailConfirmed),
        (status = 404, description = "The link is wrong, used, replaced or expired"),
        (status = 409, description = "The address came to belong to another Roster account meanwhile"),
        (status = 429, description = "Too many requests from your address"),
    )
)]
#[post("/api/v1/email-confirmations/{token}")]
pub async fn confirm_email(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.limits.invite.check_client(&req).await?;
    let token = token_from(path, "confirmation")?;
    let meta = RequestMeta::from_request(&req);
    let done = db::run_write(&state.pool, move |conn| enrollments::confirm_email(conn, &token, &meta)).await?;
    let message = if done.can_sign_in {
        format!("{} is confirmed: sign in with it and your password.", done.email)
    } else {
        format!("{} is confirmed: you can sign in with it once an admin has approved you.", done.email)
    };
    Ok(HttpResponse::Ok().json(EmailConfirmed { email: done.email, can_sign_in: done.can_sign_in, message }))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(enrol)
        .service(get_enrollment)
        .service(preview_completion)
        .service(complete_profile)
        .service(confirm_email);
}
