//! `Json<T>`: our JSON body extractor. Like actix's, but a field error names the field by its
//! path (`regions[1]`, `settings.password_min_length`), and every rejection is a problem.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::error::{ApiError, FieldError};

pub struct Json<T>(pub T);

/// SHA-256 of the raw JSON body, left in the request's extensions for `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct BodyDigest(pub String);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parses a JSON body: malformed JSON is a 400; a body that breaks the schema the document
/// publishes for `T` is a 422 naming every bad field at once.
pub fn parse_json<T: DeserializeOwned + ToSchema>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed-json", format!("the JSON body is malformed: {e}")))?;
    let problems = crate::api::contract::Contract::get().check_body(&T::name(), &value);
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let value: T = serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        let message = message.split(" at line").next().unwrap_or(&message).to_string();
        if inner.is_data() {
            let field = if path == "." || path.is_empty() {
                message.split('`').nth(1).filter(|_| message.contains("field")).unwrap_or("body").to_string()
            } else {
                path
            };
            ApiError::Validation(vec![FieldError::new(field, message)])
        } else {
            ApiError::bad_request("malformed-json", format!("the JSON body is malformed: {message}"))
        }
    })?;
    Ok(value)
}

/// The raw bytes of a body, for a handler that must check something before parsing it; a body
/// over the limit is a 413 problem.
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move { bytes.await.map(RawBody).map_err(payload_error) })
    }
}

/// A JSON body read by hand (after a check that must come first): content type, schema,
/// and the digest `Idempotency-Key` compares.
pub fn parse_body<T: DeserializeOwned + ToSchema>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    require_json_content_type(req)?;
    let value = parse_json(body)?;
    use sha2::Digest;
    let digest = crate::domain::password::hex_lower(&sha2::Sha256::digest(body));
    actix_web::HttpMessage::extensions_mut(req).insert(BodyDigest(digest));
    Ok(value)
}

pub fn require_json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else if ct.is_empty() {
        Err(ApiError::UnsupportedMediaType("send the body with Content-Type: application/json".into()))
    } else {
        Err(ApiError::UnsupportedMediaType(format!("send the body as application/json, not {ct}")))
    }
}

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            require_json_content_type(&req)?;
            let body = bytes.await.map_err(payload_error)?;
            parse_body(&req, &body).map(Json)
        })
    }
}

pub fn payload_error(err: actix_web::Error) -> ApiError {
    use actix_web::error::PayloadError;
    if let Some(PayloadError::Overflow) = err.as_error::<PayloadError>() {
        return ApiError::PayloadTooLarge(format!(
            "the body is larger than the limit of {} bytes",
            crate::config::JSON_LIMIT
        ));
    }
    let text = err.to_string();
    if text.contains("overflow") || text.contains("limit") || text.contains("too large") {
        ApiError::PayloadTooLarge(format!("the body is larger than the limit of {} bytes", crate::config::JSON_LIMIT))
    } else {
        ApiError::bad_request("unreadable-body", format!("the request body could not be read: {text}"))
    }
}
