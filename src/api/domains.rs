//! Verified domains of a tenant: `GET|POST /domains`, `GET|DELETE /domains/{domain_id}`,
//! `POST /domains/{domain_id}/verify`. Owners, and API keys with the owner role. A domain is
//! proven by a DNS TXT record; a verified one belongs to this tenant alone, and SSO sign-ins
//! and the SSO requirement act on the addresses in it.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::page_limit;
use crate::auth::TenantAccess;
use crate::auth::guard::parse_path_id;
use crate::error::ApiError;
use crate::sso::dns;
use crate::state::AppState;
use crate::store::domains::{self, Checked, DomainRow};

/// The DNS record that proves the domain.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VerificationRecord {
    /// Always `TXT`.
    #[serde(rename = "type")]
    #[schema(example = "TXT")]
    pub record_type: String,
    /// Where to publish it.
    #[schema(example = "_roster-challenge.acme.example")]
    pub name: String,
    /// What to publish, exactly.
    #[schema(example = "roster-verification=3f1c9a0e5b7d4c2a8e6f1b3d5a7c9e0f")]
    pub value: String,
}

/// A domain of the tenant.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1ef0", "domain": "acme.example", "status": "pending",
    "verification": {"type": "TXT", "name": "_roster-challenge.acme.example",
        "value": "roster-verification=3f1c9a0e5b7d4c2a8e6f1b3d5a7c9e0f"},
    "verified_at": null, "last_checked_at": null, "last_check_error": null,
    "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z", "version": 1
}))]
pub struct DomainView {
    #[schema(format = Uuid)]
    pub id: String,
    /// Lower case; an internationalised name in its ASCII (`xn--`) form.
    pub domain: String,
    /// `pending` until a check finds the record, then `verified`.
    #[schema(pattern = "^(pending|verified)$")]
    pub status: String,
    pub verification: VerificationRecord,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// What the last failed check found.
    pub last_check_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Changes with every check; the `ETag`.
    pub version: i32,
}

impl From<DomainRow> for DomainView {
    fn from(r: DomainRow) -> Self {
        DomainView {
            status: if r.is_verified() { "verified" } else { "pending" }.into(),
            verification: VerificationRecord {
                record_type: "TXT".into(),
                name: dns::challenge_name(&r.domain),
                value: dns::challenge_value(&r.challenge_token),
            },
            id: r.id,
            domain: r.domain,
            verified_at: r.verified_at.map(|t| t.and_utc()),
            last_checked_at: r.last_checked_at.map(|t| t.and_utc()),
            last_check_error: r.last_check_error,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DomainPage {
    pub items: Vec<DomainView>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// A domain to prove.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"domain": "acme.example"}))]
pub struct AddDomainRequest {
    /// A registrable name such as `acme.example` or `eu.acme.example` (not an address, not a
    /// public mail domain such as gmail.com).
    #[schema(min_length = 3, max_length = 253)]
    pub domain: String,
}

/// Paging.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DomainListParams {
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

/// The shipped list of public mail domains (`src/sso/public_domains.txt`).
const PUBLIC_DOMAINS: &str = include_str!("../sso/public_domains.txt");

/// Whether `domain` is (or lies under) a public mail domain. `name.*` entries stand for the
/// name under any suffix of short labels (gmx.de, gmx.co.uk).
pub fn is_public_mail_domain(domain: &str) -> bool {
    let lines = PUBLIC_DOMAINS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    for entry in lines {
        if let Some(name) = entry.strip_suffix(".*") {
            // `domain` is `name.<suffix>` or ends in `.name.<suffix>`, the suffix short labels.
            let labels: Vec<&str> = domain.split('.').collect();
            for (i, label) in labels.iter().enumerate() {
                let rest = &labels[i + 1..];
                if *label == name && (1..=2).contains(&rest.len()) && rest.iter().all(|l| l.len() <= 3) {
                    return true;
                }
            }
        } else if domain == entry || domain.ends_with(&format!(".{entry}")) {
            return true;
        }
    }
    false
}

/// A domain as given -> its lower-case ASCII form, or why it is not one Roster takes.
pub fn parse_domain(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("must be a domain name such as acme.example".into());
    }
    if trimmed.contains('@') {
        return Err("must be a domain name, not an email address (acme.example, not ann@acme.example)".into());
    }
    if trimmed.contains("://") || trimmed.contains('/') {
        return Err("must be a bare domain name, not a URL (acme.example)".into());
    }
    let ascii = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii_strict(trimmed)
            .map_err(|_| format!("{trimmed:?} is not a valid internationalised domain name"))?
    };
    if ascii.len() > 253 {
        return Err("must be at most 253 characters".into());
    }
    if ascii.parse::<std::net::IpAddr>().is_ok() || ascii.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>().is_ok()
    {
        return Err("must be a domain name, not an IP address".into());
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err("must have at least two labels, such as acme.example".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("must not have empty labels (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("label {label:?} may hold only letters, digits and hyphens"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with a hyphen"));
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err("must be a domain name, not an IP address".into());
    }
    Ok(ascii)
}

fn domain_id(req: &HttpRequest) -> Result<String, ApiError> {
    parse_path_id::<uuid::Uuid>(req, "domain_id").map(|id| id.hyphenated().to_string())
}

fn domain_response(status: actix_web::http::StatusCode, row: DomainRow) -> HttpResponse {
    HttpResponse::build(status).insert_header(crate::api::etag(row.version)).json(DomainView::from(row))
}

/// List the tenant's domains (owners).
///
/// Newest first, each with its status and the TXT record that proves it.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), DomainListParams),
    responses((status = 200, body = DomainPage), (status = 403, description = "Only owners (and owner-role API keys) manage domains")))]
