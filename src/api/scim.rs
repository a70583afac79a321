//! `/scim/v2`: SCIM 2.0 for Okta and Microsoft Entra ID (RFC 7643, RFC 7644; DESIGN.md section
//! 12). The tenant is the bearer `scim` key's. Answers are `application/scim+json`; every error
//! is an RFC 7644 section 3.12 object, whatever went wrong (a bad credential, an unknown route,
//! a body that is not JSON, a refusal of the member store).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::auth::guard::{ScimAccess, scim_access};
use crate::error::ApiError;
use crate::scim::error::ScimError;
use crate::scim::filter::{self, AttrPath, Filter};
use crate::scim::patch;
use crate::scim::schema::{self, ResourceKind, URN_LIST_RESPONSE as LIST_RESPONSE};
use crate::state::AppState;
use crate::store::outbox::Mailer;
use crate::store::scim::users::{ListQuery, NewPassword};
use crate::store::scim::{groups, users};

/// The most resources one list answers (`ServiceProviderConfig.filter.maxResults`).
pub const MAX_RESULTS: i64 = 200;
/// Largest request body (a group PATCH naming 10,000 members fits).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;
const SCIM_JSON: &str = "application/scim+json";

/// Any failure, answered in SCIM's format.
#[derive(Debug)]
pub struct ScimFail(ApiError);

impl From<ApiError> for ScimFail {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}
impl From<ScimError> for ScimFail {
    fn from(e: ScimError) -> Self {
        Self(ApiError::Scim(e))
    }
}
impl std::fmt::Display for ScimFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn plain(status: u16, scim_type: Option<&'static str>, detail: String) -> ScimError {
    ScimError { status, scim_type, detail }
}

/// The SCIM error an `ApiError` is.
pub fn to_scim(e: &ApiError) -> ScimError {
    match e {
        ApiError::Scim(s) => s.clone(),
        ApiError::BadRequest { detail, .. } => plain(400, Some("invalidValue"), detail.clone()),
        ApiError::Validation(errors) => plain(
            400,
            Some("invalidValue"),
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
        ),
        ApiError::Unauthorized(d) => plain(401, None, d.clone()),
        ApiError::Forbidden { detail, .. } => plain(403, None, detail.clone()),
        ApiError::NotFound(d) | ApiError::NoSso(d) => plain(404, None, d.clone()),
        ApiError::Conflict { slug, detail } => {
            let kind = matches!(*slug, "username-taken" | "email-taken" | "already-member").then_some("uniqueness");
            plain(409, kind, detail.clone())
        }
        ApiError::PreconditionFailed(d) => plain(412, None, d.clone()),
        ApiError::PayloadTooLarge(d) => plain(413, None, d.clone()),
        ApiError::UnsupportedMediaType(d) => plain(415, None, d.clone()),
        ApiError::MethodNotAllowed { detail, .. } => plain(405, None, detail.clone()),
        ApiError::TooManyRequests { detail, .. } => plain(429, None, detail.clone()),
        ApiError::Unavailable(_) | ApiError::Contended(_) => plain(503, None, e.retry_detail().into()),
        ApiError::Internal(_) => {
            plain(500, None, "an unexpected error occurred; quote the request id to an operator".into())
        }
    }
}

impl ResponseError for ScimFail {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(to_scim(&self.0).status).unwrap_or(StatusCode::BAD_REQUEST)
    }
    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let e = to_scim(&self.0);
        let mut b = HttpResponse::build(self.status_code());
        b.content_type(SCIM_JSON);
        if let Some(secs) = self.0.retry_after() {
            b.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        match &self.0 {
            ApiError::Unauthorized(_) => {
                b.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"scim\""));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                b.insert_header((header::ALLOW, allow.clone()));
            }
            _ => {}
        }
        b.body(e.to_json().to_string())
    }
}

type Answer = Result<HttpResponse, ScimFail>;

fn ok(status: StatusCode, body: &Value) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.content_type(SCIM_JSON);
    if let Some(v) = body.pointer("/meta/version").and_then(Value::as_str) {
        b.insert_header((header::ETAG, v.to_string()));
    }
    b.body(body.to_string())
}

