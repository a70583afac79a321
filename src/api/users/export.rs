//! `GET /api/v1/tenants/{tenant_id}/users/export`: every member a list would show, streamed
//! as CSV or JSON a thousand at a time, so a large tenant is never held in memory at once.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::dto::{ListParams, MemberView};
use crate::auth::policy::TenantAction;
use crate::auth::{TenantAccess, TenantContext};
use crate::db;
use crate::domain::Plan;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry};
use crate::store::members::{self, ListFilter, MemberRecord};

/// Members per database read while streaming.
const CHUNK: i64 = 1000;

const CSV_COLUMNS: [&str; 14] = [
    "id",
    "email",
    "username",
    "full_name",
    "role",
    "status",
    "regions",
    "job_title",
    "department",
    "section",
    "manager_id",
    "created_at",
    "last_login_at",
    "locked_until",
];

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default) or `json` (one array).
    #[param(schema_with = crate::api::params::export_format)]
    pub format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

fn csv_line(fields: &[String]) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(fields).map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
    w.into_inner().map_err(|e| ApiError::internal(format!("writing CSV: {e}")))
}

fn csv_row(rec: &MemberRecord) -> Result<Vec<u8>, ApiError> {
    let v = MemberView::from(rec);
    let text = |o: Option<String>| o.unwrap_or_default();
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    csv_line(&[
        v.id.as_text(),
        v.email,
        text(v.username),
        v.full_name,
        v.role.as_str().into(),
        v.status.as_str().into(),
        v.regions.iter().map(|r| r.as_text()).collect::<Vec<_>>().join("|"),
        text(v.job_title),
        text(v.department),
        text(v.section),
        text(v.manager_id.map(|m| m.as_text())),
        text(time(Some(v.created_at))),
        text(time(v.last_login_at)),
        text(time(v.locked_until)),
    ])
}

/// Who may export (the permission table), and only on plans that include exports.
fn allowed(ctx: &TenantContext, plan: &str) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ExportMembers)?;
    match Plan::parse(plan) {
        Some(Plan::Plus | Plan::Enterprise) => Ok(()),
        _ => Err(ApiError::forbidden(
            "plan-upgrade-required",
            format!("exporting members needs the plus or enterprise plan; this tenant is on {plan}"),
        )),
    }
}

/// Export members as CSV or JSON.
///
/// Takes the list's filters and sort (`limit` and `cursor` are ignored: every matching member
/// is in the file) and streams the result. Owners only, on the `plus` and `enterprise` plans
/// (others answer 403 `plan-upgrade-required`). Audited.
#[utoipa::path(
    tag = "users",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ExportParams, ListParams),
    responses(
        (status = 200, description = "The members, streamed: CSV with a header line (`format=csv`), or a JSON array of members (`format=json`)",
            content((String = "text/csv"), (Vec<MemberView> = "application/json"))),
        (status = 403, description = "Not an owner, or the plan does not include exports (`plan-upgrade-required`)"),
        (status = 404, description = "No such tenant for you"),
        (status = 422, description = "A filter or the format is invalid"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/users/export")]
pub async fn export_members(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Two query shapes in one string: the format, and the list's filters.
    let query = req.query_string();
    let mut pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
    let format = match pairs.iter().position(|(k, _)| k == "format") {
        Some(i) => match pairs.remove(i).1.as_str() {
            "csv" => Format::Csv,
            "json" => Format::Json,
            other => return Err(ApiError::invalid("format", format!("must be csv or json (got {other:?})"))),
        },
        None => Format::Csv,
    };
    let rest = pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
    let params = web::Query::<ListParams>::from_query(&rest)
        .map_err(|e| ApiError::bad_request("invalid-query", format!("the query string is invalid: {e}")))?;
    let mut filter: ListFilter = params.into_inner().parse()?;
    filter.limit = CHUNK;
    filter.cursor = None;
    let shown = format!("{filter:?}");
    let ctx = access
        .run_write(&state.pool, move |conn, ctx| {
            let plan = crate::store::tenants::get(conn, ctx)?.row.plan;
            allowed(ctx, &plan)?;
            let entry = AuditEntry {
                action: "members.exported",
                target_type: "tenant",
                target_id: Some(ctx.tenant_text()),
                before: None,
                after: Some(json!({"format": if format == Format::Csv { "csv" } else { "json" }, "filter": shown})),
            };
            audit::record(conn, ctx, entry)?;
            Ok(ctx.clone())
        })
        .await?;
    let tenant = ctx.tenant_text();
    let lists = state.lists.clone();
    // One blocking task reads page after page on one connection and hands each rendered chunk
    // over a channel of two: it waits while the client is slow, and stops when the client goes.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(2);
    let pool = state.clone();
    actix_web::rt::spawn(async move {
        let failed = tx.clone();
        let outcome = db::run(&pool.pool, move |conn| {
            let mut next = Some(filter);
            let mut first = true;
            while let Some(f) = next.take() {
                let page = members::list_once(conn, &ctx, &f, &lists)?;
                let mut bytes = render(format, &page, first)?;
                first = false;
                next = page.next_cursor.clone().map(|c| ListFilter { cursor: Some(c), ..f });
                if next.is_none() && format == Format::Json {
                    bytes.extend_from_slice(b"]\n");
                }
                if tx.blocking_send(Ok(web::Bytes::from(bytes))).is_err() {
                    break; // the client went away
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = outcome {
            log::warn!("export stopped: {e}");
            let _ = failed.send(Err(std::io::Error::other("the export failed; see the server log"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let (kind, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    Ok(HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Content-Disposition", format!("attachment; filename=\"members-{tenant}.{ext}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body))
}

/// One read's worth of output (the header or `[` first).
fn render(format: Format, page: &members::Page, first: bool) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            if first {
                out.extend(csv_line(&CSV_COLUMNS.map(String::from))?);
            }
            for rec in &page.items {
                out.extend(csv_row(rec)?);
            }
        }
        Format::Json => {
            if first {
                out.push(b'[');
            }
            for (i, rec) in page.items.iter().enumerate() {
                if !first || i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(&MemberView::from(rec)).map_err(|e| ApiError::internal(e.to_string()))?);
                out.push(b'\n');
            }
        }
    }
    Ok(out)
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .map_err(|e| ApiError::bad_request("invalid-query", format!("the query string is invalid: {e}")))
}

fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
