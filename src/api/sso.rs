//! Single sign-on: the tenant's connections (`GET|POST /sso/connections`,
//! `GET|PATCH|DELETE /sso/connections/{connection_id}`, owners), and signing in
//! (`POST /auth/sso/start`, `POST /auth/sso/exchange`). The protocol routes (the OIDC callback,
//! the SAML ACS and metadata) are in `sso_oidc` and `sso_saml`; both end in [`finish`].

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::Problems;
use crate::api::auth::{SessionGrant, issue, no_store};
use crate::auth::guard::parse_path_id;
use crate::auth::policy::TenantAction;
use crate::auth::{RequestMeta, TenantAccess};
use crate::db;
use crate::domain::{EmailAddress, RegionId, Role};
use crate::error::ApiError;
use crate::sso::saml::{acs_url, sp_entity_id};
use crate::sso::{Asserted, OidcSettings, PROTOCOL_OIDC, PROTOCOL_SAML, Refused, SamlSettings};
use crate::state::AppState;
use crate::store::sessions;
use crate::store::sso::{self as sso_store, ConnectionRow, PendingRequest};
use crate::store::sso_connections::{
    self as connections, ConnectionChanges, JustInTime, NewConnection, SettingsChange,
};

// ---------------------------------------------------------------- shapes

/// An OIDC connection's settings (the client secret is never shown).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OidcView {
    #[schema(example = "https://acme.okta.com")]
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Register this as the redirect (callback) URI at the provider.
    #[schema(example = "https://roster.example.com/api/v1/sso/oidc/callback")]
    pub redirect_uri: String,
    /// Whether a client secret is stored (it is sealed and never returned).
    pub client_secret_set: bool,
}

/// A SAML connection's settings: what was read from the IdP's metadata, and what to give the
/// IdP's admin.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SamlView {
    pub idp_entity_id: String,
    /// The IdP's single sign-on URL (HTTP-Redirect binding).
    pub idp_sso_url: String,
    /// Where the metadata was read from, when it was given as a URL.
    pub idp_metadata_url: Option<String>,
    /// Roster's entity id (audience) for this connection; also where its metadata is served.
    #[schema(example = "https://roster.example.com/api/v1/sso/saml/01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50/metadata")]
    pub sp_entity_id: String,
    /// The assertion consumer service URL (HTTP-POST binding).
    #[schema(example = "https://roster.example.com/api/v1/sso/saml/01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50/acs")]
    pub acs_url: String,
    /// Roster's SP metadata document for the IdP's admin to paste or load.
    pub sp_metadata_url: String,
}

/// Who becomes a member at their first sign-in.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct JustInTimeView {
    /// A person the IdP vouches for (with an email in the tenant's verified domains) who is not a
    /// member yet becomes one at sign-in (the seat limit applies).
    pub enabled: bool,
    #[schema(pattern = "^(operator|viewer)$", example = "viewer")]
    pub role: String,
    pub region_ids: Vec<String>,
}

/// An SSO connection, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50", "protocol": "oidc", "name": "Okta", "enabled": true,
    "oidc": {"issuer": "https://acme.okta.com", "client_id": "0oa1b2c3d4", "scopes": ["openid", "email", "profile"],
        "redirect_uri": "https://roster.example.com/api/v1/sso/oidc/callback", "client_secret_set": true},
    "saml": null,
    "just_in_time": {"enabled": true, "role": "viewer", "region_ids": []},
    "created_by": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30", "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z", "version": 1
}))]
pub struct ConnectionView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(pattern = "^(oidc|saml)$")]
    pub protocol: String,
    pub name: String,
    pub enabled: bool,
    pub oidc: Option<OidcView>,
    pub saml: Option<SamlView>,
    pub just_in_time: JustInTimeView,
    #[schema(format = Uuid)]
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Changes with every change; the `ETag`.
    pub version: i32,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<ConnectionView>,
}

