//! (placeholder until the scim-lib branch lands)
use super::error::ScimError;
use super::schema::ResourceKind;
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    ValuePath(AttrPath, Box<Filter>),
}
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}
pub fn parse_filter(_s: &str) -> Result<Filter, ScimError> {
    Err(ScimError::invalid_filter("not yet"))
}
pub fn parse_path(_s: &str) -> Result<PatchPath, ScimError> {
    Err(ScimError::invalid_filter("not yet"))
}
pub fn validate(_k: ResourceKind, _f: &Filter) -> Result<(), ScimError> {
    Ok(())
}
