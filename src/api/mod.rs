//! HTTP layer: handlers per resource, the OpenAPI document, and shared request helpers.
//! Handlers parse and shape; the store decides and writes; the policy lives in `auth::policy`.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod contract;
pub mod departments;
pub mod domains;
pub mod groups;
pub mod health;
pub mod invitations;
pub mod json;
pub mod me;
pub mod metrics;
pub mod params;
pub mod regions;
pub mod scim;
pub mod scim_doc;
pub mod sso;
pub mod sso_oidc;
pub mod sso_saml;
pub mod tenants;
pub mod users;
pub mod webhooks;

use actix_web::HttpRequest;
use actix_web::http::header;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;
use validator::ValidationErrors;

use crate::error::{ApiError, FieldError, ProblemDetails};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roster API",
        contact(name = "Roster maintainers", url = "https://roster.example/support", email = "roster@roster.example"),
        description = "Multi-tenant user and role management.\n\n\
Sign in with `POST /api/v1/auth/login`, press **Authorize** and paste the `access_token`. \
Tenant resources live under `/api/v1/tenants/{tenant_id}/...`; the `tenant_id` is in the login answer. \
Every error is an RFC 9457 `application/problem+json` document.",
    ),
    components(schemas(ProblemDetails, FieldError)),
    modifiers(&SecurityAddon, &ProblemResponses),
    tags(
        (name = "auth", description = "Sign in, refresh, sign out, switch tenant, change or reset a password"),
        (name = "me", description = "The signed-in person"),
        (name = "tenants", description = "Tenants, their plan and settings"),
        (name = "users", description = "Members of a tenant"),
        (name = "invitations", description = "Invite people to a tenant; accept an invitation"),
        (name = "departments", description = "Departments and their sections"),
        (name = "regions", description = "Regions of a tenant"),
        (name = "groups", description = "Directory groups (written over SCIM), the roles they give, and the SCIM default role and regions"),
        (name = "api-keys", description = "API keys: long-lived credentials for a tenant's automation"),
        (name = "agents", description = "Device agents: enrol the people signed in on a device for an admin's approval; the person completes their profile"),
        (name = "webhooks", description = "Webhooks and the event feed: every change, pushed signed to your endpoints or pulled from a cursor"),
        (name = "sso", description = "Single sign-on: OIDC and SAML connections, verified domains, signing in through a company's identity provider"),
        (name = "audit", description = "The audit log"),
        (name = "health", description = "Probes and keys"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The `access_token` from `POST /api/v1/auth/login`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rk_api_<43 characters of base64url>")
                    .description(Some(
                        "An API key's secret (`POST /api/v1/tenants/{tenant_id}/api-keys`): `rk_api_` and 43 \
characters of unpadded base64url (256 random bits). Works on the tenant routes of its own tenant, \
as a member with the key's role and regions; never on `/me`, `/auth/*` or the API-key routes.",
                    ))
                    .build(),
            ),
        );
        // Every tenant route but the API-key routes takes a key as well as an access token.
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/tenants/{tenant_id}")
                || path.starts_with("/api/v1/tenants/{tenant_id}/api-keys")
            {
                continue;
            }
            for op in
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
            {
                if let Some(reqs) = op.security.as_mut()
                    && reqs.iter().any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("bearer_auth").is_some()))
                    && !reqs.iter().any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("api_key").is_some()))
                {
                    reqs.push(utoipa::openapi::security::SecurityRequirement::new("api_key", Vec::<String>::new()));
                }
            }
        }
        components.add_security_scheme(
            "agent_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rk_agent_<43 characters of base64url>")
                    .description(Some(
                        "A device agent's key: an API key of kind `agent` (`rk_agent_...`). Reaches only the \
`/api/v1/agent/...` routes, in the key's own tenant.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "platform_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The platform operator token (`ROSTER_PLATFORM_TOKEN`)"))
                    .build(),
            ),
        );
    }
}