fn view(state: &AppState, row: ConnectionRow) -> ConnectionView {
    let base = &state.config.public_url;
    let oidc = (row.protocol == PROTOCOL_OIDC).then(|| row.oidc_settings().ok()).flatten().map(|s| OidcView {
        issuer: s.issuer,
        client_id: s.client_id,
        scopes: s.scopes,
        redirect_uri: oidc_redirect_uri(state),
        client_secret_set: row.sealed_secret.is_some(),
    });
    let saml = (row.protocol == PROTOCOL_SAML).then(|| row.saml_settings().ok()).flatten().map(|s| SamlView {
        idp_entity_id: s.idp_entity_id,
        idp_sso_url: s.idp_sso_url,
        idp_metadata_url: s.idp_metadata_url,
        sp_entity_id: sp_entity_id(base, &row.id),
        acs_url: acs_url(base, &row.id),
        sp_metadata_url: sp_entity_id(base, &row.id),
    });
    ConnectionView {
        just_in_time: JustInTimeView {
            enabled: row.jit_enabled,
            role: row.jit_role.clone(),
            region_ids: connections::regions_of(&row),
        },
        id: row.id,
        protocol: row.protocol,
        name: row.name,
        enabled: row.enabled,
        oidc,
        saml,
        created_by: row.created_by,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
        version: row.version,
    }
}

/// The OIDC redirect URI (the same for every connection: `state` tells them apart).
pub fn oidc_redirect_uri(state: &AppState) -> String {
    format!("{}/api/v1/sso/oidc/callback", state.config.public_url)
}

/// OIDC settings of a new connection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcInput {
    /// The issuer URL: Roster reads `<issuer>/.well-known/openid-configuration`. `https://`
    /// (plain `http://` only for hosts in `ROSTER_SSO_INSECURE_HOSTS`).
    #[schema(min_length = 1, max_length = 2048, example = "https://acme.okta.com")]
    pub issuer: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub client_id: Option<String>,
    /// Sealed at rest and never returned.
    #[schema(min_length = 1, max_length = 1024)]
    pub client_secret: Option<String>,
    /// Default `openid email profile`; `openid` and `email` are always asked for.
    #[schema(max_items = 20)]
    pub scopes: Option<Vec<String>>,
}

/// SAML settings: the IdP's metadata document, or its URL (read once, now).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlInput {
    /// The IdP's metadata XML (an `EntityDescriptor`).
    #[schema(max_length = 1048576)]
    pub idp_metadata_xml: Option<String>,
    /// Where to read the IdP's metadata (`https://`).
    #[schema(max_length = 2048)]
    pub idp_metadata_url: Option<String>,
}

/// Just-in-time membership.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JustInTimeInput {
    pub enabled: bool,
    /// `operator` or `viewer`; default `viewer`.
    #[schema(pattern = "^(operator|viewer)$")]
    pub role: Option<String>,
    #[schema(max_items = 100)]
    pub region_ids: Option<Vec<String>>,
}

/// A new connection: `oidc` settings for protocol `oidc`, `saml` for `saml`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "protocol": "oidc", "name": "Okta",
    "oidc": {"issuer": "https://acme.okta.com", "client_id": "0oa1b2c3d4", "client_secret": "the client secret"},
    "just_in_time": {"enabled": true, "role": "viewer"}
}))]
pub struct CreateConnectionRequest {
    #[schema(pattern = "^(oidc|saml)$")]
    pub protocol: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Default true.
    pub enabled: Option<bool>,
    pub oidc: Option<OidcInput>,
    pub saml: Option<SamlInput>,
    /// Default: off.
    pub just_in_time: Option<JustInTimeInput>,
}

/// Changes; absent fields stay. `oidc` fields replace those given (a new `client_secret`
/// replaces the stored one); `saml` replaces the metadata.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct UpdateConnectionRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub oidc: Option<OidcInput>,
    pub saml: Option<SamlInput>,
    pub just_in_time: Option<JustInTimeInput>,
}

// ---------------------------------------------------------------- checks

fn check_name(name: &str, p: &mut Problems) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        p.add("name", "must be 1 to 100 characters");
    }
    name.to_string()
}

