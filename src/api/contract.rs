//! The OpenAPI document as the contract the server keeps. Request bodies and query strings are
//! checked against the very schemas and parameters the document publishes (`jsonschema`), and
//! every violation comes back at once as a 422 naming each field by its path
//! (`settings.password_min_length`, `regions[1]`). A method a documented path does not serve
//! answers 405 with `Allow`. Handlers then parse the checked values into domain types, for the
//! rules a schema cannot say (a region that exists, a password that is not common).
//!
//! Built once, from `api::openapi_document()`; it never changes while the process runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, FieldError};

/// What the document says about requests.
pub struct Contract {
    /// A validator per component schema, for request bodies.
    bodies: HashMap<String, Validator>,
    /// Every documented path, in document order.
    paths: Vec<PathEntry>,
    /// Template -> its index in `paths`.
    by_template: HashMap<String, usize>,
}

struct PathEntry {
    template: String,
    /// `None` where the template has a `{parameter}`.
    segments: Vec<Option<String>>,
    /// Upper-case method -> its query parameters.
    methods: HashMap<String, QuerySpec>,
    /// More specific templates that match some of the same paths (`/users/export` for
    /// `/users/{user_id}`).
    shadowed_by: Vec<usize>,
}

impl PathEntry {
    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }

    fn fits(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        let fits = self.segments.iter().all(|seg| match (seg, parts.next()) {
            (Some(lit), Some(part)) => lit == part,
            (None, Some(part)) => !part.is_empty(),
            (_, None) => false,
        });
        fits && parts.next().is_none()
    }

    /// Whether `other` is more specific and matches some of the paths this one does.
    fn is_shadowed_by(&self, other: &PathEntry) -> bool {
        other.segments.len() == self.segments.len()
            && other.literals() > self.literals()
            && self.segments.iter().zip(&other.segments).all(|(mine, theirs)| match (mine, theirs) {
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
                (None, _) => true,
            })
    }
}

/// The query parameters of one operation.
struct QuerySpec {
    /// Parameter name -> its schema (references resolved one level, for coercion).
    params: HashMap<String, Value>,
    has_required: bool,
    validator: Option<Validator>,
    /// The operation asks for a bearer token.
    secured: bool,
    /// Any query is let through to the handler.
    open: bool,
}

static CONTRACT: OnceLock<Contract> = OnceLock::new();