#[get("/api/v1/tenants/{tenant_id}/domains")]
pub async fn list_domains(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<DomainListParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let cursor = crate::store::cursor::decode_id(q.cursor.as_deref())?;
    let (rows, next_cursor, total) =
        access.run(&state.pool, move |conn, ctx| domains::list(conn, ctx, cursor.as_deref(), limit)).await?;
    Ok(HttpResponse::Ok().json(DomainPage {
        items: rows.into_iter().map(DomainView::from).collect(),
        next_cursor,
        total,
    }))
}

/// Add a domain to prove (owners).
///
/// The answer's `verification` is the DNS TXT record to publish (`name` and `value`); then call
/// `POST .../domains/{domain_id}/verify`. Public mail domains (gmail.com, outlook.com and the
/// like) are refused, as is a domain another tenant has verified (409 `domain-claimed`).
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = AddDomainRequest,
    responses((status = 201, body = DomainView, headers(("ETag" = String), ("Location" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage domains"),
        (status = 409, description = "The tenant has this domain already (`domain-exists`), or another tenant has verified it (`domain-claimed`)"),
        (status = 422, description = "Not a domain name, or a public mail domain")))]
#[post("/api/v1/tenants/{tenant_id}/domains")]
pub async fn add_domain(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<AddDomainRequest>,
) -> Result<HttpResponse, ApiError> {
    let domain = parse_domain(&body.into_inner().domain).map_err(|why| ApiError::invalid("domain", why))?;
    if is_public_mail_domain(&domain) {
        return Err(ApiError::invalid(
            "domain",
            format!(
                "{domain} is a public mail domain (anyone can have an address there); add your organisation's own domain"
            ),
        ));
    }
    let row = access.run_write(&state.pool, move |conn, ctx| domains::add(conn, ctx, &domain)).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), row.id);
    let mut res = domain_response(actix_web::http::StatusCode::CREATED, row);
    res.headers_mut().insert(
        actix_web::http::header::LOCATION,
        actix_web::http::header::HeaderValue::from_str(&location).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(res)
}