/// `http(s)://host/scim/v2`, as the client reached it.
fn base(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}/scim/v2", info.scheme(), info.host())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ScimFail> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::internal("application state missing").into())
}

fn access(req: &HttpRequest) -> Result<ScimAccess, ScimFail> {
    Ok(scim_access(req)?)
}

/// The request body, read up to [`BODY_LIMIT`] (413 in SCIM's format beyond it).
async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, ScimFail> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ScimError::invalid_syntax(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(plain(
                413,
                None,
                format!("the body is larger than {BODY_LIMIT} bytes, the most this service takes"),
            )
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request body as JSON (`application/scim+json` or `application/json`).
fn body_json(req: &HttpRequest, body: &web::Bytes) -> Result<Value, ScimFail> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !mime.is_empty() && mime != SCIM_JSON && mime != "application/json" {
        return Err(plain(
            415,
            None,
            format!("send the body as application/scim+json or application/json, not {mime}"),
        )
        .into());
    }
    if body.len() > BODY_LIMIT {
        return Err(
            plain(413, None, format!("the body is {} bytes; at most {BODY_LIMIT} are taken", body.len())).into()
        );
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ScimError::invalid_syntax("the body must be a JSON object").into());
    }
    if contains_nul(&v) {
        return Err(ScimError::invalid_value("text values must not contain the NUL character").into());
    }
    Ok(v)
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// `If-Match`: `W/"3"`, `"3"` or `*` (any version).
fn if_match(req: &HttpRequest) -> Result<Option<i32>, ScimFail> {
    let Some(raw) = req.headers().get(header::IF_MATCH) else { return Ok(None) };
    let raw = raw.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    let digits = raw.trim_start_matches("W/").trim_matches('"');
    digits.parse::<i32>().map(Some).map_err(|_| {
        ScimError::invalid_value(format!(
            "If-Match: {raw:?} is not a version this service handed out (meta.version, e.g. W/\"3\")"
        ))
        .into()
    })
}

/// The list parameters, from the query string or a `.search` body.
struct ListParams {
    query: ListQuery,
    attributes: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

fn get_str<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn list_params(kind: Option<ResourceKind>, map: &serde_json::Map<String, Value>) -> Result<ListParams, ScimFail> {
    let text = |key: &str| -> Result<Option<String>, ScimFail> {
        match get_str(map, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(items)) if key.ends_with("ttributes") => {
                Ok(Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")))
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ScimError::invalid_value(format!("{key} must be a string")).into()),
        }
    };
    let number = |key: &str| -> Result<Option<i64>, ScimFail> {
        match text(key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ScimError::invalid_value(format!("{key} must be an integer (got {s:?})")).into()),
        }
    };
    let filter: Option<Filter> = match text("filter")? {
        Some(f) if !f.trim().is_empty() => {
            let parsed = filter::parse_filter(&f)?;
            if let Some(kind) = kind {
                filter::validate(kind, &parsed)?;
            }
            Some(parsed)
        }
        _ => None,
    };
    let sort_by = match text("sortBy")? {
        Some(s) if !s.trim().is_empty() => {
            Some(filter::parse_path(&s).map_err(|e| ScimError::invalid_value(format!("sortBy: {}", e.detail)))?.attr)
        }
        _ => None,
    };
    let descending = match text("sortOrder")?.map(|s| s.to_ascii_lowercase()) {
        None => false,
        Some(s) if s == "ascending" => false,
        Some(s) if s == "descending" => true,
        Some(s) => {
            return Err(
                ScimError::invalid_value(format!("sortOrder must be ascending or descending (got {s:?})")).into()
            );
        }
    };
    let start_index = number("startIndex")?.unwrap_or(1).max(1);
    let count = number("count")?.unwrap_or(100).clamp(0, MAX_RESULTS);
    let attributes = match text("attributes")? {
        Some(s) => schema::parse_attribute_list(&s)?,
        None => Vec::new(),
    };
    let excluded = match text("excludedAttributes")? {
        Some(s) => schema::parse_attribute_list(&s)?,
        None => Vec::new(),
    };
    Ok(ListParams { query: ListQuery { filter, sort_by, descending, start_index, count }, attributes, excluded })
}

fn query_map(req: &HttpRequest) -> Result<serde_json::Map<String, Value>, ScimFail> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ScimError::invalid_value(format!("the query string is invalid: {e}")))?;
    Ok(pairs.into_inner().into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn excludes_members(p: &ListParams) -> bool {
    let named = |list: &[AttrPath]| list.iter().any(|a| a.name.eq_ignore_ascii_case("members") && a.sub.is_none());
    named(&p.excluded)
        || (!p.attributes.is_empty() && !p.attributes.iter().any(|a| a.name.eq_ignore_ascii_case("members")))
}

fn list_response(total: i64, start: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn project(kind: ResourceKind, r: &Value, p: &ListParams) -> Value {
    if p.attributes.is_empty() && p.excluded.is_empty() {
        r.clone()
    } else {
        schema::project(kind, r, &p.attributes, &p.excluded)
    }
}

/// The projection a single-resource answer asks for (`attributes`, `excludedAttributes`).
fn single_params(req: &HttpRequest) -> Result<ListParams, ScimFail> {
    let map = query_map(req)?;
    let only: serde_json::Map<String, Value> = map
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("attributes") || k.eq_ignore_ascii_case("excludedAttributes"))
        .collect();
    list_params(None, &only)
}

async fn hash_password(st: &AppState, plain: Option<String>) -> Result<Option<NewPassword>, ScimFail> {
    let Some(plain) = plain else { return Ok(None) };
    let plain = SecretString::from(plain);
    let hash = st.hashers.hash(&plain).await?;
    Ok(Some(NewPassword { plain, hash }))
}

/// A user sent without `emails` whose `userName` is an address: that address is their email
/// (README's mapping), so the published schema's required `emails` is met.
fn email_from_user_name(v: &mut Value) {
    let Some(map) = v.as_object_mut() else { return };
    let has_emails = map
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("emails") && !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    let name =
        map.iter().find(|(k, _)| k.eq_ignore_ascii_case("userName")).and_then(|(_, v)| v.as_str()).map(str::to_string);
    if let Some(name) = name.filter(|n| n.contains('@'))
        && !has_emails
    {
        map.retain(|k, _| !k.eq_ignore_ascii_case("emails"));
        map.insert("emails".into(), json!([{"value": name.trim(), "type": "work", "primary": true}]));
    }
}

fn password_of(v: &Value) -> Result<Option<String>, ScimFail> {
    match v.as_object().and_then(|o| get_str(o, "password")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value("password must be a string").into()),
    }
}

