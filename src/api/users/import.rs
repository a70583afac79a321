//! `POST /api/v1/tenants/{tenant_id}/users/import`: members from a CSV file.

use actix_web::{HttpRequest, HttpResponse, post, web};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::TenantAccess;
use crate::auth::policy::TenantAction;
use crate::db;
use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::import::{self, Delivery, Imported, MAX_BYTES};
use crate::store::outbox::Mailer;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// `true`: check every row and report, write nothing.
    pub dry_run: Option<bool>,
    /// `temporary_password` (default): each new member's temporary password is in the answer,
    /// once. `email`: each gets an email with a link (7 days) to choose a password.
    #[param(schema_with = crate::api::params::delivery)]
    pub delivery: Option<String>,
}

/// A member the import made, or would make.
#[derive(Serialize, ToSchema)]
pub struct ImportedMember {
    /// The member's line in the file (the header is line 1).
    #[schema(example = 2)]
    pub line: usize,
    /// Absent in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[schema(example = "ann@example.com")]
    pub email: String,
    #[schema(example = "Ann Smith")]
    pub full_name: String,
    /// Shown only in this answer; the member must change it at first sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

/// What an import did (or, in a dry run, would do).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"dry_run": false, "created": 1, "members": [
    {"line": 2, "user_id": "01937a2f-0000-7000-8000-000000000001", "email": "ann@example.com", "full_name": "Ann Smith", "temporary_password": "q3Vt0b1Yx9J2mWcK4hN7sA"}
]}))]
pub struct ImportReport {
    pub dry_run: bool,
    /// Members created (0 in a dry run).
    pub created: usize,
    pub members: Vec<ImportedMember>,
}

/// Reads at most [`MAX_BYTES`] from a stream of chunks.
async fn read_capped<S, E>(mut stream: S) -> Result<Vec<u8>, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request("unreadable-body", format!("the upload could not be read: {e}")))?;
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "the file is larger than {} MiB; split it",
                MAX_BYTES / (1024 * 1024)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The file: the body itself (`text/csv`), or the `file` part of `multipart/form-data`.
async fn file(req: &HttpRequest, payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let kind = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = kind.split(';').next().unwrap_or("").trim().to_string();
    match essence.as_str() {
        "text/csv" | "application/csv" | "text/plain" => read_capped(payload).await,
        "multipart/form-data" => {
            let mut form = actix_multipart::Multipart::new(req.headers(), payload);
            while let Some(field) = form.next().await {
                let field = field.map_err(|e| {
                    ApiError::bad_request("unreadable-body", format!("the multipart body could not be read: {e}"))
                })?;
                let is_file = field.content_disposition().is_some_and(|d| d.get_name() == Some("file"));
                let body = read_capped(field).await?;
                if is_file {
                    return Ok(body);
                }
            }
            Err(ApiError::invalid("file", "the multipart body has no part named `file`"))
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "send the file as the body with Content-Type: text/csv, or as the part `file` of multipart/form-data"
                .into(),
        )),
    }
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// The created members as CSV, passwords included (for handing them out).
fn as_csv(members: &[ImportedMember]) -> Result<String, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| ApiError::internal(format!("writing CSV: {e}"));
    w.write_record(["line", "user_id", "email", "full_name", "temporary_password"]).map_err(fail)?;
    for m in members {
        w.write_record([
            m.line.to_string(),
            m.user_id.map(|u| u.as_text()).unwrap_or_default(),
            m.email.clone(),
            m.full_name.clone(),
            m.temporary_password.clone().unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ApiError::internal(e.to_string()))
}

/// Import members from a CSV file.
///
/// The first line names the columns, in any order: `email` and `full_name` (required),
/// `username`, `job_title`, `department`, `section`, `role` (default viewer), `regions` (names
/// or ids, separated by `|`), `manager_email` (a member, or another line of the file) and
/// `status` (`active` or `disabled`). UTF-8, with or without a byte-order mark; `,` or `;`
/// between fields. At most 10,000 rows and 5 MiB.
///
/// Every row is checked first: its fields, the policy (an admin imports only operators and
/// viewers within its regions), duplicates in the file and against the tenant, and seats for
/// the whole file. Any problem answers 422 listing each (`row`, `field`, `message`) and
/// nothing is written. Otherwise all members are created in one transaction. With
/// `dry_run=true` nothing is written either way. The answer lists each member with its
/// temporary password (once), as JSON or, with `Accept: text/csv`, as CSV.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ImportParams),
    request_body(content = String, description = "The CSV file (or multipart/form-data with the part `file`)", content_type = "text/csv",
        example = "email,full_name,role,department\nann@example.com,Ann Smith,operator,Ops\n"),
    responses(
        (status = 200, description = "Dry run: every row is fine", body = ImportReport),
        (status = 201, description = "Every member is created (as CSV with `Accept: text/csv`: line, user_id, email, full_name, temporary_password)", body = ImportReport),
        (status = 403, description = "Your role cannot create members"),
        (status = 404, description = "No such tenant for you"),
        (status = 413, description = "The file is larger than 5 MiB"),
        (status = 415, description = "Neither text/csv nor multipart/form-data"),
        (status = 422, description = "The file cannot be read, has more than 10,000 rows, or rows have problems (each listed with its row); nothing was written"),
        (status = 429, description = "`delivery=email`: more emails than this tenant may send this hour"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/users/import")]
pub async fn import_members(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    query: web::Query<ImportParams>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let params = query.into_inner();
    let dry_run = params.dry_run.unwrap_or(false);
    let by_email = match params.delivery.as_deref() {
        None | Some("temporary_password") => false,
        Some("email") => true,
        Some(other) => {
            return Err(ApiError::invalid("delivery", format!("must be temporary_password or email (got {other:?})")));
        }
    };
    let ctx = access.check(&state.pool).await?;
    ctx.actor().require(TenantAction::CreateMember)?;
    let bytes = file(&req, payload).await?;
    let (rows, errors) = web::block(move || import::parse(&bytes))
        .await
        .map_err(|e| ApiError::internal(format!("reading the file: {e}")))??;
    if by_email && !dry_run {
        state.limits.tenant_emails.check_n(&ctx.tenant_text(), rows.len(), "emails from this tenant this hour").await?;
    }
    let st = state.clone();
    let imported: Vec<Imported> = db::run_write(&state.pool, move |conn| {
        let mailer = Mailer { master: &st.master, app_url: &st.config.app_url };
        let delivery = if by_email { Delivery::Emails(&mailer) } else { Delivery::TemporaryPasswords };
        import::run(conn, &ctx, rows, errors, dry_run, delivery)
    })
    .await?;
    if by_email && !dry_run {
        state.mail_queued.notify_one();
    }
    let members: Vec<ImportedMember> = imported
        .into_iter()
        .map(|i| ImportedMember {
            line: i.line,
            user_id: (!dry_run).then_some(i.user_id),
            email: i.email,
            full_name: i.full_name,
            temporary_password: i.temporary_password.map(|s| s.expose_secret().to_string()),
        })
        .collect();
    let status = if dry_run { actix_web::http::StatusCode::OK } else { actix_web::http::StatusCode::CREATED };
    let mut response = HttpResponse::build(status);
    response.insert_header(("Cache-Control", "no-store"));
    if wants_csv(&req) {
        return Ok(response.content_type("text/csv; charset=utf-8").body(as_csv(&members)?));
    }
    let created = if dry_run { 0 } else { members.len() };
    Ok(response.json(ImportReport { dry_run, created, members }))
}
