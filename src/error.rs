//! `ApiError`: the one error type of the HTTP layer, rendered as RFC 9457
//! `application/problem+json`. This is the only place that picks status codes.
//!
//! When to use which variant:
//! - `Validation`: the request is well-formed JSON but fields are wrong (422, with `errors`).
//! - `BadRequest`: the request itself is unusable (malformed JSON, bad id, bad cursor) (400).
//! - `Unauthorized`: no, bad, expired or revoked credentials (401).
//! - `Forbidden`: the caller's role can never do this here (403).
//! - `NotFound`: no such object *for this caller*: other tenants and out-of-scope objects
//!   answer the same way, so existence never leaks (404).
//! - `Conflict`: the request is valid but the current state forbids it (409).
//! - `PreconditionFailed`: `If-Match` named a stale version (412).
//! - `Unavailable`: the database or another dependency is unreachable (503, `Retry-After`).
//! - `Contended`: the database gave up the request for a concurrent one (a deadlock, a
//!   serialization failure, SQLite's lock): nothing of it was kept (503, `Retry-After`).
//! - `Internal`: a bug or an unexpected failure; logged with its chain, answered opaquely (500).
//!
//! Never put SQL, stack traces or secrets in a `detail`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Prefix of every problem `type` we emit; the rest is a stable slug.
pub const PROBLEM_BASE: &str = "urn:roster:problem:";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as sent, e.g. `email` or `regions[1]`.
    #[schema(example = "email")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must be a valid email address")]
    pub message: String,
    /// For an uploaded file (CSV import): the line the problem is on (the header is line 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(null))]
    pub row: Option<usize>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), row: None }
    }

    /// A problem with one field on one line of an uploaded file.
    pub fn at_row(row: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), row: Some(row) }
    }
}

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:roster:problem:validation",
    "title": "Invalid request",
    "status": 422,
    "detail": "2 fields are invalid",
    "errors": [{"field": "email", "message": "must be a valid email address"}]
}))]
pub struct ProblemDetails {
    /// A stable URI naming the kind of problem (`urn:roster:problem:<slug>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in words.
    pub detail: String,
    /// For validation problems: each invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { slug: &'static str, detail: String },
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{detail}")]
    Forbidden { slug: &'static str, detail: String },
    #[error("{0}")]
    NotFound(String),
    /// 404 `sso-not-configured`: no single sign-on for this email or connection (the login
    /// page shows the password form).
    #[error("{0}")]
    NoSso(String),
    #[error("{detail}")]
    Conflict { slug: &'static str, detail: String },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// `allow`: the methods the path serves, for the `Allow` header.
    #[error("{detail}")]
    MethodNotAllowed { detail: String, allow: String },
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Contended(String),
    #[error("{0}")]
    Internal(String),
    /// A SCIM error (RFC 7644 section 3.12), answered in SCIM's own format.
    #[error("{0}")]
    Scim(crate::scim::error::ScimError),
}

impl ApiError {
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest { slug, detail: detail.into() }
    }
    pub fn forbidden(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden { slug, detail: detail.into() }
    }
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { slug, detail: detail.into() }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal(detail.into())
    }