// ---------------------------------------------------------------- discovery

async fn discovery(req: HttpRequest, what: &'static str) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    acc.run(&st.pool, |_, _| Ok(())).await?;
    let b = base(&req);
    let name = req.match_info().get("name").map(str::to_string);
    let body = match (what, name) {
        ("spc", _) => schema::service_provider_config(&b, MAX_RESULTS as usize),
        ("types", None) => schema::resource_types(&b),
        ("types", Some(n)) => {
            schema::resource_type(&b, &n).ok_or_else(|| ScimError::not_found(format!("no resource type {n}")))?
        }
        ("schemas", None) => schema::schemas(&b),
        (_, Some(n)) => schema::schema(&b, &n).ok_or_else(|| ScimError::not_found(format!("no schema {n}")))?,
        _ => Value::Null,
    };
    Ok(ok(StatusCode::OK, &body))
}

// ---------------------------------------------------------------- users

async fn list_users_with(req: &HttpRequest, map: serde_json::Map<String, Value>) -> Answer {
    let acc = access(req)?;
    let st = state(req)?;
    let p = list_params(Some(ResourceKind::User), &map)?;
    let b = base(req);
    let start = p.query.start_index;
    let q = ListQuery { filter: p.query.filter.clone(), sort_by: p.query.sort_by.clone(), ..p.query };
    let (total, found) = acc.run(&st.pool, move |conn, ctx| users::list(conn, ctx, &q, &b)).await?;
    let projected = found.iter().map(|r| project(ResourceKind::User, r, &p)).collect();
    Ok(ok(StatusCode::OK, &list_response(total, start, projected)))
}