fn check_jit(input: Option<JustInTimeInput>, p: &mut Problems) -> Option<JustInTime> {
    let input = input?;
    let role = match input.role.as_deref().map(str::trim) {
        None => Role::Viewer,
        Some(r) => match Role::parse(r) {
            Some(role @ (Role::Operator | Role::Viewer)) => role,
            _ => {
                p.add("just_in_time.role", "must be operator or viewer");
                Role::Viewer
            }
        },
    };
    let mut regions = Vec::new();
    for (i, raw) in input.region_ids.unwrap_or_default().iter().enumerate() {
        match raw.parse::<RegionId>() {
            Ok(r) if !regions.contains(&r) => regions.push(r),
            Ok(_) => p.add(format!("just_in_time.region_ids[{i}]"), "is listed twice"),
            Err(_) => p.add(format!("just_in_time.region_ids[{i}]"), "must be a region id (a UUID)"),
        }
    }
    if regions.len() > 100 {
        p.add("just_in_time.region_ids", "must list at most 100 regions");
    }
    Some(JustInTime { enabled: input.enabled, role, regions })
}

const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

fn check_scopes(scopes: Option<Vec<String>>, p: &mut Problems) -> Option<Vec<String>> {
    let scopes = scopes?;
    let mut out: Vec<String> = vec!["openid".into(), "email".into()];
    for (i, s) in scopes.iter().enumerate() {
        let s = s.trim();
        if s.is_empty() || s.len() > 100 || !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') {
            p.add(format!("oidc.scopes[{i}]"), "must be a scope token (printable ASCII, no spaces or quotes)");
        } else if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.len() > 20 {
        p.add("oidc.scopes", "must list at most 20 scopes");
    }
    Some(out)
}

fn required(value: Option<String>, field: &str, max: usize, p: &mut Problems) -> Option<String> {
    match value.as_deref().map(str::trim) {
        None | Some("") => {
            p.add(field, "is required");
            None
        }
        Some(v) if v.chars().count() > max => {
            p.add(field, format!("must be at most {max} characters"));
            None
        }
        Some(v) => Some(v.to_string()),
    }
}

/// Checks an issuer URL may be reached.
fn check_issuer_url(state: &AppState, raw: &str, p: &mut Problems) -> Option<String> {
    // Kept as typed (a trailing `/` included): the discovery document's issuer must equal it.
    let issuer = raw.trim().to_string();
    match crate::outbound::OutboundPolicy::new(&state.config.sso_insecure_hosts).check_url(&issuer) {
        Ok(_) => Some(issuer),
        Err(why) => {
            p.add("oidc.issuer", why);
            None
        }
    }
}

/// Reads SAML metadata given inline or by URL into the stored settings.
async fn saml_settings(state: &AppState, input: SamlInput, p: &mut Problems) -> Option<SamlSettings> {
    let (xml, url) = match (input.idp_metadata_xml, input.idp_metadata_url) {
        (Some(xml), None) => (xml, None),
        (None, Some(url)) => match fetch_metadata(state, url.trim()).await {
            Ok(xml) => (xml, Some(url.trim().to_string())),
            Err(why) => {
                p.add("saml.idp_metadata_url", why);
                return None;
            }
        },
        _ => {
            p.add(
                "saml",
                "give the IdP's metadata as idp_metadata_xml or its address as idp_metadata_url (one of them)",
            );
            return None;
        }
    };
    let field = if url.is_some() { "saml.idp_metadata_url" } else { "saml.idp_metadata_xml" };
    match crate::sso::saml::read_metadata(&xml) {
        Ok(meta) => Some(SamlSettings {
            idp_metadata_xml: xml,
            idp_metadata_url: url,
            idp_entity_id: meta.entity_id,
            idp_sso_url: meta.sso_url,
        }),
        Err(why) => {
            p.add(field, why);
            None
        }
    }
}

/// Reads an IdP's metadata document from its URL (SSO's outbound rules: https, public
/// addresses, no redirects, bounded time and size).
async fn fetch_metadata(state: &AppState, url: &str) -> Result<String, String> {
    let body = state.sso_http.get(url).await.map_err(|e| format!("the metadata could not be read from {url}: {e}"))?;
    String::from_utf8(body).map_err(|_| format!("the document at {url} is not UTF-8 text"))
}

fn connection_id(req: &HttpRequest) -> Result<String, ApiError> {
    parse_path_id::<uuid::Uuid>(req, "connection_id").map(|id| id.hyphenated().to_string())
}

