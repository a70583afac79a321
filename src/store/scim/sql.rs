//! SCIM filters as SQL (RFC 7644 section 3.4.2.2). A filter becomes one boolean expression over
//! the listed table (`memberships` for users, `groups` for groups) with its values bound, never
//! spliced: attribute names are resolved against the fixed tables below, so only names from
//! this file reach the SQL text. String comparisons fold case unless the attribute is
//! `caseExact` (ids and `externalId`); multi-valued attributes kept with the SCIM attributes
//! (`emails`, `phoneNumbers`, ...) match when any element matches (`json_each` on SQLite,
//! `jsonb_array_elements` on PostgreSQL).

use chrono::NaiveDateTime;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text, Timestamp};
use diesel::sqlite::Sqlite;

use crate::db::{BackendKind, MultiBackend, escape_like};
use crate::scim::error::ScimError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{URN_ENTERPRISE_USER as ENTERPRISE_USER, URN_GROUP as GROUP, URN_USER as USER};

/// A bound value.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Time(NaiveDateTime),
}

/// A boolean SQL expression built at run time: `parts[0] bind[0] parts[1] ... parts[n]`.
#[derive(Debug, Clone)]
pub struct DynSql {
    parts: Vec<String>,
    binds: Vec<Bind>,
}

impl Expression for DynSql {
    type SqlType = Bool;
}
impl<QS> AppearsOnTable<QS> for DynSql {}
impl<QS> SelectableExpression<QS> for DynSql {}
impl<GB> ValidGrouping<GB> for DynSql {
    type IsAggregate = is_aggregate::Never;
}
impl QueryId for DynSql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

macro_rules! walk_dyn {
    ($self:ident, $out:ident) => {{
        for (i, part) in $self.parts.iter().enumerate() {
            $out.push_sql(part);
            match $self.binds.get(i) {
                Some(Bind::Text(s)) => $out.push_bind_param::<Text, String>(s)?,
                Some(Bind::Time(t)) => $out.push_bind_param::<Timestamp, NaiveDateTime>(t)?,
                None => {}
            }
        }
        Ok(())
    }};
}

impl QueryFragment<Sqlite> for DynSql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
        walk_dyn!(self, out)
    }
}
impl QueryFragment<Pg> for DynSql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        walk_dyn!(self, out)
    }
}
impl QueryFragment<MultiBackend> for DynSql {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> diesel::QueryResult<()> {
        MultiBackend::walk_variant_ast(self, pass)
    }
}

/// Which resource a filter is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Users,
    Groups,
}

/// How a value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text compared without regard to case.
    Text,
    /// Text compared exactly (ids, `externalId`).
    ExactText,
    Time,
    /// A boolean kept as JSON inside the SCIM attributes.
    JsonBool,
}

