//! (placeholder until the scim-lib branch lands)
use super::error::ScimError;
use super::filter::PatchPath;
use super::schema::ResourceKind;
use serde_json::Value;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}
#[derive(Debug, Clone)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}
#[derive(Debug, Clone, PartialEq)]
pub enum GroupChange {
    DisplayName(String),
    ExternalId(Option<String>),
    AddMembers(Vec<String>),
    RemoveMembers(Vec<String>),
    RemoveAllMembers,
    ReplaceMembers(Vec<String>),
}
pub fn parse_patch(_b: &Value) -> Result<Vec<PatchOp>, ScimError> {
    Ok(vec![])
}
pub fn apply(_k: ResourceKind, _r: &mut Value, _ops: &[PatchOp]) -> Result<(), ScimError> {
    Ok(())
}
pub fn group_changes(_ops: &[PatchOp]) -> Result<Vec<GroupChange>, ScimError> {
    Ok(vec![])
}