fn connection_response(state: &AppState, status: actix_web::http::StatusCode, row: ConnectionRow) -> HttpResponse {
    HttpResponse::build(status).insert_header(crate::api::etag(row.version)).json(view(state, row))
}

// ---------------------------------------------------------------- connections

/// List the tenant's SSO connections (owners).
///
/// Every OIDC and SAML connection of the tenant, oldest first (sign-in by email uses the oldest
/// enabled one), with what to give the identity provider; never a client secret.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses((status = 200, body = ConnectionList), (status = 403, description = "Only owners (and owner-role API keys) manage SSO")))]
#[get("/api/v1/tenants/{tenant_id}/sso/connections")]
pub async fn list_connections(state: web::Data<AppState>, access: TenantAccess) -> Result<HttpResponse, ApiError> {
    let rows = access.run(&state.pool, connections::list).await?;
    Ok(HttpResponse::Ok().json(ConnectionList { items: rows.into_iter().map(|r| view(&state, r)).collect() }))
}

/// Create an SSO connection (owners).
///
/// OIDC: the issuer, client id and secret of an app registered at the provider with Roster's
/// `redirect_uri` (in the answer); the issuer's discovery document is read now. SAML: the IdP's
/// metadata (XML or URL); give the IdP's admin the answer's `sp_entity_id` and `acs_url` (or the
/// SP metadata at `sp_metadata_url`). People sign in through it only with an email in one of
/// the tenant's verified domains.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = CreateConnectionRequest,
    responses((status = 201, body = ConnectionView, headers(("ETag" = String), ("Location" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage SSO"),
        (status = 422, description = "A setting is missing or wrong, the issuer's discovery failed, or the metadata is unusable")))]
#[post("/api/v1/tenants/{tenant_id}/sso/connections")]
pub async fn create_connection(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<CreateConnectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = access.require(&state.pool, TenantAction::ManageSso).await?;
    let body = body.into_inner();
    let mut p = Problems::default();
    let name = check_name(&body.name, &mut p);
    let jit = check_jit(body.just_in_time, &mut p).unwrap_or(JustInTime {
        enabled: false,
        role: Role::Viewer,
        regions: Vec::new(),
    });
    let (protocol, settings, secret) = match body.protocol.trim() {
        PROTOCOL_OIDC => {
            if body.saml.is_some() {
                p.add("saml", "is for protocol saml; this connection is oidc");
            }
            let Some(oidc) = body.oidc else {
                p.add("oidc", "is required for protocol oidc (issuer, client_id, client_secret)");
                return Err(p.finish().err().unwrap_or_else(|| ApiError::internal("no problem recorded")));
            };
            let issuer =
                required(oidc.issuer, "oidc.issuer", 2048, &mut p).and_then(|i| check_issuer_url(&state, &i, &mut p));
            let client_id = required(oidc.client_id, "oidc.client_id", 255, &mut p);
            let secret = required(oidc.client_secret, "oidc.client_secret", 1024, &mut p);
            let scopes = check_scopes(oidc.scopes, &mut p)
                .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
            if let Some(issuer) = &issuer
                && let Err(why) = crate::sso::oidc::check_issuer(&state, issuer).await
            {
                p.add("oidc.issuer", why);
            }
            let settings =
                OidcSettings { issuer: issuer.unwrap_or_default(), client_id: client_id.unwrap_or_default(), scopes };
            (PROTOCOL_OIDC, serde_json::to_string(&settings).map_err(|e| ApiError::internal(e.to_string()))?, secret)
        }
        PROTOCOL_SAML => {
            if body.oidc.is_some() {
                p.add("oidc", "is for protocol oidc; this connection is saml");
            }
            let settings = match body.saml {
                Some(saml) => saml_settings(&state, saml, &mut p).await,
                None => {
                    p.add("saml", "is required for protocol saml (idp_metadata_xml or idp_metadata_url)");
                    None
                }
            };
            let text = settings
                .map(|s| serde_json::to_string(&s))
                .transpose()
                .map_err(|e| ApiError::internal(e.to_string()))?;
            (PROTOCOL_SAML, text.unwrap_or_default(), None)
        }
        other => {
            p.add("protocol", format!("{other:?} is not a protocol Roster speaks: use oidc or saml"));
            return Err(p.finish().err().unwrap_or_else(|| ApiError::internal("no problem recorded")));
        }
    };
    p.finish()?;
    let new = NewConnection {
        protocol,
        name,
        enabled: body.enabled.unwrap_or(true),
        settings,
        secret: secret.map(SecretString::from),
        jit,
    };
    let master = state.master.clone();
    let row = access.run_write(&state.pool, move |conn, ctx| connections::create(conn, ctx, &master, new)).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), row.id);
    let mut res = connection_response(&state, actix_web::http::StatusCode::CREATED, row);
    res.headers_mut().insert(
        actix_web::http::header::LOCATION,
        actix_web::http::header::HeaderValue::from_str(&location).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(res)
}