/// Where an attribute's value is.
#[derive(Debug, Clone)]
enum Target {
    /// One value: an SQL expression over the listed row.
    Scalar(String, Kind),
    /// `active`: the membership's status.
    Active,
    /// A multi-valued attribute in the SCIM attributes (JSON key), optionally one sub-attribute.
    JsonArray(&'static str, Option<&'static str>),
    /// A user's `emails`: the SCIM attributes' list, or for a member the directory never wrote,
    /// their address.
    Emails(Option<&'static str>),
    /// A user's `groups` (sub-attribute `value` or `display`).
    UserGroups(&'static str),
    /// A group's `members` (sub-attribute `value` or `display`).
    GroupMembers(&'static str),
    /// `meta.resourceType`: a constant.
    Constant(&'static str),
}

struct Builder {
    backend: BackendKind,
    parts: Vec<String>,
    binds: Vec<Bind>,
    cur: String,
    depth: usize,
}

impl Builder {
    fn push(&mut self, s: &str) {
        self.cur.push_str(s);
    }
    fn bind(&mut self, b: Bind) {
        self.parts.push(std::mem::take(&mut self.cur));
        self.binds.push(b);
    }
    fn pg(&self) -> bool {
        self.backend == BackendKind::Postgres
    }
}

/// The filter as SQL over the listed table.
pub fn translate(filter: &Filter, over: Over, backend: BackendKind) -> Result<DynSql, ScimError> {
    let mut b = Builder { backend, parts: Vec::new(), binds: Vec::new(), cur: String::new(), depth: 0 };
    node(&mut b, filter, over, None)?;
    let mut parts = b.parts;
    parts.push(b.cur);
    Ok(DynSql { parts, binds: b.binds })
}

/// A `userName eq "..."` that stands alone (or in an `and` chain): its value, so the list can
/// find the few members it names by index before anything else.
pub fn user_name_eq(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare(path, CompareOp::Eq, CompValue::Str(v))
            if path.sub.is_none()
                && path.name.eq_ignore_ascii_case("userName")
                && path.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(USER)) =>
        {
            Some(v)
        }
        Filter::And(a, b) => user_name_eq(a).or_else(|| user_name_eq(b)),
        _ => None,
    }
}

/// The SCIM attributes' JSON of the listed member (SQL expression).
const SCIM_ROW: &str =
    "FROM scim_users s WHERE s.tenant_id = memberships.tenant_id AND s.user_id = memberships.user_id";

fn scim_col(col: &str) -> String {
    format!("(SELECT s.{col} {SCIM_ROW})")
}
fn user_col(col: &str) -> String {
    format!("(SELECT u.{col} FROM users u WHERE u.id = memberships.user_id)")
}

/// A JSON value in the SCIM attributes, as text: `keys` is its path (names from this file).
fn json_text(b: &Builder, keys: &[&str]) -> String {
    if b.pg() {
        let path: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        format!("(SELECT s.attributes::jsonb #>> '{{{}}}' {SCIM_ROW})", path.join(","))
    } else {
        let path: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        format!("(SELECT json_extract(s.attributes, '$.{}') {SCIM_ROW})", path.join("."))
    }
}

/// The canonical name of an attribute of `names`, matched without regard to case.
fn canon(names: &[&'static str], name: &str) -> Option<&'static str> {
    names.iter().copied().find(|n| n.eq_ignore_ascii_case(name))
}

const USER_SIMPLE_JSON: &[&str] = &["nickName", "profileUrl", "userType", "preferredLanguage", "locale", "timezone"];
const USER_NAME_PARTS: &[&str] =
    &["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"];
const USER_ARRAYS: &[&str] = &["phoneNumbers", "ims", "photos", "addresses"];
const ARRAY_SUBS: &[&str] = &[
    "value",
    "display",
    "type",
    "primary",
    "formatted",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
];
const ENTERPRISE_JSON: &[&str] = &["employeeNumber", "costCenter", "organization", "division"];

fn unknown(path: &AttrPath) -> ScimError {
    let sub = path.sub.as_deref().map(|s| format!(".{s}")).unwrap_or_default();
    ScimError::invalid_filter(format!("the filter names `{}{sub}`, which is not a filterable attribute", path.name))
}

fn meta_target(path: &AttrPath, created: &str, modified: &str, resource: &'static str) -> Result<Target, ScimError> {
    match path.sub.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("created") => Ok(Target::Scalar(created.into(), Kind::Time)),
        Some("lastmodified") => Ok(Target::Scalar(modified.into(), Kind::Time)),
        Some("resourcetype") => Ok(Target::Constant(resource)),
        _ => Err(unknown(path)),
    }
}

fn user_target(b: &Builder, path: &AttrPath) -> Result<Target, ScimError> {
    let enterprise = match path.urn.as_deref() {
        // An enterprise attribute without its URN (no core attribute has these names).
        None => ["department", "manager", "employeenumber", "costcenter", "organization", "division"]
            .contains(&path.name.to_ascii_lowercase().as_str()),
        Some(u) if u.eq_ignore_ascii_case(USER) => false,
        Some(u) if u.eq_ignore_ascii_case(ENTERPRISE_USER) => true,
        Some(_) => return Err(unknown(path)),
    };
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref();
    if enterprise {
        return match (name.as_str(), sub.map(str::to_ascii_lowercase).as_deref()) {
            ("department", None) => Ok(Target::Scalar("memberships.department".into(), Kind::Text)),
            ("manager", Some("value")) | ("manager", None) => {
                Ok(Target::Scalar("memberships.manager_id".into(), Kind::ExactText))
            }
            (_, None) => match canon(ENTERPRISE_JSON, &name) {
                Some(key) => Ok(Target::Scalar(json_text(b, &[ENTERPRISE_USER, key]), Kind::Text)),
                None => Err(unknown(path)),
            },
            _ => Err(unknown(path)),
        };
    }
    let no_sub = sub.is_none();
    Ok(match name.as_str() {
        "id" if no_sub => Target::Scalar("memberships.user_id".into(), Kind::ExactText),
        "externalid" if no_sub => Target::Scalar(scim_col("external_id"), Kind::ExactText),
        "username" if no_sub => Target::Scalar(
            format!("coalesce({}, {}, {})", scim_col("user_name"), user_col("username"), user_col("email")),
            Kind::Text,
        ),
        "displayname" if no_sub => Target::Scalar(user_col("full_name"), Kind::Text),
        "title" if no_sub => Target::Scalar("memberships.job_title".into(), Kind::Text),
        "active" if no_sub => Target::Active,
        "name" => match sub.and_then(|s| canon(USER_NAME_PARTS, s)) {
            Some(part) => Target::Scalar(json_text(b, &["name", part]), Kind::Text),
            None => return Err(unknown(path)),
        },
        "emails" => match sub {
            None => Target::Emails(None),
            Some(s) => Target::Emails(Some(canon(ARRAY_SUBS, s).ok_or_else(|| unknown(path))?)),
        },
        "groups" => match sub.map(str::to_ascii_lowercase).as_deref() {
            None | Some("value") => Target::UserGroups("value"),
            Some("display") => Target::UserGroups("display"),
            _ => return Err(unknown(path)),
        },
        "meta" => meta_target(path, "memberships.created_at", "memberships.updated_at", "User")?,
        _ => {
            if let Some(key) = canon(USER_SIMPLE_JSON, &name).filter(|_| no_sub) {
                Target::Scalar(json_text(b, &[key]), Kind::Text)
            } else if let Some(key) = canon(USER_ARRAYS, &name) {
                match sub {
                    None => Target::JsonArray(key, None),
                    Some(s) => Target::JsonArray(key, Some(canon(ARRAY_SUBS, s).ok_or_else(|| unknown(path))?)),
                }
            } else {
                return Err(unknown(path));
            }
        }
    })
}

fn group_target(path: &AttrPath) -> Result<Target, ScimError> {
    if path.urn.as_deref().is_some_and(|u| !u.eq_ignore_ascii_case(GROUP)) {
        return Err(unknown(path));
    }
    let no_sub = path.sub.is_none();
    Ok(match path.name.to_ascii_lowercase().as_str() {
        "id" if no_sub => Target::Scalar("groups.id".into(), Kind::ExactText),
        "externalid" if no_sub => Target::Scalar("groups.external_id".into(), Kind::ExactText),
        "displayname" if no_sub => Target::Scalar("groups.display_name".into(), Kind::Text),
        "members" => match path.sub.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("value") => Target::GroupMembers("value"),
            Some("display") => Target::GroupMembers("display"),
            _ => return Err(unknown(path)),
        },
        "meta" => meta_target(path, "groups.created_at", "groups.updated_at", "Group")?,
        _ => return Err(unknown(path)),
    })
}

fn node(b: &mut Builder, f: &Filter, over: Over, element: Option<&ElementCtx>) -> Result<(), ScimError> {
    b.depth += 1;
    if b.depth > 64 {
        return Err(ScimError::invalid_filter("the filter nests too deeply (at most 64 levels)"));
    }
    match f {
        Filter::And(x, y) | Filter::Or(x, y) => {
            b.push("(");
            node(b, x, over, element)?;
            b.push(if matches!(f, Filter::And(..)) { " AND " } else { " OR " });
            node(b, y, over, element)?;
            b.push(")");
        }
        Filter::Not(x) => {
            // SQL's NOT of an unknown (NULL) is unknown: coalesce so `not (title eq "x")` keeps
            // members without a title.
            b.push("(NOT coalesce(");
            node(b, x, over, element)?;
            b.push(", FALSE))");
        }
        Filter::Present(path) => leaf(b, path, None, over, element)?,
        Filter::Compare(path, op, value) => leaf(b, path, Some((*op, value)), over, element)?,
        Filter::ValuePath(path, inner) => {
            if element.is_some() {
                return Err(ScimError::invalid_filter("a value filter cannot be nested inside another"));
            }
            let target = match over {
                Over::Users => user_target(b, path)?,
                Over::Groups => group_target(path)?,
            };
            let ctx = element_ctx(b, &target, path)?;
            open_exists(b, &ctx);
            node(b, inner, over, Some(&ctx))?;
            close_exists(b, &ctx);
        }
    }
    b.depth -= 1;
    Ok(())
}

/// The elements of a multi-valued attribute, iterated in an `EXISTS (...)`.
#[derive(Debug, Clone)]
enum ElementCtx {
    /// JSON array under `key` in the SCIM attributes.
    Json(&'static str),
    /// A user's emails: the SCIM attributes' list.
    Emails,
    UserGroups,
    GroupMembers,
}

fn element_ctx(b: &Builder, target: &Target, path: &AttrPath) -> Result<ElementCtx, ScimError> {
    let _ = b;
    match target {
        Target::JsonArray(key, None) => Ok(ElementCtx::Json(key)),
        Target::Emails(None) => Ok(ElementCtx::Emails),
        Target::UserGroups(_) if path.sub.is_none() => Ok(ElementCtx::UserGroups),
        Target::GroupMembers(_) if path.sub.is_none() => Ok(ElementCtx::GroupMembers),
        _ => Err(ScimError::invalid_filter(format!(
            "`{}[...]` filters a multi-valued attribute; `{}` is not one",
            path.name, path.name
        ))),
    }
}

fn open_exists(b: &mut Builder, ctx: &ElementCtx) {
    let json_key = match ctx {
        ElementCtx::Json(key) => Some(*key),
        ElementCtx::Emails => Some("emails"),
        _ => None,
    };
    match (ctx, json_key) {
        (_, Some(key)) if b.pg() => {
            b.push(&format!(
                "EXISTS (SELECT 1 FROM scim_users s, jsonb_array_elements(CASE WHEN jsonb_typeof(s.attributes::jsonb -> '{key}') = 'array' THEN s.attributes::jsonb -> '{key}' ELSE '[]'::jsonb END) e(v) WHERE s.tenant_id = memberships.tenant_id AND s.user_id = memberships.user_id AND "
            ));
        }
        (_, Some(key)) => {
            b.push(&format!(
                "EXISTS (SELECT 1 FROM scim_users s, json_each(s.attributes, '$.\"{key}\"') e WHERE s.tenant_id = memberships.tenant_id AND s.user_id = memberships.user_id AND "
            ));
        }
        (ElementCtx::UserGroups, _) => b.push(
            "EXISTS (SELECT 1 FROM group_members gm JOIN groups g ON g.tenant_id = gm.tenant_id AND g.id = gm.group_id WHERE gm.tenant_id = memberships.tenant_id AND gm.user_id = memberships.user_id AND ",
        ),
        _ => b.push(
            "EXISTS (SELECT 1 FROM group_members gm JOIN users mu ON mu.id = gm.user_id WHERE gm.tenant_id = groups.tenant_id AND gm.group_id = groups.id AND ",
        ),
    }
    b.push("(");
}

fn close_exists(b: &mut Builder, _ctx: &ElementCtx) {
    b.push("))");
}

/// A sub-attribute of the element being iterated, as an SQL expression.
fn element_field(b: &Builder, ctx: &ElementCtx, path: &AttrPath) -> Result<(String, Kind), ScimError> {
    // Inside `emails[...]` the names are the element's: `type`, `value` (or `emails.value`).
    let name = match &path.sub {
        Some(sub) => sub.as_str(),
        None => path.name.as_str(),
    };
    match ctx {
        ElementCtx::Json(_) | ElementCtx::Emails => {
            let key = canon(ARRAY_SUBS, name).ok_or_else(|| unknown(path))?;
            let kind = if key == "primary" { Kind::JsonBool } else { Kind::Text };
            let expr =
                if b.pg() { format!("(e.v ->> '{key}')") } else { format!("json_extract(e.value, '$.\"{key}\"')") };
            Ok((expr, kind))
        }
        ElementCtx::UserGroups => match name.to_ascii_lowercase().as_str() {
            "value" => Ok(("gm.group_id".into(), Kind::ExactText)),
            "display" => Ok(("g.display_name".into(), Kind::Text)),
            _ => Err(unknown(path)),
        },
        ElementCtx::GroupMembers => match name.to_ascii_lowercase().as_str() {
            "value" => Ok(("gm.user_id".into(), Kind::ExactText)),
            "display" => Ok(("mu.full_name".into(), Kind::Text)),
            _ => Err(unknown(path)),
        },
    }
}

fn leaf(
    b: &mut Builder,
    path: &AttrPath,
    cmp: Option<(CompareOp, &CompValue)>,
    over: Over,
    element: Option<&ElementCtx>,
) -> Result<(), ScimError> {
    if let Some(ctx) = element {
        let (expr, kind) = element_field(b, ctx, path)?;
        return compare(b, &expr, kind, path, cmp);
    }
    let target = match over {
        Over::Users => user_target(b, path)?,
        Over::Groups => group_target(path)?,
    };
    match target {
        Target::Scalar(expr, kind) => compare(b, &expr, kind, path, cmp),
        Target::Constant(value) => {
            let matches = match cmp {
                None => true,
                Some((CompareOp::Eq, CompValue::Str(v))) => v.eq_ignore_ascii_case(value),
                Some((CompareOp::Ne, CompValue::Str(v))) => !v.eq_ignore_ascii_case(value),
                _ => return Err(ScimError::invalid_filter("meta.resourceType takes `eq`, `ne` or `pr`")),
            };
            b.push(if matches { "(1 = 1)" } else { "(1 = 0)" });
            Ok(())
        }
        Target::Active => {
            let want = match cmp {
                None => {
                    b.push("(1 = 1)");
                    return Ok(());
                }
                Some((CompareOp::Eq, CompValue::Bool(v))) => *v,
                Some((CompareOp::Ne, CompValue::Bool(v))) => !*v,
                Some((CompareOp::Eq | CompareOp::Ne, CompValue::Str(s)))
                    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
                {
                    let v = s.eq_ignore_ascii_case("true");
                    if matches!(cmp, Some((CompareOp::Eq, _))) { v } else { !v }
                }
                _ => {
                    return Err(ScimError::invalid_filter(
                        "`active` is a boolean: compare it with `eq true` or `eq false`",
                    ));
                }
            };
            b.push(if want { "(memberships.status = 'active')" } else { "(memberships.status <> 'active')" });
            Ok(())
        }
        Target::JsonArray(key, sub) => {
            let ctx = ElementCtx::Json(key);
            open_exists(b, &ctx);
            let inner = AttrPath { urn: None, name: sub.unwrap_or("value").to_string(), sub: None };
            let (expr, kind) = element_field(b, &ctx, &inner)?;
            compare(b, &expr, kind, path, cmp)?;
            close_exists(b, &ctx);
            Ok(())
        }
        Target::Emails(sub) => {
            let ctx = ElementCtx::Emails;
            let sub = sub.unwrap_or("value");
            b.push("(");
            open_exists(b, &ctx);
            let inner = AttrPath { urn: None, name: sub.to_string(), sub: None };
            let (expr, kind) = element_field(b, &ctx, &inner)?;
            compare(b, &expr, kind, path, cmp)?;
            close_exists(b, &ctx);
            if sub == "value" {
                // A member the directory never wrote: their address is their one email.
                b.push(&format!(" OR (NOT EXISTS (SELECT 1 {SCIM_ROW}) AND "));
                compare(b, &user_col("email"), Kind::Text, path, cmp)?;
                b.push(")");
            }
            b.push(")");
            Ok(())
        }
        Target::UserGroups(sub) | Target::GroupMembers(sub) => {
            let ctx =
                if matches!(target, Target::UserGroups(_)) { ElementCtx::UserGroups } else { ElementCtx::GroupMembers };
            open_exists(b, &ctx);
            let inner = AttrPath { urn: None, name: sub.to_string(), sub: None };
            let (expr, kind) = element_field(b, &ctx, &inner)?;
            compare(b, &expr, kind, path, cmp)?;
            close_exists(b, &ctx);
            Ok(())
        }
    }
}

fn describe(path: &AttrPath) -> String {
    match &path.sub {
        Some(s) => format!("{}.{s}", path.name),
        None => path.name.clone(),
    }
}

fn compare(
    b: &mut Builder,
    expr: &str,
    kind: Kind,
    path: &AttrPath,
    cmp: Option<(CompareOp, &CompValue)>,
) -> Result<(), ScimError> {
    let Some((op, value)) = cmp else {
        match kind {
            Kind::Text | Kind::ExactText => b.push(&format!("({expr} IS NOT NULL AND {expr} <> '')")),
            Kind::Time | Kind::JsonBool => b.push(&format!("({expr} IS NOT NULL)")),
        }
        return Ok(());
    };
    let name = describe(path);
    match kind {
        Kind::JsonBool => {
            let v = match value {
                CompValue::Bool(v) => *v,
                CompValue::Str(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                    s.eq_ignore_ascii_case("true")
                }
                _ => {
                    return Err(ScimError::invalid_filter(format!(
                        "`{name}` is a boolean: compare it with true or false"
                    )));
                }
            };
            let lit = match (b.pg(), v) {
                (true, true) => "'true'",
                (true, false) => "'false'",
                (false, true) => "1",
                (false, false) => "0",
            };
            match op {
                CompareOp::Eq => b.push(&format!("({expr} = {lit})")),
                CompareOp::Ne => b.push(&format!("({expr} IS NULL OR {expr} <> {lit})")),
                _ => {
                    return Err(ScimError::invalid_filter(format!(
                        "`{name}` is a boolean: only `eq`, `ne` and `pr` apply"
                    )));
                }
            }
            Ok(())
        }
        Kind::Time => {
            let CompValue::Str(s) = value else {
                return Err(ScimError::invalid_filter(format!(
                    "`{name}` is a date-time: compare it with a quoted RFC 3339 time"
                )));
            };
            let at = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ScimError::invalid_filter(format!("`{name}`: {s:?} is not an RFC 3339 date-time")))?
                .naive_utc();
            let sql_op = match op {
                CompareOp::Eq => "=",
                CompareOp::Ne => "<>",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
                CompareOp::Lt => "<",
                CompareOp::Le => "<=",
                _ => {
                    return Err(ScimError::invalid_filter(format!(
                        "`{name}` is a date-time: `co`, `sw` and `ew` do not apply"
                    )));
                }
            };
            b.push(&format!("({expr} {sql_op} "));
            b.bind(Bind::Time(at));
            b.push(")");
            Ok(())
        }
        Kind::Text | Kind::ExactText => {
            let text = match value {
                CompValue::Str(s) => s.clone(),
                CompValue::Bool(v) => v.to_string(),
                CompValue::Num(n) => n.to_string(),
                CompValue::Null => {
                    return match op {
                        CompareOp::Eq => {
                            b.push(&format!("({expr} IS NULL)"));
                            Ok(())
                        }
                        CompareOp::Ne => {
                            b.push(&format!("({expr} IS NOT NULL)"));
                            Ok(())
                        }
                        _ => Err(ScimError::invalid_filter(format!("`{name}`: null compares only with `eq` and `ne`"))),
                    };
                }
            };
            let exact = kind == Kind::ExactText;
            let (lhs, text) =
                if exact { (expr.to_string(), text) } else { (format!("lower({expr})"), text.to_lowercase()) };
            match op {
                CompareOp::Eq | CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                    let sql_op = match op {
                        CompareOp::Eq => "=",
                        CompareOp::Gt => ">",
                        CompareOp::Ge => ">=",
                        CompareOp::Lt => "<",
                        _ => "<=",
                    };
                    b.push(&format!("({lhs} {sql_op} "));
                    b.bind(Bind::Text(text));
                    b.push(")");
                }
                CompareOp::Ne => {
                    b.push(&format!("({expr} IS NULL OR {lhs} <> "));
                    b.bind(Bind::Text(text));
                    b.push(")");
                }
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew if exact => {
                    // LIKE folds ASCII case on SQLite: match exactly by position instead.
                    let (find, cond) = if b.pg() { ("strpos", "") } else { ("instr", "") };
                    let _ = cond;
                    let n = text.chars().count();
                    match op {
                        CompareOp::Co => {
                            b.push(&format!("({find}({lhs}, "));
                            b.bind(Bind::Text(text));
                            b.push(") > 0)");
                        }
                        CompareOp::Sw => {
                            b.push(&format!("(substr({lhs}, 1, {n}) = "));
                            b.bind(Bind::Text(text));
                            b.push(")");
                        }
                        _ => {
                            let tail =
                                if b.pg() { format!("right({lhs}, {n})") } else { format!("substr({lhs}, -{n})") };
                            b.push(&format!("(length({lhs}) >= {n} AND {tail} = "));
                            b.bind(Bind::Text(text));
                            b.push(")");
                        }
                    }
                }
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
                    let escaped = escape_like(&text);
                    let pattern = match op {
                        CompareOp::Co => format!("%{escaped}%"),
                        CompareOp::Sw => format!("{escaped}%"),
                        _ => format!("%{escaped}"),
                    };
                    b.push(&format!("({lhs} LIKE "));
                    b.bind(Bind::Text(pattern));
                    b.push(" ESCAPE '\\')");
                }
            }
            Ok(())
        }
    }
}

/// The SQL expression a list is sorted by (`sortBy`), over the listed row.
pub fn sort_expr(path: &AttrPath, over: Over, backend: BackendKind) -> Result<String, ScimError> {
    let b = Builder { backend, parts: Vec::new(), binds: Vec::new(), cur: String::new(), depth: 0 };
    let target = match over {
        Over::Users => user_target(&b, path)?,
        Over::Groups => group_target(path)?,
    };
    match target {
        Target::Scalar(expr, Kind::Text) => Ok(format!("lower({expr})")),
        Target::Scalar(expr, _) => Ok(expr),
        Target::Active => Ok("memberships.status".into()),
        Target::Emails(_) => Ok(user_col("email")),
        _ => Err(ScimError::invalid_value(format!("sortBy: `{}` cannot be sorted by", describe(path)))),
    }
}