/// Gives every operation the statuses it can answer whatever its handler does, and every
/// 4xx/5xx response the problem+json body, so routes only list their own:
/// - every operation: 400 (malformed request), 500, 503;
/// - secured: 401; tenant-scoped: 403 and 404; with a path id: 404;
/// - with a JSON body: 413, 415 and 422; with query parameters: 422; with `If-Match`: 412.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
            {
                let secured = op.security.as_ref().is_some_and(|reqs| reqs.iter().any(|r| r != &Default::default()));
                let params = op.parameters.as_deref().unwrap_or_default();
                let has = |kind: ParameterIn| params.iter().any(|p| p.parameter_in == kind);
                let if_match = params.iter().any(|p| p.parameter_in == ParameterIn::Header && p.name == "If-Match");
                let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
                let mut common = vec![
                    ("400", "The request is malformed (bad JSON, bad id or header)"),
                    ("500", "Unexpected failure; quote the X-Request-Id"),
                    (
                        "503",
                        "The database is unreachable, or gave the request up for a concurrent one; see `Retry-After`",
                    ),
                ];
                if secured {
                    common.push(("401", "No access token, or it is malformed, invalid, expired or revoked"));
                }
                let bearer = op.security.as_ref().is_some_and(|reqs| {
                    reqs.iter().any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("bearer_auth").is_some()))
                });
                if path.starts_with("/api/v1/tenants/{tenant_id}") {
                    common.push((
                        "403",
                        "Your role may never do this in this tenant, or the token is good only for changing the password",
                    ));
                    common.push(("404", "No such tenant or object for you"));
                } else if bearer {
                    common
                        .push(("403", "The token is good only for changing the password (POST /api/v1/auth/password)"));
                }
                if !path.starts_with("/api/v1/tenants/{tenant_id}") && has(ParameterIn::Path) {
                    common.push(("404", "No such object for you"));
                }
                if json_body {
                    common.push(("413", "The body is larger than 64 KiB"));
                    common.push(("415", "The body is not sent as application/json"));
                }
                if json_body || has(ParameterIn::Query) {
                    common.push(("422", "Fields or parameters are invalid: each is named in `errors`"));
                }
                if if_match {
                    common.push(("412", "`If-Match` names a version that is no longer current"));
                }
                for (code, description) in common {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| RefOr::T(Response::new(description)));
                }
                for (code, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && (code.starts_with('4') || code.starts_with('5'))
                        && response.content.is_empty()
                    {
                        response.content.insert(
                            "application/problem+json".to_string(),
                            Content::new(Some(Ref::from_schema_name("ProblemDetails"))),
                        );
                    }
                }
            }
        }
    }
}

/// Where the service is: `ROSTER_PUBLIC_URL` in the served document, the default address in
/// the committed one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Registers every route. Only `service(...)` registrations reach the OpenAPI document.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(health::configure)
        .configure(metrics::configure)
        .configure(auth::configure)
        .configure(me::configure)
        .configure(tenants::configure)
        .configure(users::configure)
        .configure(invitations::configure)
        .configure(departments::configure)
        .configure(groups::configure)
        .configure(regions::configure)
        .configure(api_keys::configure)
        .configure(agents::configure)
        .configure(webhooks::configure)
        .configure(sso::configure)
        .configure(sso_oidc::configure)
        .configure(domains::configure)
        .configure(sso_saml::configure)
        .configure(audit::configure);
}

/// The whole OpenAPI document, as served and committed.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    let (_, mut doc) =
        actix_web::App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(configure).split_for_parts();
    // Modifiers run in `ApiDoc::openapi()`, before the routes were added: run them again.
    SecurityAddon.modify(&mut doc);
    ProblemResponses.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.servers = Some(vec![utoipa::openapi::Server::new(DEFAULT_SERVER)]);
    header_schemas(&mut doc);
    conditional_rules(&mut doc);
    scim_doc::add(forbid_nul(doc))
}

/// `If-Match` and `Idempotency-Key` as the server reads them.
fn header_schemas(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    for item in doc.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
        {
            for p in op.parameters.iter_mut().flatten().filter(|p| p.parameter_in == ParameterIn::Header) {
                let schema = match p.name.as_str() {
                    "If-Match" => ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r#"^(\*|(W/)?"[0-9]{1,9}")$"#))
                        .examples([r#""3""#]),
                    "Idempotency-Key" => ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some(r"^[\x21-\x7E]+$"))
                        .examples(["0193e6a2-7f1e-7c2b-9d4f-2a6b8c0d1e30"]),
                    _ => continue,
                };
                p.schema = Some(RefOr::T(schema.build().into()));
            }
        }
    }
}