/// Read an SSO connection (owners).
///
/// Its settings, what to give the identity provider (`oidc.redirect_uri`, or `saml.acs_url` and
/// `saml.sp_entity_id`) and just-in-time membership; the `ETag` carries its version.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("connection_id" = uuid::Uuid, Path, description = "The connection's id")),
    responses((status = 200, body = ConnectionView, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage SSO"), (status = 404, description = "No such connection")))]
#[get("/api/v1/tenants/{tenant_id}/sso/connections/{connection_id}")]
pub async fn get_connection(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = connection_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| connections::get(conn, ctx, &id)).await?;
    Ok(connection_response(&state, actix_web::http::StatusCode::OK, row))
}

/// Change an SSO connection (owners).
///
/// Rename it, turn it on or off, replace OIDC settings (a new `client_secret` replaces the
/// stored one) or the SAML metadata, or change just-in-time membership. Send `If-Match` with
/// the `ETag` to refuse lost updates.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("connection_id" = uuid::Uuid, Path, description = "The connection's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    request_body = UpdateConnectionRequest,
    responses((status = 200, body = ConnectionView, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage SSO"), (status = 404, description = "No such connection"),
        (status = 409, description = "The tenant requires SSO and this is its last enabled connection"),
        (status = 412, description = "If-Match is stale"), (status = 422, description = "A setting is wrong")))]
#[patch("/api/v1/tenants/{tenant_id}/sso/connections/{connection_id}")]
pub async fn update_connection(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<UpdateConnectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = connection_id(&req)?;
    let version = crate::api::if_match(&req)?;
    let access = access.require(&state.pool, TenantAction::ManageSso).await?;
    let body = body.into_inner();
    let mut p = Problems::default();
    let name = body.name.as_deref().map(|n| check_name(n, &mut p));
    let jit = check_jit(body.just_in_time, &mut p);
    let mut settings = None;
    let mut secret = None;
    if body.oidc.is_some() && body.saml.is_some() {
        p.add("saml", "give the settings of the connection's own protocol only");
    }
    if let Some(oidc) = body.oidc {
        let mut issuer = None;
        if let Some(raw) = oidc.issuer
            && let Some(checked) = check_issuer_url(&state, &raw, &mut p)
        {
            if let Err(why) = crate::sso::oidc::check_issuer(&state, &checked).await {
                p.add("oidc.issuer", why);
            }
            issuer = Some(checked);
        }
        let client_id =
            if oidc.client_id.is_some() { required(oidc.client_id, "oidc.client_id", 255, &mut p) } else { None };
        if oidc.client_secret.is_some() {
            secret = required(oidc.client_secret, "oidc.client_secret", 1024, &mut p).map(SecretString::from);
        }
        let scopes = check_scopes(oidc.scopes, &mut p);
        settings = Some(SettingsChange::Oidc { issuer, client_id, scopes });
    } else if let Some(saml) = body.saml {
        settings = saml_settings(&state, saml, &mut p).await.map(SettingsChange::Saml);
    }
    p.finish()?;
    let changes = ConnectionChanges { name, enabled: body.enabled, settings, secret, jit };
    let master = state.master.clone();
    let row = access
        .run_write(&state.pool, move |conn, ctx| connections::update(conn, ctx, &master, &id, changes, version))
        .await?;
    Ok(connection_response(&state, actix_web::http::StatusCode::OK, row))
}

