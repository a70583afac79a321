//! The error object of RFC 7644 section 3.12: an HTTP status, an optional `scimType` keyword and
//! a `detail` that says exactly what was wrong (the attribute, the position in a filter, the
//! index of a PATCH operation). This module picks the status for each `scimType`; the HTTP layer
//! only serialises `to_json` under `application/scim+json`. It never logs or looks at storage.

use serde_json::{Value, json};

use super::schema::URN_ERROR;

/// A SCIM error response: status, `scimType` (RFC 7644 table 9) and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SCIM {status} {}: {detail}", .scim_type.unwrap_or("error"))]
pub struct ScimError {
    /// The HTTP status code.
    pub status: u16,
    /// The RFC 7644 `scimType` keyword, for 400 and 409 answers that have one.
    pub scim_type: Option<&'static str>,
    /// What was wrong, precisely enough for the administrator to fix the mapping.
    pub detail: String,
}

impl ScimError {
    /// An error with any status and `scimType`.
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type, detail: detail.into() }
    }

    /// 400 `invalidFilter`: the filter syntax is invalid or names an unknown attribute.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidFilter"), detail)
    }

    /// 400 `tooMany`: the filter yields more results than the server will process.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(400, Some("tooMany"), detail)
    }

    /// 409 `uniqueness`: a value that must be unique (`userName`, a group's `displayName`) is taken.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some("uniqueness"), detail)
    }

    /// 400 `mutability`: the change does not fit the attribute's mutability (readOnly, immutable).
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(400, Some("mutability"), detail)
    }

    /// 400 `invalidSyntax`: the request body is not of the required structure.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }

    /// 400 `invalidPath`: a PATCH path is malformed or names an attribute outside the schema.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidPath"), detail)
    }

    /// 400 `noTarget`: the path does not select anything where it must (remove without path).
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(400, Some("noTarget"), detail)
    }

    /// 400 `invalidValue`: a required value is missing or a value has the wrong type or size.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }

    /// 400 `invalidVers`: the SCIM protocol version is not supported.
    pub fn invalid_version(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidVers"), detail)
    }

    /// 403 `sensitive`: the request would reveal confidential data (for example in a URL).
    pub fn sensitive(detail: impl Into<String>) -> Self {
        Self::new(403, Some("sensitive"), detail)
    }

    /// 400 without a `scimType`: a bad request that no keyword describes.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, None, detail)
    }

    /// 401: no or an invalid bearer key.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }

    /// 403: the key may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, None, detail)
    }

    /// 404: the resource or endpoint does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    /// 409 without a `scimType`: the request conflicts with the resource's state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, None, detail)
    }

    /// 412: `If-Match` named a version that is no longer current.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, None, detail)
    }

    /// 413: the request body is larger than the server accepts.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(413, None, detail)
    }

    /// 429: too many requests; the HTTP layer adds `Retry-After`.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(429, None, detail)
    }

    /// 501: an operation the service provider does not support (bulk, `/Me`).
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, None, detail)
    }

    /// 500: an unexpected failure; the detail must not reveal internals.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, None, detail)
    }

    /// The same error with `prefix: ` put before the detail (`Operations[2]: ...`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.detail = format!("{prefix}: {}", self.detail);
        self
    }

    /// The RFC 7644 section 3.12 JSON body: `status` as a string, `scimType` only when set.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [URN_ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(scim_type), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), Value::from(scim_type));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc_7644_table_9() {
        let cases = [
            (ScimError::invalid_filter("x"), 400, Some("invalidFilter")),
            (ScimError::too_many("x"), 400, Some("tooMany")),
            (ScimError::uniqueness("x"), 409, Some("uniqueness")),
            (ScimError::mutability("x"), 400, Some("mutability")),
            (ScimError::invalid_syntax("x"), 400, Some("invalidSyntax")),
            (ScimError::invalid_path("x"), 400, Some("invalidPath")),
            (ScimError::no_target("x"), 400, Some("noTarget")),
            (ScimError::invalid_value("x"), 400, Some("invalidValue")),
            (ScimError::invalid_version("x"), 400, Some("invalidVers")),
            (ScimError::sensitive("x"), 403, Some("sensitive")),
            (ScimError::not_found("x"), 404, None),
            (ScimError::precondition_failed("x"), 412, None),
            (ScimError::payload_too_large("x"), 413, None),
            (ScimError::too_many_requests("x"), 429, None),
        ];
        for (err, status, scim_type) in cases {
            assert_eq!((err.status, err.scim_type), (status, scim_type));
        }
    }

    #[test]
    fn json_has_status_as_string_and_scim_type_only_when_set() {
        let err = ScimError::invalid_filter("expected an operator at character 10");
        assert_eq!(
            err.to_json(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "expected an operator at character 10",
            })
        );
        let err = ScimError::not_found("User 42 not found");
        assert_eq!(
            err.to_json(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "404",
                "detail": "User 42 not found",
            })
        );
    }

    #[test]
    fn display_and_prefix() {
        let err = ScimError::invalid_value("active must be a boolean").prefixed("Operations[2]");
        assert_eq!(err.detail, "Operations[2]: active must be a boolean");
        assert_eq!(err.to_string(), "SCIM 400 invalidValue: Operations[2]: active must be a boolean");
    }
}