/// Rules between fields that the derive cannot say, as JSON Schema `if`/`then` (kept in the
/// schema's extensions, which serialise beside its other keywords). Each `not` carries the
/// message the `contract` check shows.
fn conditional_rules(doc: &mut utoipa::openapi::OpenApi) {
    use serde_json::json;
    use utoipa::openapi::schema::Schema;
    let only_with = |field: &str, message: &str| json!({"not": {"required": [field], "properties": {field: {}}, "description": message}});
    let temporary_password_rule = json!([{
        "if": {"required": ["delivery"], "properties": {"delivery": {"const": "email"}}},
        "then": only_with("temporary_password", "only goes with `delivery: temporary_password`"),
    }]);
    let bulk_rules = json!([
        {
            "if": {"required": ["action"], "properties": {"action": {"const": "set_role"}}},
            "then": {"required": ["role"], "properties": {"role": {"type": "string"}}},
            "else": only_with("role", "only goes with `action: set_role`"),
        },
        {
            "if": {"required": ["action"], "properties": {"action": {"const": "set_department"}}},
            "then": {"required": ["department"], "properties": {"department": {}}},
            "else": {"allOf": [
                only_with("department", "only goes with `action: set_department`"),
                only_with("section", "only goes with `action: set_department`"),
            ]},
        },
    ]);
    let Some(components) = doc.components.as_mut() else { return };
    for (name, rules) in [
        ("CreateMemberRequest", &temporary_password_rule),
        ("AdminPasswordResetRequest", &temporary_password_rule),
        ("BulkRequest", &bulk_rules),
    ] {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(name) {
            o.extensions.get_or_insert_with(Default::default).insert("allOf".into(), rules.clone());
        }
    }
}

/// A free-text string anywhere in a request: anything but the NUL character (PostgreSQL text
/// cannot hold it).
pub const NUL_FREE: &str = r"^[^\x00]*$";
/// A name a machine reports (an OS username, a host name): not blank, no control character.
pub const PRINTABLE_NAME: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x1F\x7F-\x9F\s][^\x00-\x1F\x7F-\x9F]*$";
/// A name: not blank, and no NUL character.
pub const NON_BLANK: &str = r"^[^\x00]*[^\x00\s][^\x00]*$";

/// Every free-text string schema (no format, enum or pattern of its own) refuses the NUL
/// character, and `\S` (not blank) becomes [`NON_BLANK`]: the document says what the server
/// refuses, and the `contract` check refuses it before it reaches the database.
fn forbid_nul(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use std::collections::BTreeSet;
    use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, Schema, SchemaType, Type};
    /// Applies the rule to every string schema under `r`, and collects the components it names.
    fn walk(r: &mut RefOr<Schema>, named: &mut BTreeSet<String>) {
        let s = match r {
            RefOr::Ref(reference) => {
                if let Some(name) = reference.ref_location.strip_prefix("#/components/schemas/") {
                    named.insert(name.to_string());
                }
                return;
            }
            RefOr::T(s) => s,
        };
        match s {
            Schema::Object(o) => {
                let is_string = match &o.schema_type {
                    SchemaType::Type(t) => *t == Type::String,
                    SchemaType::Array(ts) => ts.contains(&Type::String),
                    SchemaType::AnyValue => false,
                };
                if is_string && o.format.is_none() && o.enum_values.is_none() {
                    match o.pattern.as_deref() {
                        None => o.pattern = Some(NUL_FREE.to_string()),
                        Some(r"\S") => o.pattern = Some(NON_BLANK.to_string()),
                        Some(_) => {}
                    }
                }
                o.properties.values_mut().for_each(|p| walk(p, named));
                if let Some(AdditionalProperties::RefOr(extra)) = o.additional_properties.as_deref_mut() {
                    walk(extra, named);
                }
            }
            Schema::Array(a) => {
                if let ArrayItems::RefOrSchema(items) = &mut a.items {
                    walk(items, named);
                }
            }
            Schema::OneOf(x) => x.items.iter_mut().for_each(|i| walk(i, named)),
            Schema::AnyOf(x) => x.items.iter_mut().for_each(|i| walk(i, named)),
            Schema::AllOf(x) => x.items.iter_mut().for_each(|i| walk(i, named)),
            _ => {}
        }
    }
    // Requests only: what the server sends back (an unknown field's name echoed in `errors`)
    // is not held to it.
    let mut named = BTreeSet::new();
    for item in doc.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
        {
            for p in op.parameters.iter_mut().flatten() {
                if let Some(s) = p.schema.as_mut() {
                    walk(s, &mut named);
                }
            }
            for content in op.request_body.iter_mut().flat_map(|b| b.content.values_mut()) {
                if let Some(s) = content.schema.as_mut() {
                    walk(s, &mut named);
                }
            }
        }
    }
    let mut done = BTreeSet::new();
    while let Some(name) = named.iter().find(|n| !done.contains(*n)).cloned() {
        done.insert(name.clone());
        if let Some(schema) = doc.components.as_mut().and_then(|c| c.schemas.get_mut(&name)) {
            walk(schema, &mut named);
        }
    }
    doc
}