/// Delete an SSO connection (owners).
///
/// Sessions that came from it go on until they end; nobody signs in through it again.
#[utoipa::path(tag = "sso", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("connection_id" = uuid::Uuid, Path, description = "The connection's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Only owners (and owner-role API keys) manage SSO"), (status = 404, description = "No such connection"),
        (status = 409, description = "The tenant requires SSO and this is its last enabled connection"),
        (status = 412, description = "If-Match is stale")))]
#[delete("/api/v1/tenants/{tenant_id}/sso/connections/{connection_id}")]
pub async fn delete_connection(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = connection_id(&req)?;
    let version = crate::api::if_match(&req)?;
    access.run_write(&state.pool, move |conn, ctx| connections::delete(conn, ctx, &id, version)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------- signing in

/// Where to sign in: the email (its domain finds the tenant), or a connection's id.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@acme.example"}))]
pub struct SsoStartRequest {
    #[schema(min_length = 1, max_length = 254)]
    pub email: Option<String>,
    #[schema(format = Uuid)]
    pub connection_id: Option<String>,
}

/// Send the browser to `redirect_url`.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "redirect_url": "https://acme.okta.com/oauth2/v1/authorize?response_type=code&client_id=...",
    "connection_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50", "protocol": "oidc",
    "tenant_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e10", "browser_secret": "Q2hlY2sgdGhlIGJyb3dzZXI"
}))]
pub struct SsoStartResponse {
    pub redirect_url: String,
    #[schema(format = Uuid)]
    pub connection_id: String,
    #[schema(pattern = "^(oidc|saml)$")]
    pub protocol: String,
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// Keep it in the browser that goes to the identity provider (`sessionStorage`) and send it
    /// with the code to `POST /auth/sso/exchange`: the code works only with it, so a callback
    /// link that reaches another browser signs nobody in.
    #[schema(example = "Q2hlY2sgdGhlIGJyb3dzZXI")]
    pub browser_secret: String,
}

fn no_sso(what: &str) -> ApiError {
    ApiError::NoSso(format!("{what} has no single sign-on: sign in with your email and password"))
}

/// Start a single sign-on.
///
/// Give the email the person typed: its domain finds the tenant that verified it and that
/// tenant's enabled connection (the oldest, when it has several); or give a `connection_id`.
/// Send the browser to `redirect_url`. The identity provider sends it back to Roster, and
/// Roster sends it on to `ROSTER_APP_URL/sso/callback` with `code` (exchange it at
/// `POST /auth/sso/exchange` within a minute) or with `error` and `error_description`.
/// `404 sso-not-configured`: show the password form.
#[utoipa::path(tag = "sso", security(()), operation_id = "sso_start",
    request_body = SsoStartRequest,
    responses((status = 200, body = SsoStartResponse),
        (status = 404, description = "`sso-not-configured`: no verified domain with an enabled connection for this email (or no such enabled connection): use the password form"),
        (status = 422, description = "Give exactly one of email and connection_id"),
        (status = 429, description = "Too many sign-in attempts from your address")))]