async fn list_users(req: HttpRequest) -> Answer {
    access(&req)?;
    let map = query_map(&req)?;
    list_users_with(&req, map).await
}

async fn search_users(req: HttpRequest, payload: web::Payload) -> Answer {
    access(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    list_users_with(&req, v.as_object().cloned().unwrap_or_default()).await
}

async fn get_user(req: HttpRequest, path: web::Path<String>) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let p = single_params(&req)?;
    let id = path.into_inner();
    let b = base(&req);
    let r = acc.run(&st.pool, move |conn, ctx| users::get(conn, ctx, &id, &b)).await?;
    Ok(ok(StatusCode::OK, &project(ResourceKind::User, &r, &p)))
}

async fn create_user(req: HttpRequest, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let mut v = body_json(&req, &read_body(payload).await?)?;
    email_from_user_name(&mut v);
    let p = single_params(&req)?;
    let password = hash_password(&st, password_of(&v)?).await?;
    let resource = schema::canonicalize(ResourceKind::User, &v)?;
    let b = base(&req);
    let st2 = st.clone();
    let r = acc
        .run_write(&st.pool, move |conn, ctx| {
            let mailer = Mailer { master: &st2.master, app_url: &st2.config.app_url };
            users::create(conn, ctx, &resource, password, &mailer, &b)
        })
        .await?;
    st.mail_queued.notify_one();
    st.webhook_queued.notify_one();
    let mut res = ok(StatusCode::CREATED, &project(ResourceKind::User, &r, &p));
    if let Some(loc) = r.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = header::HeaderValue::from_str(loc)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn replace_user(req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let mut v = body_json(&req, &read_body(payload).await?)?;
    email_from_user_name(&mut v);
    let p = single_params(&req)?;
    let version = if_match(&req)?;
    let password = hash_password(&st, password_of(&v)?).await?;
    let resource = schema::canonicalize(ResourceKind::User, &v)?;
    let id = path.into_inner();
    let b = base(&req);
    let r = acc
        .run_write(&st.pool, move |conn, ctx| users::replace(conn, ctx, &id, &resource, password, version, &b))
        .await?;
    st.webhook_queued.notify_one();
    Ok(ok(StatusCode::OK, &project(ResourceKind::User, &r, &p)))
}

async fn patch_user(req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    let p = single_params(&req)?;
    let version = if_match(&req)?;
    let ops = patch::parse_patch(&v)?;
    let password = hash_password(&st, users::password_in_patch(&ops)).await?;
    let id = path.into_inner();
    let b = base(&req);
    let r = acc.run_write(&st.pool, move |conn, ctx| users::patch(conn, ctx, &id, &ops, password, version, &b)).await?;
    st.webhook_queued.notify_one();
    Ok(ok(StatusCode::OK, &project(ResourceKind::User, &r, &p)))
}

async fn delete_user(req: HttpRequest, path: web::Path<String>) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let version = if_match(&req)?;
    let id = path.into_inner();
    acc.run_write(&st.pool, move |conn, ctx| users::delete(conn, ctx, &id, version)).await?;
    st.webhook_queued.notify_one();
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------- groups

async fn list_groups_with(req: &HttpRequest, map: serde_json::Map<String, Value>) -> Answer {
    let acc = access(req)?;
    let st = state(req)?;
    let p = list_params(Some(ResourceKind::Group), &map)?;
    let b = base(req);
    let start = p.query.start_index;
    let with_members = !excludes_members(&p);
    let q = ListQuery { filter: p.query.filter.clone(), sort_by: p.query.sort_by.clone(), ..p.query };
    let (total, found) = acc.run(&st.pool, move |conn, ctx| groups::list(conn, ctx, &q, with_members, &b)).await?;
    let projected = found.iter().map(|r| project(ResourceKind::Group, r, &p)).collect();
    Ok(ok(StatusCode::OK, &list_response(total, start, projected)))
}

async fn list_groups(req: HttpRequest) -> Answer {
    access(&req)?;
    let map = query_map(&req)?;
    list_groups_with(&req, map).await
}

async fn search_groups(req: HttpRequest, payload: web::Payload) -> Answer {
    access(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    list_groups_with(&req, v.as_object().cloned().unwrap_or_default()).await
}

async fn get_group(req: HttpRequest, path: web::Path<String>) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let p = single_params(&req)?;
    let with_members = !excludes_members(&p);
    let id = path.into_inner();
    let b = base(&req);
    let r = acc.run(&st.pool, move |conn, ctx| groups::get(conn, ctx, &id, with_members, &b)).await?;
    Ok(ok(StatusCode::OK, &project(ResourceKind::Group, &r, &p)))
}

async fn create_group(req: HttpRequest, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    let p = single_params(&req)?;
    let input = groups::input(&schema::canonicalize(ResourceKind::Group, &v)?)?;
    let b = base(&req);
    let r = acc.run_write(&st.pool, move |conn, ctx| groups::create(conn, ctx, input, &b)).await?;
    st.webhook_queued.notify_one();
    let mut res = ok(StatusCode::CREATED, &project(ResourceKind::Group, &r, &p));
    if let Some(loc) = r.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = header::HeaderValue::from_str(loc)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn replace_group(req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    let p = single_params(&req)?;
    let version = if_match(&req)?;
    let input = groups::input(&schema::canonicalize(ResourceKind::Group, &v)?)?;
    let id = path.into_inner();
    let b = base(&req);
    let r = acc.run_write(&st.pool, move |conn, ctx| groups::replace(conn, ctx, &id, input, version, &b)).await?;
    st.webhook_queued.notify_one();
    Ok(ok(StatusCode::OK, &project(ResourceKind::Group, &r, &p)))
}

async fn patch_group(req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    let p = single_params(&req)?;
    let with_members = !excludes_members(&p);
    let version = if_match(&req)?;
    let ops = patch::parse_patch(&v)?;
    let id = path.into_inner();
    patch::check_id(&ops, &id)?;
    let changes = patch::group_changes(&ops)?;
    let b = base(&req);
    let r = acc
        .run_write(&st.pool, move |conn, ctx| groups::patch(conn, ctx, &id, changes, version, with_members, &b))
        .await?;
    st.webhook_queued.notify_one();
    Ok(ok(StatusCode::OK, &project(ResourceKind::Group, &r, &p)))
}

async fn delete_group(req: HttpRequest, path: web::Path<String>) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let version = if_match(&req)?;
    let id = path.into_inner();
    acc.run_write(&st.pool, move |conn, ctx| groups::delete(conn, ctx, &id, version)).await?;
    st.webhook_queued.notify_one();
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /.search` at the root: users, then groups, in one list.
async fn search_all(req: HttpRequest, payload: web::Payload) -> Answer {
    let acc = access(&req)?;
    let st = state(&req)?;
    let v = body_json(&req, &read_body(payload).await?)?;
    let map = v.as_object().cloned().unwrap_or_default();
    let p = list_params(None, &map)?;
    let b = base(&req);
    let start = p.query.start_index;
    let (filter, sort_by, count) = (p.query.filter.clone(), p.query.sort_by.clone(), p.query.count);
    let (total, found) = acc
        .run(&st.pool, move |conn, ctx| {
            let everything = |f: &Option<Filter>| ListQuery {
                filter: f.clone(),
                sort_by: sort_by.clone(),
                descending: false,
                start_index: 1,
                count: 0,
            };
            // A filter naming what one kind lacks matches none of that kind.
            let user_total = users::list(conn, ctx, &everything(&filter), &b).map(|r| r.0).unwrap_or(0);
            let group_total = groups::list(conn, ctx, &everything(&filter), false, &b).map(|r| r.0).unwrap_or(0);
            let mut out = Vec::new();
            if start <= user_total {
                let q =
                    ListQuery { filter: filter.clone(), sort_by: None, descending: false, start_index: start, count };
                out.extend(users::list(conn, ctx, &q, &b)?.1);
            }
            let left = count - out.len() as i64;
            if left > 0 {
                let group_start = (start - user_total).max(1);
                let q = ListQuery {
                    filter: filter.clone(),
                    sort_by: None,
                    descending: false,
                    start_index: group_start,
                    count: left,
                };
                if group_total > 0 {
                    out.extend(groups::list(conn, ctx, &q, true, &b)?.1);
                }
            }
            Ok((user_total + group_total, out))
        })
        .await?;
    let projected = found
        .iter()
        .map(|r| {
            let kind = if r.pointer("/meta/resourceType").and_then(Value::as_str) == Some("Group") {
                ResourceKind::Group
            } else {
                ResourceKind::User
            };
            project(kind, r, &p)
        })
        .collect();
    Ok(ok(StatusCode::OK, &list_response(total, start, projected)))
}

// ---------------------------------------------------------------- routes

async fn no_route(req: HttpRequest) -> Answer {
    let path = req.path().to_string();
    let collections = ["/Users", "/Groups", "/Schemas", "/ResourceTypes", "/ServiceProviderConfig", "/.search"];
    let tail = path.strip_prefix("/scim/v2").unwrap_or(&path);
    let known =
        collections.iter().any(|c| tail == *c || tail.starts_with(&format!("{c}/")) || tail.eq_ignore_ascii_case(c));
    if known {
        // The resource exists; answer 405 when it does not take this method.
        let allow = match tail.split('/').nth(1).unwrap_or("") {
            _ if tail.ends_with(".search") => "POST",
            "Users" | "Groups" if tail.matches('/').count() == 1 => "GET, POST",
            "Users" | "Groups" => "GET, PUT, PATCH, DELETE",
            _ => "GET",
        };
        if !allow.split(", ").any(|m| m == req.method().as_str()) {
            return Err(ApiError::MethodNotAllowed {
                detail: format!("{} is not served on {path}; it takes {allow}", req.method()),
                allow: allow.to_string(),
            }
            .into());
        }
    }
    Err(ScimError::not_found(format!("no SCIM endpoint {} {path}; the base URL is /scim/v2 (Users, Groups, Schemas, ResourceTypes, ServiceProviderConfig)", req.method())).into())
}

/// The `/scim/v2` scope: each path a resource whose other methods answer 405 (`no_route`).
pub fn scope() -> actix_web::Scope {
    let r = |path: &str| web::resource(path.to_string()).default_service(web::to(no_route));
    web::scope("/scim/v2")
        .service(r("/ServiceProviderConfig").route(web::get().to(|r| discovery(r, "spc"))))
        .service(r("/ResourceTypes").route(web::get().to(|r| discovery(r, "types"))))
        .service(r("/ResourceTypes/{name}").route(web::get().to(|r| discovery(r, "types"))))
        .service(r("/Schemas").route(web::get().to(|r| discovery(r, "schemas"))))
        .service(r("/Schemas/{name}").route(web::get().to(|r| discovery(r, "schema"))))
        .service(r("/Users").route(web::get().to(list_users)).route(web::post().to(create_user)))
        .service(r("/Users/.search").route(web::post().to(search_users)))
        .service(
            r("/Users/{id}")
                .route(web::get().to(get_user))
                .route(web::put().to(replace_user))
                .route(web::patch().to(patch_user))
                .route(web::delete().to(delete_user)),
        )
        .service(r("/Groups").route(web::get().to(list_groups)).route(web::post().to(create_group)))
        .service(r("/Groups/.search").route(web::post().to(search_groups)))
        .service(
            r("/Groups/{id}")
                .route(web::get().to(get_group))
                .route(web::put().to(replace_group))
                .route(web::patch().to(patch_group))
                .route(web::delete().to(delete_group)),
        )
        .service(r("/.search").route(web::post().to(search_all)))
        .default_service(web::to(no_route))
}