/// The document as served: the same, at `public_url`.
pub fn served_document(public_url: &str) -> utoipa::openapi::OpenApi {
    let mut doc = openapi_document();
    let mut server = utoipa::openapi::Server::new(public_url.trim_end_matches('/'));
    server.description = Some("This Roster instance".to_string());
    doc.servers = Some(vec![server]);
    doc
}

/// `validator` errors as our field errors, sorted by field for stable output.
pub fn validation_errors(errors: ValidationErrors) -> ApiError {
    let mut out = Vec::new();
    for (field, errs) in errors.field_errors() {
        for e in errs {
            let message = e.message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| match e.code.as_ref() {
                "length" => match (e.params.get("min"), e.params.get("max")) {
                    (Some(min), Some(max)) => format!("must be {min} to {max} characters"),
                    (None, Some(max)) => format!("must be at most {max} characters"),
                    (Some(min), None) => format!("must be at least {min} characters"),
                    _ => "has the wrong length".into(),
                },
                "range" => "is out of range".into(),
                "url" => "must be a URL".into(),
                code => format!("is invalid ({code})"),
            });
            out.push(FieldError::new(field.to_string(), message));
        }
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    ApiError::Validation(out)
}

pub fn validate<T: validator::Validate>(dto: &T) -> Result<(), ApiError> {
    dto.validate().map_err(validation_errors)
}

/// Collects field errors while parsing a DTO into domain values.
#[derive(Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    /// Starts with whatever `validator` finds, so shape and parse errors come back together.
    pub fn validated<T: validator::Validate>(dto: &T) -> Self {
        match validate(dto) {
            Err(ApiError::Validation(errors)) => Problems(errors),
            _ => Problems::default(),
        }
    }
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    pub fn check<T, E: std::fmt::Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }
    pub fn finish(mut self) -> Result<(), ApiError> {
        self.0.dedup();
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"`), or `None` when absent or `*`.
pub fn if_match(req: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::bad_request(
            "invalid-if-match",
            format!("If-Match must be an ETag this service sent (like \"3\"), got {text:?}"),
        )
    })
}

pub fn etag(version: i32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

/// Trims an optional text field; empty becomes `None`.
pub fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Deserialises a present field (even `null`) as `Some(..)`, so PATCH can tell "clear" from
/// "leave alone".
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// Page size from `limit` (default 50, 1..=200).
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid("limit", format!("must be between 1 and 200 (got {n})"))),
    }
}

/// An optional JSON body: empty means `T::default()`; otherwise it must be JSON of `T`.
pub fn json_or_empty<T: serde::de::DeserializeOwned + utoipa::ToSchema + Default>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    let text = body.trim_ascii();
    if text.is_empty() || text == b"null" {
        return Ok(T::default());
    }
    json::require_json_content_type(req)?;
    json::parse_json(body)
}

/// The `Idempotency-Key` header with a digest of the request it came with.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<crate::store::idempotency::IdempotencyKey>, ApiError> {
    use actix_web::HttpMessage;
    let Some(value) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().unwrap_or("").trim().to_string();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid-idempotency-key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        ));
    }
    let body = req.extensions().get::<json::BodyDigest>().map(|d| d.0.clone()).unwrap_or_default();
    let request_digest = format!("{} {} {body}", req.method(), req.path());
    Ok(Some(crate::store::idempotency::IdempotencyKey { key, request_digest }))
}

/// The stored first answer for a repeated `Idempotency-Key`.
pub fn replayed(replay: crate::store::idempotency::Replay) -> actix_web::HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(replay.status).unwrap_or(actix_web::http::StatusCode::OK);
    actix_web::HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("Idempotent-Replayed", "true"))
        .body(replay.body)
}