#[post("/api/v1/auth/sso/start")]
pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::api::json::Json<SsoStartRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.login.check_client(&req).await?;
    let body = body.into_inner();
    let mut p = Problems::default();
    enum Wanted {
        Domain(String),
        Connection(String),
    }
    let wanted = match (body.email, body.connection_id) {
        (Some(email), None) => match EmailAddress::parse(&email) {
            Ok(email) => crate::sso::email_domain(email.as_str()).map(Wanted::Domain),
            Err(why) => {
                p.add("email", why);
                None
            }
        },
        (None, Some(id)) => match id.trim().parse::<uuid::Uuid>() {
            Ok(id) => Some(Wanted::Connection(id.hyphenated().to_string())),
            Err(_) => {
                p.add("connection_id", "must be a connection id (a UUID)");
                None
            }
        },
        _ => {
            p.add("email", "give exactly one of email and connection_id");
            None
        }
    };
    p.finish()?;
    let Some(wanted) = wanted else { return Err(ApiError::invalid("email", "must be a valid email address")) };
    let (connection, what) = match wanted {
        Wanted::Domain(domain) => {
            let d = domain.clone();
            let found = db::run(&state.pool, move |conn| enabled_connection_for_domain(conn, &d)).await?;
            (found, domain)
        }
        Wanted::Connection(id) => {
            let i = id.clone();
            let found = db::run(&state.pool, move |conn| sso_store::find_connection(conn, &i)).await?;
            (found.filter(|c| c.enabled), format!("connection {id}"))
        }
    };
    let connection = connection.ok_or_else(|| no_sso(&what))?;
    let (browser_secret, binding) = crate::sso::browser_binding();
    let redirect_url = match connection.protocol.as_str() {
        PROTOCOL_OIDC => crate::sso::oidc::begin(&state, &connection, &binding).await?,
        _ => crate::sso::saml::begin(&state, &connection, &binding).await?,
    };
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(SsoStartResponse {
        redirect_url,
        connection_id: connection.id,
        protocol: connection.protocol,
        tenant_id: connection.tenant_id,
        browser_secret: browser_secret.expose_secret().to_string(),
    }))
}

/// The oldest enabled connection of the tenant that verified `domain`.
fn enabled_connection_for_domain(
    conn: &mut crate::db::AnyConnection,
    domain: &str,
) -> Result<Option<ConnectionRow>, ApiError> {
    use crate::db::schema::{domain_claims::dsl as dc, sso_connections::dsl as c};
    let tenant: Option<String> =
        dc::domain_claims.filter(dc::domain.eq(domain)).select(dc::tenant_id).first(conn).optional()?;
    let Some(tenant) = tenant else { return Ok(None) };
    Ok(c::sso_connections
        .filter(c::tenant_id.eq(&tenant))
        .filter(c::enabled.eq(true))
        .order(c::id.asc())
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?)
}

/// Where the browser goes after the identity provider: the frontend's callback.
fn app_callback(state: &AppState, query: &[(&str, &str)]) -> HttpResponse {
    let mut url = format!("{}/sso/callback", state.config.app_url);
    let encoded: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        .collect();
    url.push('?');
    url.push_str(&encoded.join("&"));
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, url))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

/// Sends the browser to the frontend with the refusal (`error`, `error_description`).
pub fn refused_redirect(state: &AppState, refused: &Refused) -> HttpResponse {
    app_callback(state, &[("error", refused.reason), ("error_description", &refused.detail)])
}

/// Ends a sign-in at either protocol: the IdP's checked answer (or why it was refused) becomes
/// a one-minute code for the frontend, bound to the browser of `pending` (the sign-in the
/// answer completes; absent only when the answer was refused before it was found), or an
/// error it can show. Refusals are audited in the
/// connection's tenant.
pub async fn finish(
    state: &AppState,
    req: &HttpRequest,
    connection: &ConnectionRow,
    pending: Option<&PendingRequest>,
    outcome: Result<Asserted, Refused>,
) -> HttpResponse {
    let meta = RequestMeta::from_request(req);
    let email = outcome.as_ref().ok().map(|a| a.email.clone());
    let admitted = match outcome {
        Ok(asserted) => {
            let (c, m) = (connection.clone(), meta.clone());
            match db::run_write(&state.pool, move |conn| sso_store::admit(conn, &c, &asserted, &m)).await {
                Ok(decided) => decided,
                Err(e) => {
                    log::error!("SSO sign-in through connection {}: {e}", connection.id);
                    return refused_redirect(
                        state,
                        &Refused::new("server-error", "the sign-in could not be completed; try again"),
                    );
                }
            }
        }
        Err(refused) => Err(refused),
    };
    let refused = match admitted {
        Ok(admitted) => {
            let (user, tenant, id) = (admitted.user_id, connection.tenant_id.clone(), connection.id.clone());
            let Some(binding) = pending.map(|p| p.binding.clone()) else {
                log::error!("SSO sign-in through connection {} admitted without its pending request", connection.id);
                return refused_redirect(
                    state,
                    &Refused::new("server-error", "the sign-in could not be completed; try again"),
                );
            };
            match db::run_write(&state.pool, move |conn| sso_store::issue_code(conn, &user, &tenant, &id, &binding))
                .await
            {
                Ok(code) => return app_callback(state, &[("code", code.expose_secret())]),
                Err(e) => {
                    log::error!("SSO code for connection {}: {e}", connection.id);
                    Refused::new("server-error", "the sign-in could not be completed; try again")
                }
            }
        }
        Err(refused) => refused,
    };
    let (c, r) = (connection.clone(), refused.clone());
    if let Err(e) =
        db::run_write(&state.pool, move |conn| sso_store::record_refusal(conn, &c, email.as_deref(), &r, &meta)).await
    {
        log::error!("auditing a refused SSO sign-in: {e}");
    }
    refused_redirect(state, &refused)
}

