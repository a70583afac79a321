//! (placeholder until the scim-lib branch lands)
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}
impl ScimError {
    pub fn invalid_value(d: impl Into<String>) -> Self {
        Self { status: 400, scim_type: Some("invalidValue"), detail: d.into() }
    }
    pub fn invalid_filter(d: impl Into<String>) -> Self {
        Self { status: 400, scim_type: Some("invalidFilter"), detail: d.into() }
    }
    pub fn invalid_syntax(d: impl Into<String>) -> Self {
        Self { status: 400, scim_type: Some("invalidSyntax"), detail: d.into() }
    }
    pub fn mutability(d: impl Into<String>) -> Self {
        Self { status: 400, scim_type: Some("mutability"), detail: d.into() }
    }
    pub fn uniqueness(d: impl Into<String>) -> Self {
        Self { status: 409, scim_type: Some("uniqueness"), detail: d.into() }
    }
    pub fn not_found(d: impl Into<String>) -> Self {
        Self { status: 404, scim_type: None, detail: d.into() }
    }
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":self.status.to_string(),"scimType":self.scim_type,"detail":self.detail})
    }
}