impl Contract {
    /// The contract of this build's document.
    pub fn get() -> &'static Contract {
        CONTRACT.get_or_init(|| Contract::from_document(&document_json()))
    }

    fn from_document(doc: &Value) -> Contract {
        let components = doc.pointer("/components/schemas").cloned().unwrap_or_else(|| json!({}));
        let mut bodies = HashMap::new();
        if let Some(schemas) = components.as_object() {
            for name in schemas.keys() {
                // Each validator gets the schemas its own references reach, not all of them:
                // with every component in every root the validators took 200 MiB.
                let top = json!({ "$ref": format!("#/components/schemas/{name}") });
                let mut schema = json!({ "components": { "schemas": reachable(schemas, &top) } });
                schema["$ref"] = top["$ref"].clone();
                match compile(&schema) {
                    Ok(v) => {
                        bodies.insert(name.clone(), v);
                    }
                    Err(e) => log::error!("schema {name} does not compile: {e}"),
                }
            }
        }
        let mut paths = Vec::new();
        if let Some(items) = doc.get("paths").and_then(Value::as_object) {
            // `/scim/v2` checks its own requests and answers in SCIM's error format.
            for (template, item) in items.iter().filter(|(t, _)| !t.starts_with("/scim/")) {
                let segments =
                    template.split('/').map(|s| if s.starts_with('{') { None } else { Some(s.to_string()) }).collect();
                let mut methods = HashMap::new();
                for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
                    if let Some(op) = item.get(method) {
                        let mut spec = QuerySpec::new(op, &components);
                        // The OIDC callback takes whatever an identity provider appends
                        // (providers add their own parameters) and answers the browser with a
                        // redirect, never a problem.
                        spec.open = template == "/api/v1/sso/oidc/callback";
                        methods.insert(method.to_ascii_uppercase(), spec);
                    }
                }
                paths.push(PathEntry { template: template.clone(), segments, methods, shadowed_by: Vec::new() });
            }
        }
        for i in 0..paths.len() {
            let shadows: Vec<usize> = (0..paths.len()).filter(|&j| paths[i].is_shadowed_by(&paths[j])).collect();
            paths[i].shadowed_by = shadows;
        }
        let by_template = paths.iter().enumerate().map(|(i, p)| (p.template.clone(), i)).collect();
        Contract { bodies, paths, by_template }
    }

    /// Every violation of the component schema `name` by a request body.
    pub fn check_body(&self, name: &str, body: &Value) -> Vec<FieldError> {
        match self.bodies.get(name) {
            Some(v) => collect(v.iter_errors(body), false),
            None => Vec::new(),
        }
    }

    /// The methods the document gives this path (for 405 `Allow`), from the most specific
    /// template it fits (`/users/export` before `/users/{user_id}`); empty when the document
    /// has no such path.
    pub fn methods_for_path(&self, path: &str) -> BTreeSet<String> {
        let mut best: Option<(usize, BTreeSet<String>)> = None;
        for entry in self.paths.iter().filter(|e| e.fits(path)) {
            let literals = entry.literals();
            match &mut best {
                Some((n, methods)) if *n == literals => methods.extend(entry.methods.keys().cloned()),
                Some((n, _)) if *n > literals => {}
                _ => best = Some((literals, entry.methods.keys().cloned().collect())),
            }
        }
        best.map(|(_, methods)| methods).unwrap_or_default()
    }

    fn check_request(&self, template: &str, req: &ServiceRequest) -> Result<(), ApiError> {
        let Some(&i) = self.by_template.get(template) else { return Ok(()) };
        let method = req.method().as_str();
        // A more specific documented path that does not serve this method (`GET .../users/bulk`
        // would otherwise reach `GET .../users/{user_id}`).
        for &j in &self.paths[i].shadowed_by {
            let entry = &self.paths[j];
            if entry.fits(req.path()) && !entry.methods.contains_key(method) {
                return Err(method_not_allowed(req.method().as_str(), req.path(), entry.methods.keys().cloned()));
            }
        }
        let Some(spec) = self.paths[i].methods.get(method) else {
            return Err(method_not_allowed(method, req.path(), self.paths[i].methods.keys().cloned()));
        };
        if spec.secured && !has_bearer(req) {
            return Err(ApiError::Unauthorized(
                "send `Authorization: Bearer <token>` with an access token from POST /api/v1/auth/login".into(),
            ));
        }
        if let Err(problem) = self.check_query(spec, req.query_string()) {
            if spec.secured {
                // Authentication answers first; the guard hands this on once it has passed.
                req.extensions_mut().insert(crate::error::DeferredProblem(problem));
            } else {
                return Err(problem);
            }
        }
        Ok(())
    }

    fn check_query(&self, spec: &QuerySpec, query: &str) -> Result<(), ApiError> {
        if spec.open || (query.is_empty() && !spec.has_required) {
            return Ok(());
        }
        let pairs = match actix_web::web::Query::<Vec<(String, String)>>::from_query(query) {
            Ok(pairs) => pairs.into_inner(),
            Err(e) => return Err(ApiError::bad_request("invalid-query", format!("the query string is invalid: {e}"))),
        };
        let mut problems = Vec::new();
        let mut object = Map::new();
        for (name, raw) in pairs {
            let Some(schema) = spec.params.get(&name) else {
                problems.push(FieldError::new(name, "is not a parameter of this operation"));
                continue;
            };
            if schema_type(schema) == Some("array") {
                let items = schema.get("items").cloned().unwrap_or(Value::Null);
                let entry = object.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    list.push(coerce(&items, raw));
                }
            } else if object.contains_key(&name) {
                problems.push(FieldError::new(name, "is given more than once"));
            } else {
                let value = coerce(schema, raw);
                object.insert(name, value);
            }
        }
        if let Some(validator) = &spec.validator {
            problems.extend(collect(validator.iter_errors(&Value::Object(object)), true));
        }
        problems.sort_by(|a, b| a.field.cmp(&b.field));
        problems.dedup();
        if problems.is_empty() { Ok(()) } else { Err(ApiError::Validation(problems)) }
    }
}

impl QuerySpec {
    fn new(op: &Value, components: &Value) -> QuerySpec {
        let mut params = HashMap::new();
        let mut properties = Map::new();
        let mut required = Vec::new();
        for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
            if p.get("in").and_then(Value::as_str) != Some("query") {
                continue;
            }
            let Some(name) = p.get("name").and_then(Value::as_str) else { continue };
            let schema = p.get("schema").cloned().unwrap_or_else(|| json!({}));
            if p.get("required").and_then(Value::as_bool) == Some(true) {
                required.push(json!(name));
            }
            params.insert(name.to_string(), resolve(&schema, components));
            properties.insert(name.to_string(), schema);
        }
        let has_required = !required.is_empty();
        let properties = Value::Object(properties);
        let reached = components.as_object().map(|all| reachable(all, &properties)).unwrap_or_default();
        let schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "components": { "schemas": reached },
        });
        let validator = match compile(&schema) {
            Ok(v) => Some(v),
            Err(e) => {
                log::error!("query parameters of {} do not compile: {e}", op["operationId"]);
                None
            }
        };
        let secured = op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|o| !o.is_empty())));
        QuerySpec { params, has_required, validator, secured, open: false }
    }
}

