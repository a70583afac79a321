//! Schemas of query parameters, for `#[param(schema_with = ...)]`: each says exactly what the
//! handler accepts, so the document, the `contract` check and the parsing agree.

use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn one_of_strings(values: &[&str], example: &str) -> Schema {
    string().enum_values(Some(values.iter().copied())).examples([example]).build().into()
}

/// Page size: 1 to 200 (default 50).
pub fn limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(200))
        .default(Some(50.into()))
        .build()
        .into()
}

/// An id (UUID).
pub fn uuid() -> Schema {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))).build().into()
}

/// An opaque `next_cursor` from a previous page.
pub fn cursor() -> Schema {
    string().min_length(Some(1)).max_length(Some(1000)).build().into()
}

/// Free text of at most 200 characters (a search, a department's name).
pub fn text200() -> Schema {
    string().max_length(Some(200)).build().into()
}

/// A time filter: RFC 3339 with any offset, or a date (midnight UTC).
pub fn instant() -> RefOr<Schema> {
    let any = AnyOfBuilder::new()
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .examples(["2026-11-01T09:00:00Z"])
        .build();
    RefOr::T(Schema::AnyOf(any))
}

/// A role name.
pub fn role() -> Schema {
    one_of_strings(&["owner", "admin", "operator", "viewer"], "operator")
}

/// The member list's status filter.
pub fn member_status() -> Schema {
    one_of_strings(&["active", "inactive", "all", "disabled", "invited", "pending_approval"], "active")
}

/// The member list's sort.
pub fn member_sort() -> Schema {
    one_of_strings(
        &[
            "name",
            "-name",
            "email",
            "-email",
            "role",
            "-role",
            "job_title",
            "-job_title",
            "department",
            "-department",
            "created_at",
            "-created_at",
        ],
        "name",
    )
}

/// An invitation's state.
pub fn invitation_status() -> Schema {
    one_of_strings(&["pending", "accepted", "revoked", "expired"], "pending")
}

/// How new members get in.
pub fn delivery() -> Schema {
    one_of_strings(&["temporary_password", "email"], "temporary_password")
}

/// An export's format.
pub fn export_format() -> Schema {
    one_of_strings(&["csv", "json"], "csv")
}

/// How deep a manager's reports go.
pub fn depth() -> Schema {
    one_of_strings(&["direct", "all"], "direct")
}

/// An audit action (`member.disabled`) or a family (`member.*`).
pub fn audit_action() -> Schema {
    string().max_length(Some(100)).pattern(Some(r"^[a-z_]+(\.[a-z_*]+)*$")).examples(["member.*"]).build().into()
}

/// A webhook delivery's status.
pub fn delivery_status() -> Schema {
    one_of_strings(&["pending", "succeeded", "failed"], "failed")
}

/// The event feed's cursor: the `next_cursor` it handed out.
pub fn event_cursor() -> Schema {
    string().pattern(Some("^[0-9]{1,18}$")).examples(["1042"]).build().into()
}

/// Event types and patterns, comma-separated.
pub fn event_types() -> Schema {
    string()
        .max_length(Some(2000))
        .pattern(Some(r"^[a-z_.*]+(,[a-z_.*]+)*$"))
        .examples(["member.*,invitation.accepted"])
        .build()
        .into()
}