/// Read a domain (owners).
///
/// Its status, the TXT record that proves it and how the last check went.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("domain_id" = uuid::Uuid, Path, description = "The domain's id")),
    responses((status = 200, body = DomainView, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage domains"), (status = 404, description = "No such domain")))]
#[get("/api/v1/tenants/{tenant_id}/domains/{domain_id}")]
pub async fn get_domain(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = domain_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| domains::get(conn, ctx, &id)).await?;
    Ok(domain_response(actix_web::http::StatusCode::OK, row))
}

/// Check a domain's TXT record now (owners).
///
/// Looks up `verification.name` (with the system's resolver, or `ROSTER_DNS_RESOLVER`) and
/// verifies the domain when one of its TXT records is exactly `verification.value`. Otherwise
/// 422 saying what was found: no such name, no TXT record, the records there, no answer in
/// time, or the resolver's error (kept as `last_check_error`). A verified domain stays
/// verified when a later check fails.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("domain_id" = uuid::Uuid, Path, description = "The domain's id")),
    responses((status = 200, description = "Verified", body = DomainView, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage domains"), (status = 404, description = "No such domain"),
        (status = 409, description = "Another tenant has verified this domain (`domain-claimed`)"),
        (status = 422, description = "The record was not found; `detail` says what DNS answered")))]
#[post("/api/v1/tenants/{tenant_id}/domains/{domain_id}/verify")]
pub async fn verify_domain(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = domain_id(&req)?;
    // Read first (and check the caller), look up outside any transaction, then record.
    let probe = id.clone();
    let (ctx, row) =
        access.run(&state.pool, move |conn, ctx| Ok((ctx.clone(), domains::get(conn, ctx, &probe)?))).await?;
    let name = dns::challenge_name(&row.domain);
    let expected = dns::challenge_value(&row.challenge_token);
    let answer = state.dns.txt(&name).await;
    let found = dns::judge(&name, &expected, &answer, &state.dns.describe());
    let checked = crate::db::run_write(&state.pool, move |conn| domains::record_check(conn, &ctx, &id, found)).await?;
    match checked {
        Checked::Verified(row) => Ok(domain_response(actix_web::http::StatusCode::OK, row)),
        Checked::Failed { detail, .. } => Err(ApiError::invalid("domain", detail)),
    }
}

/// Remove a domain (owners).
///
/// Its claim goes too: another tenant may verify it afterwards, and SSO sign-ins and the SSO
/// requirement no longer cover its addresses. While the tenant requires SSO, its last verified
/// domain stays (409): turn `sso_required` off first.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("domain_id" = uuid::Uuid, Path, description = "The domain's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Only owners (and owner-role API keys) manage domains"), (status = 404, description = "No such domain"),
        (status = 409, description = "The tenant requires SSO and this is its last verified domain (`sso-required-needs-domain`)"),
        (status = 412, description = "If-Match is stale")))]
#[delete("/api/v1/tenants/{tenant_id}/domains/{domain_id}")]
pub async fn delete_domain(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = domain_id(&req)?;
    let version = crate::api::if_match(&req)?;
    access.run_write(&state.pool, move |conn, ctx| domains::remove(conn, ctx, &id, version)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_domains).service(add_domain).service(get_domain).service(verify_domain).service(delete_domain);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(parse_domain(" Acme.Example. ").as_deref(), Ok("acme.example"));
        assert_eq!(parse_domain("bücher.example").as_deref(), Ok("xn--bcher-kva.example"));
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.example",
            "a-.example",
            "a_b.example",
            "1.2.3.4",
            "[::1]",
            "ann@acme.example",
            "https://acme.example",
            "x.123",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad}");
        }
        assert!(parse_domain(&format!("{}.example", "a".repeat(64))).is_err());
    }

    #[test]
    fn public_mail_domains_are_known() {
        for public in ["gmail.com", "outlook.com", "gmx.de", "gmx.co.uk", "yandex.ru", "mail.gmail.com", "web.de"] {
            assert!(is_public_mail_domain(public), "{public}");
        }
        for own in ["acme.example", "gmx.mycompany.com", "notgmail.com", "webde.example"] {
            assert!(!is_public_mail_domain(own), "{own}");
        }
    }
}