fn compile(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .with_format("email", |s: &str| crate::domain::EmailAddress::parse(s).is_ok())
        .build(schema)
}

/// The component schemas `top` refers to, directly or through others.
fn reachable(schemas: &Map<String, Value>, top: &Value) -> Map<String, Value> {
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                    out.extend(target.strip_prefix("#/components/schemas/"));
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Map::new();
    let mut todo = Vec::new();
    refs(top, &mut todo);
    while let Some(next) = todo.pop() {
        if found.contains_key(next) {
            continue;
        }
        if let Some(schema) = schemas.get(next) {
            found.insert(next.to_string(), schema.clone());
            refs(schema, &mut todo);
        }
    }
    found
}

/// The document as JSON (what `/api-docs/openapi.json` serves).
fn document_json() -> Value {
    serde_json::to_value(super::openapi_document()).unwrap_or_else(|e| {
        log::error!("the OpenAPI document does not serialise: {e}");
        json!({})
    })
}

/// A `$ref` into the components, replaced by what it names (one level).
fn resolve(schema: &Value, components: &Value) -> Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => components.get(name).cloned().unwrap_or_else(|| schema.clone()),
        None => schema.clone(),
    }
}

/// The JSON type a schema asks for, ignoring `null` (an optional parameter).
fn schema_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// A query value as the JSON its schema expects; left a string when it does not read as one,
/// so the schema reports the mismatch.
fn coerce(schema: &Value, raw: String) -> Value {
    match schema_type(schema) {
        Some("integer") => raw.trim().parse::<i64>().map(Value::from).unwrap_or(Value::String(raw)),
        Some("number") => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or(Value::String(raw)),
        Some("boolean") => match raw.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw),
        },
        _ => Value::String(raw),
    }
}

/// `jsonschema` errors as field errors: the field by its path, the message in words.
fn collect<'a>(errors: impl Iterator<Item = ValidationError<'a>>, query: bool) -> Vec<FieldError> {
    let mut out = Vec::new();
    for e in errors {
        push_error(&mut out, &e, query);
    }
    // "must not be blank" says nothing more about a field that is empty.
    let empty: Vec<String> = out.iter().filter(|e| e.message == "must not be empty").map(|e| e.field.clone()).collect();
    out.retain(|e| !(e.message.starts_with("must not be blank") && empty.contains(&e.field)));
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out.dedup();
    out
}

fn push_error(out: &mut Vec<FieldError>, e: &ValidationError<'_>, query: bool) {
    let path = field_path(&e.instance_path().to_string());
    let at = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    let here = || if path.is_empty() { "body".to_string() } else { path.clone() };
    let instance = e.instance();
    match e.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(FieldError::new(at(name), "is required"));
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let message = if query { "is not a parameter of this operation" } else { "is not a known field" };
            for name in unexpected {
                out.push(FieldError::new(at(name), message));
            }
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            // `T or null` and similar unions: report what the non-null branch says, unless the
            // value is simply of none of the types.
            let mut inner = Vec::new();
            for branch in context {
                for sub in branch {
                    if !matches!(sub.kind(), ValidationErrorKind::Type { .. })
                        || sub.instance_path() != e.instance_path()
                    {
                        push_error(&mut inner, sub, query);
                    }
                }
            }
            if inner.is_empty() {
                let types: Vec<String> = context
                    .iter()
                    .flatten()
                    .filter_map(|sub| match sub.kind() {
                        ValidationErrorKind::Type { kind } => Some(type_names(kind)),
                        _ => None,
                    })
                    .collect();
                let expected =
                    if types.is_empty() { "of the documented shape".to_string() } else { types.join(" or ") };
                out.push(FieldError::new(here(), format!("must be {expected}")));
            } else {
                out.extend(inner);
            }
        }
        ValidationErrorKind::Not { schema } => {
            // `{"not": {"required": [field], "description": why}}`: a field that does not go
            // with the others.
            let field = schema.pointer("/required/0").and_then(Value::as_str).unwrap_or_default();
            let why = schema.get("description").and_then(Value::as_str).unwrap_or("does not go with the other fields");
            out.push(FieldError::new(if field.is_empty() { here() } else { at(field) }, why));
        }
        ValidationErrorKind::UniqueItems => {
            let items = instance.as_array().map(Vec::as_slice).unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    out.push(FieldError::new(format!("{}[{i}]", here()), "is listed twice"));
                }
            }
        }
        kind => out.push(FieldError::new(here(), message(kind, instance))),
    }
}