/// The code from `ROSTER_APP_URL/sso/callback?code=...`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "kq3V1x1nS2u8rYbqk0mZ7w", "browser_secret": "Q2hlY2sgdGhlIGJyb3dzZXI"}))]
pub struct SsoExchangeRequest {
    /// From the callback URL.
    #[schema(min_length = 1, max_length = 200)]
    pub code: String,
    /// From the answer to `POST /auth/sso/start`, kept by this browser.
    #[schema(min_length = 1, max_length = 200)]
    pub browser_secret: String,
}

/// Exchange a single sign-on's code for tokens.
///
/// The code from `ROSTER_APP_URL/sso/callback?code=...`, within a minute, once, with the
/// `browser_secret` that `POST /auth/sso/start` gave the same browser. The answer is
/// the same as a password sign-in's; the session is for the connection's tenant only (no
/// switching to another tenant with it).
#[utoipa::path(tag = "sso", security(()), operation_id = "sso_exchange",
    request_body = SsoExchangeRequest,
    responses((status = 200, description = "Signed in", body = crate::api::auth::TokenResponse),
        (status = 401, description = "The code is unknown, used or expired, the browser secret is not the one the sign-in started with, or the membership is no longer active"),
        (status = 429, description = "Too many sign-in attempts from your address")))]
#[post("/api/v1/auth/sso/exchange")]
pub async fn exchange(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::api::json::Json<SsoExchangeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.login.check_client(&req).await?;
    let body = body.into_inner();
    let mut p = Problems::default();
    if body.code.trim().is_empty() || body.code.len() > 200 {
        p.add("code", "must be the code from the callback URL");
    }
    if body.browser_secret.trim().is_empty() || body.browser_secret.len() > 200 {
        p.add("browser_secret", "must be the browser_secret from the answer to POST /api/v1/auth/sso/start");
    }
    p.finish()?;
    let code = SecretString::from(body.code.trim().to_string());
    let secret = SecretString::from(body.browser_secret.trim().to_string());
    let (meta, limits) = (RequestMeta::from_request(&req), state.config.session_limits());
    let done = db::run_write(&state.pool, move |conn| sso_store::exchange(conn, &code, &secret, &meta, limits)).await?;
    let Some(done) = done else {
        return Err(ApiError::Unauthorized(
            "the code is unknown, used or expired, or this browser did not start the sign-in (a code works once, within a minute, together with the browser_secret that POST /auth/sso/start gave this browser): sign in again".into(),
        ));
    };
    let user_id = done.user_id;
    let (user, memberships) = db::run(&state.pool, move |conn| {
        let user = sessions::find_by_id(conn, user_id)?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
        Ok((user, sessions::active_memberships(conn, user_id)?))
    })
    .await?;
    let tenant_text = done.tenant_id.as_text();
    let memberships: Vec<_> = memberships.into_iter().filter(|m| m.tenant_id == tenant_text).collect();
    let tenant = memberships
        .first()
        .ok_or_else(|| ApiError::Unauthorized("the membership is no longer active: sign in again".into()))?;
    let grant = SessionGrant { id: &done.session.id, refresh_token: Some(&done.session.refresh_token) };
    let response = issue(&state, user_id, user.auth_version, false, &memberships, Some(tenant), grant)?;
    Ok(no_store(response))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_connections)
        .service(create_connection)
        .service(get_connection)
        .service(update_connection)
        .service(delete_connection)
        .service(start)
        .service(exchange);
}