    fn parts(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest { slug, .. } => (slug, "Bad request"),
            ApiError::Validation(_) => ("validation", "Invalid request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden { slug, .. } => (slug, "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::NoSso(_) => ("sso-not-configured", "Single sign-on not configured"),
            ApiError::Conflict { slug, .. } => (slug, "Conflict"),
            ApiError::PreconditionFailed(_) => ("precondition-failed", "Precondition failed"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Contended(_) => ("contended", "Service busy"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
            ApiError::Scim(_) => ("scim", "SCIM error"),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> ProblemDetails {
        let (slug, title) = self.parts();
        let detail = match self {
            ApiError::Internal(_) => "an unexpected error occurred; quote the request id to an operator".to_string(),
            ApiError::Unavailable(_) | ApiError::Contended(_) => self.retry_detail().to_string(),
            ApiError::Validation(errors) => match errors.len() {
                1 => format!("{}: {}", errors[0].field, errors[0].message),
                n => format!("{n} fields are invalid"),
            },
            other => other.to_string(),
        };
        ProblemDetails {
            problem_type: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_string(),
            status: self.status_code().as_u16(),
            detail,
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoSso(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Contended(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Scim(e) => StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Scim(e) = self {
            return HttpResponse::build(self.status_code())
                .content_type("application/scim+json")
                .body(e.to_json().to_string());
        }
        self.log();
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type("application/problem+json");
        if matches!(self, ApiError::Unauthorized(_)) {
            builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            builder.insert_header((header::ALLOW, allow.as_str()));
        }
        if let Some(secs) = self.retry_after() {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        builder.json(self.problem())
    }
}

impl ApiError {
    /// The seconds a client should wait before sending the request again, where it should.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            ApiError::Unavailable(_) | ApiError::Contended(_) => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// What a 503 tells the client (the cause stays in the log).
    pub fn retry_detail(&self) -> &'static str {
        match self {
            ApiError::Contended(_) => {
                "the database gave this request up for a concurrent one (a deadlock or a conflicting change) and kept nothing of it; send it again"
            }
            _ => "the database is unreachable; try again shortly",
        }
    }

    /// Logs what the answer leaves out: an internal error's chain, a 503's cause.
    pub fn log(&self) {
        match self {
            ApiError::Internal(chain) => log::error!("internal error: {chain}"),
            ApiError::Unavailable(chain) => log::warn!("dependency unavailable: {chain}"),
            ApiError::Contended(chain) => log::warn!("request given up by the database: {chain}"),
            _ => {}
        }
    }
}

/// `Retry-After` of a 503: the database's troubles (a restart, a deadlock) pass in moments.
const RETRY_AFTER_SECS: u64 = 1;

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => ApiError::not_found("no such object"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                log::debug!("unique violation: {}", info.message());
                ApiError::conflict("already-exists", "an object with the same unique value already exists")
            }
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                log::debug!("foreign key violation: {}", info.message());
                ApiError::conflict("in-use", "the object is referenced by another object")
            }
            // A connection the server closed (a restart, a failover): the pool replaces it.
            // libpq's other failures to send (too many parameters, out of memory) stay 500s.
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                ApiError::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info)
                if ["connection", "could not send data"].iter().any(|m| info.message().contains(m)) =>
            {
                ApiError::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
                ApiError::Contended(info.message().to_string())
            }
            // PostgreSQL's deadlock (40P01, which diesel does not name: known by its message, in
            // English as `lc_messages` has it by default) and SQLite's busy lock.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if ["deadlock detected", "database is locked", "database table is locked"]
                    .iter()
                    .any(|m| info.message().starts_with(m)) =>
            {
                ApiError::Contended(info.message().to_string())
            }
            other => ApiError::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// A problem found before the caller was authenticated (a bad query string on a protected
/// route), kept in the request until authentication has passed: an unauthenticated caller
/// hears 401 first, whatever else is wrong with the request.
pub struct DeferredProblem(pub ApiError);

/// Call once the caller is authenticated: the problem kept for later, if any.
pub fn deferred_problem(req: &actix_web::HttpRequest) -> Result<(), ApiError> {
    use actix_web::HttpMessage;
    match req.extensions_mut().remove::<DeferredProblem>() {
        Some(DeferredProblem(e)) => Err(e),
        None => Ok(()),
    }
}

/// Result alias for handlers and store functions.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn from_database(kind: DatabaseErrorKind, message: &str) -> ApiError {
        ApiError::from(Error::DatabaseError(kind, Box::new(message.to_string())))
    }

    #[test]
    fn database_troubles_that_pass_answer_503_with_retry_after() {
        for (kind, message) in [
            (DatabaseErrorKind::ClosedConnection, "server closed the connection unexpectedly"),
            (DatabaseErrorKind::UnableToSendCommand, "no connection to the server"),
        ] {
            let e = from_database(kind, message);
            assert!(matches!(e, ApiError::Unavailable(_)), "{message}: {e:?}");
            assert_eq!((e.status_code().as_u16(), e.retry_after()), (503, Some(1)));
        }
        for (kind, message) in [
            (DatabaseErrorKind::Unknown, "deadlock detected"),
            (DatabaseErrorKind::SerializationFailure, "could not serialize access due to concurrent update"),
            (DatabaseErrorKind::Unknown, "database is locked"),
            (DatabaseErrorKind::Unknown, "database table is locked"),
        ] {
            let e = from_database(kind, message);
            assert!(matches!(e, ApiError::Contended(_)), "{message}: {e:?}");
            assert_eq!((e.status_code().as_u16(), e.retry_after()), (503, Some(1)));
            let problem = e.problem();
            assert_eq!(problem.problem_type, "urn:roster:problem:contended");
            assert!(
                problem.detail.contains("send it again") && !problem.detail.contains(message),
                "{}",
                problem.detail
            );
        }
        // Anything else stays a 500 without Retry-After, and no 503 names its cause.
        for (kind, message) in [
            (DatabaseErrorKind::Unknown, "syntax error at or near \"x\""),
            (DatabaseErrorKind::UnableToSendCommand, "number of parameters must be between 0 and 65535"),
        ] {
            let e = from_database(kind, message);
            assert_eq!((e.status_code().as_u16(), e.retry_after()), (500, None), "{message}");
        }
        let e = from_database(DatabaseErrorKind::ClosedConnection, "server closed the connection unexpectedly");
        assert!(!e.problem().detail.contains("server closed"), "{}", e.problem().detail);
    }
}