fn message(kind: &ValidationErrorKind, instance: &Value) -> String {
    let got = || match instance {
        Value::String(s) if s.chars().count() <= 60 => format!(" (got {s:?})"),
        Value::Number(n) => format!(" (got {n})"),
        _ => String::new(),
    };
    match kind {
        ValidationErrorKind::Type { kind } => format!("must be {}", type_names(kind)),
        ValidationErrorKind::Enum { options } => {
            let names: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o.as_str().map(str::to_string).unwrap_or_else(|| o.to_string()))
                .collect();
            format!("must be one of {}{}", names.join(", "), got())
        }
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::MinLength { limit: 1 } => "must not be empty".to_string(),
        ValidationErrorKind::MinLength { limit } => format!("must be at least {limit} characters"),
        ValidationErrorKind::MaxLength { limit } => format!("must be at most {limit} characters"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}{}", got()),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}{}", got()),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be more than {limit}{}", got()),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}{}", got()),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::UniqueItems => "must not list an item twice".to_string(),
        ValidationErrorKind::Pattern { pattern } if pattern == super::NUL_FREE => {
            "must not contain the NUL character".to_string()
        }
        ValidationErrorKind::Pattern { pattern } if pattern == super::NON_BLANK => {
            "must not be blank (nor contain the NUL character)".to_string()
        }
        ValidationErrorKind::Pattern { pattern } if pattern == super::PRINTABLE_NAME => {
            "must not be blank nor contain control characters".to_string()
        }
        ValidationErrorKind::Pattern { pattern } => format!("must match the pattern {pattern}{}", got()),
        ValidationErrorKind::Format { format } => match format.as_str() {
            "uuid" => format!("must be an id (a UUID such as 01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30){}", got()),
            "email" => format!("must be a valid email address{}", got()),
            "date-time" => format!("must be an RFC 3339 time such as 2026-11-01T09:00:00Z{}", got()),
            "date" => format!("must be a date such as 2026-11-01{}", got()),
            "uri" => format!("must be an absolute URI{}", got()),
            other => format!("must be a valid {other}{}", got()),
        },
        other => format!("is invalid ({})", other.keyword()),
    }
}

fn type_names(kind: &TypeKind) -> String {
    let name = |t: jsonschema::JsonType| match t.to_string().as_str() {
        "integer" => "an integer".to_string(),
        "array" => "an array".to_string(),
        "object" => "an object".to_string(),
        "null" => "null".to_string(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => name(*t),
        TypeKind::Multiple(set) => {
            let mut names: Vec<String> = set.iter().map(name).collect();
            names.sort_by_key(|n| n == "null");
            names.join(" or ")
        }
    }
}

/// `/settings/password_min_length` -> `settings.password_min_length`; `/regions/1` -> `regions[1]`.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// 405 naming what the path does serve.
pub fn method_not_allowed(method: &str, path: &str, allowed: impl IntoIterator<Item = String>) -> ApiError {
    let allowed: BTreeSet<String> = allowed.into_iter().collect();
    let allow = allowed.into_iter().collect::<Vec<_>>().join(", ");
    ApiError::MethodNotAllowed { detail: format!("{method} is not served at {path}; it answers {allow}"), allow }
}

/// `Authorization: Bearer <something>`, as far as its form goes.
fn has_bearer(req: &ServiceRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
}

/// Middleware, before any handler: a protected operation called without a bearer token
/// answers 401, and a query string that breaks the operation's documented parameters 422.
pub async fn check_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(template) = req.match_pattern()
        && let Err(e) = Contract::get().check_request(&template, &req)
    {
        let (req, _) = req.into_parts();
        let res = actix_web::ResponseError::error_response(&e);
        return Ok(ServiceResponse::new(req, res).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_the_body() {
        assert_eq!(field_path(""), "");
        assert_eq!(field_path("/settings/password_min_length"), "settings.password_min_length");
        assert_eq!(field_path("/regions/1"), "regions[1]");
        assert_eq!(field_path("/items/0/name"), "items[0].name");
    }
}
