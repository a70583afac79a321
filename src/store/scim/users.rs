//! SCIM users: members as RFC 7643 User resources with the enterprise extension, and the
//! writes a directory makes to them. The mapping (DESIGN.md section 12, README "Connect Okta"):
//!
//! - `userName` is kept as sent (unique in the tenant without regard to case); an address is
//!   also the member's email, anything else is their username (and an email is then required).
//! - the primary (else `work`, else first) email is the member's email;
//! - `displayName`, else `name.formatted`, else `givenName familyName`, is the full name;
//! - `title` the job title, `active` enabled or disabled, the enterprise `department` and
//!   `manager.value` the department and manager; `externalId` is kept per membership;
//! - every other attribute is kept as sent (the `attributes` JSON) and given back;
//! - `groups` and `meta` are the service's; `password` sets the password of an identity this
//!   tenant manages and is never kept or returned.
//!
//! A member's SCIM view is always built from Roster's columns over the kept attributes, so a
//! change made in the REST API shows in SCIM at once.

use std::collections::HashMap;

use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::roles;
use super::sql::{self, Over};
use crate::auth::TenantContext;
use crate::db::among::among;
use crate::db::models::MembershipRow;
use crate::db::schema::{
    group_members::dsl as gm, groups::dsl as g, memberships::dsl as m, scim_users::dsl as su, tenants::dsl as t,
    users::dsl as u,
};
use crate::db::{AnyConnection, BackendKind};
use crate::domain::ids::parse_stored;
use crate::domain::{EmailAddress, MemberStatus, RegionId, Role, UserId, now};
use crate::error::ApiError;
use crate::scim::error::ScimError;
use crate::scim::filter::{AttrPath, Filter};
use crate::scim::schema::{URN_ENTERPRISE_USER as ENTERPRISE_USER, URN_USER as USER};
use crate::store::audit::{self, AuditEntry};
use crate::store::members::{self as members, Joining, Person, SignIn, new_member_rows};
use crate::store::outbox::{self, Mailer, Notice};
use crate::store::sessions::{self, EndReason, Sessions};

/// A SCIM error, carried through the store's `ApiError` so the transaction rolls back.
pub(crate) fn scim(e: ScimError) -> ApiError {
    ApiError::Scim(e)
}

/// A password a directory sent: as typed (for the policy) and its stored form, hashed before
/// the transaction.
pub struct NewPassword {
    pub plain: SecretString,
    pub hash: String,
}

/// A member as SCIM shows them, as loaded.
struct Loaded {
    m: MembershipRow,
    email: String,
    username: Option<String>,
    full_name: String,
    home_tenant_id: Option<String>,
    /// `user_name`, `external_id`, `attributes` when the directory has written the member.
    scim: Option<(String, Option<String>, String)>,
}

type LoadedRow =
    (MembershipRow, String, Option<String>, String, Option<String>, Option<(String, Option<String>, String)>);

fn load(conn: &mut AnyConnection, tenant: &str, ids: &[String]) -> Result<Vec<Loaded>, ApiError> {
    let rows: Vec<LoadedRow> = m::memberships
        .inner_join(u::users)
        .left_join(su::scim_users.on(su::tenant_id.eq(m::tenant_id).and(su::user_id.eq(m::user_id))))
        .filter(m::tenant_id.eq(tenant))
        .filter(among(m::user_id, ids))
        .select((
            MembershipRow::as_select(),
            u::email,
            u::username,
            u::full_name,
            u::home_tenant_id,
            (su::user_name, su::external_id, su::attributes).nullable(),
        ))
        .load(conn)?;
    let mut by_id: HashMap<String, Loaded> = rows
        .into_iter()
        .map(|(m, email, username, full_name, home_tenant_id, scim)| {
            (m.user_id.clone(), Loaded { m, email, username, full_name, home_tenant_id, scim })
        })
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The resources of `ids` (in that order), with their groups.
fn resources(conn: &mut AnyConnection, tenant: &str, ids: &[String], base: &str) -> Result<Vec<Value>, ApiError> {
    let loaded = load(conn, tenant, ids)?;
    let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (user, id, name) in gm::group_members
        .inner_join(g::groups.on(g::tenant_id.eq(gm::tenant_id).and(g::id.eq(gm::group_id))))
        .filter(gm::tenant_id.eq(tenant))
        .filter(among(gm::user_id, ids))
        .select((gm::user_id, g::id, g::display_name))
        .order((gm::user_id, g::display_name))
        .load::<(String, String, String)>(conn)?
    {
        groups.entry(user).or_default().push((id, name));
    }
    Ok(loaded
        .iter()
        .map(|l| render(l, tenant, groups.get(&l.m.user_id).map(Vec::as_slice).unwrap_or(&[]), base))
        .collect())
}

/// An address the service made up for someone who has not given theirs (device enrolment).
fn provisional(email: &str) -> bool {
    email.ends_with(".roster.invalid")
}

/// The ETag of a version.
pub fn etag(version: i32) -> String {
    format!("W/\"{version}\"")
}

fn render(l: &Loaded, tenant: &str, groups: &[(String, String)], base: &str) -> Value {
    let mut r: Map<String, Value> = l
        .scim
        .as_ref()
        .and_then(|(_, _, attrs)| serde_json::from_str::<Value>(attrs).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let sent_active = r.contains_key("active");
    let sent_display_name = r.contains_key("displayName");
    for gone in ["password", "id", "meta", "groups", "schemas", "externalId", "userName", "active", "title"] {
        r.remove(gone);
    }
    let id = l.m.user_id.clone();
    r.insert("id".into(), json!(id));
    if let Some(ext) = l.scim.as_ref().and_then(|(_, e, _)| e.clone()) {
        r.insert("externalId".into(), json!(ext));
    }
    let user_name = match &l.scim {
        Some((name, _, _)) => name.clone(),
        None => l.username.clone().unwrap_or_else(|| l.email.clone()),
    };
    r.insert("userName".into(), json!(user_name));
    // What the directory sent, with Roster's current values where they are Roster's: a member it
    // never wrote shows their name; one it wrote shows `displayName` only if it sent one (the
    // current full name when this tenant manages the identity), and `active` (the member's status
    // now) only if it sent one: a directory that removed `active` left the status to Roster.
    let managed = l.home_tenant_id.as_deref() == Some(tenant);
    if l.scim.is_none() || (sent_display_name && managed) {
        r.insert("displayName".into(), json!(l.full_name));
    }
    if l.scim.is_none() {
        r.insert("name".into(), json!({"formatted": l.full_name}));
    }
    if l.scim.is_none() || sent_active {
        r.insert("active".into(), json!(l.m.status == MemberStatus::Active.as_str()));
    }
    if let Some(title) = &l.m.job_title {
        r.insert("title".into(), json!(title));
    }
    if !provisional(&l.email) {
        let mut emails: Vec<Value> = r.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
        let has = emails
            .iter()
            .any(|e| e.get("value").and_then(Value::as_str).is_some_and(|v| v.eq_ignore_ascii_case(&l.email)));
        if !has {
            let slot = emails
                .iter()
                .position(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
                .or(if emails.is_empty() { None } else { Some(0) });
            match slot.and_then(|i| emails.get_mut(i)).and_then(Value::as_object_mut) {
                Some(e) => {
                    e.insert("value".into(), json!(l.email));
                }
                None => emails.push(json!({"value": l.email, "type": "work", "primary": true})),
            }
        }
        r.insert("emails".into(), Value::Array(emails));
    }
    let mut enterprise: Map<String, Value> = match r.remove(ENTERPRISE_USER) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    enterprise.remove("department");
    enterprise.remove("manager");
    if let Some(d) = &l.m.department {
        enterprise.insert("department".into(), json!(d));
    }
    if let Some(mgr) = &l.m.manager_id {
        enterprise.insert("manager".into(), json!({"value": mgr, "$ref": format!("{base}/Users/{mgr}")}));
    }
    let mut schemas = vec![json!(USER)];
    if !enterprise.is_empty() {
        schemas.push(json!(ENTERPRISE_USER));
        r.insert(ENTERPRISE_USER.into(), Value::Object(enterprise));
    }
    if !groups.is_empty() {
        let list: Vec<Value> = groups
            .iter()
            .map(|(gid, name)| json!({"value": gid, "$ref": format!("{base}/Groups/{gid}"), "display": name, "type": "direct"}))
            .collect();
        r.insert("groups".into(), Value::Array(list));
    }
    r.insert("schemas".into(), Value::Array(schemas));
    r.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": crate::domain::time::utc(l.m.created_at),
            "lastModified": crate::domain::time::utc(l.m.updated_at),
            "location": format!("{base}/Users/{id}"),
            "version": etag(l.m.version),
        }),
    );
    Value::Object(r)
}

// ---------------------------------------------------------------- from a resource

/// What a User resource asks of the member.
#[derive(Debug, Clone)]
struct Wanted {
    user_name: String,
    email: EmailAddress,
    /// The Roster username: `userName` when it is not an address.
    username: Option<String>,
    full_name: String,
    job_title: Option<String>,
    department: Option<String>,
    manager: Option<String>,
    /// `None`: not sent (a new member is active; an existing one keeps their status).
    active: Option<bool>,
    external_id: Option<String>,
    /// The resource as kept (no password, no service attributes).
    attributes: Value,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

const MAX_FIELD: usize = 200;

fn wanted(resource: &Value) -> Result<Wanted, ScimError> {
    let mut problems: Vec<String> = Vec::new();
    let user_name = text(resource, "userName").map(str::to_string);
    let Some(user_name) = user_name else {
        return Err(ScimError::invalid_value("userName is required"));
    };
    if user_name.chars().count() > 254 {
        problems.push("userName: must be at most 254 characters".into());
    }
    let name_is_address = user_name.contains('@');
    let mut username = None;
    if name_is_address {
        if EmailAddress::parse(&user_name).is_err() {
            problems.push(format!("userName: {user_name:?} contains '@' but is not a valid email address"));
        }
    } else {
        let lower = user_name.to_lowercase();
        let ok = (3..=64).contains(&lower.chars().count())
            && lower.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            username = Some(lower);
        } else {
            problems.push(format!(
                "userName: {user_name:?} must be an email address, or 3 to 64 characters of a-z, 0-9, '.', '_' or '-' (it becomes the member's username)"
            ));
        }
    }
    let emails: Vec<&Value> =
        resource.get("emails").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let chosen = emails
        .iter()
        .position(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.iter().position(|e| text(e, "type").is_some_and(|t| t.eq_ignore_ascii_case("work"))))
        .or(if emails.is_empty() { None } else { Some(0) });
    let email = match chosen {
        Some(i) => match text(emails[i], "value").map(EmailAddress::parse) {
            Some(Ok(e)) => Some(e),
            Some(Err(why)) => {
                problems.push(format!("emails[{i}].value: {why}"));
                None
            }
            None => {
                problems.push(format!("emails[{i}].value: is required"));
                None
            }
        },
        None if name_is_address => EmailAddress::parse(&user_name).ok(),
        None => {
            problems.push("emails: an email address is required when userName is not one".into());
            None
        }
    };
    let name = resource.get("name");
    let given_family =
        name.map(|n| [text(n, "givenName"), text(n, "familyName")].into_iter().flatten().collect::<Vec<_>>().join(" "));
    let full_name = text(resource, "displayName")
        .map(str::to_string)
        .or_else(|| name.and_then(|n| text(n, "formatted")).map(str::to_string))
        .or(given_family.filter(|s| !s.is_empty()))
        .unwrap_or_else(|| user_name.clone());
    let mut limited = |field: &str, v: Option<&str>| -> Option<String> {
        let v = v?;
        if v.chars().count() > MAX_FIELD {
            problems.push(format!("{field}: must be at most {MAX_FIELD} characters"));
        }
        Some(v.to_string())
    };
    let full_name = limited("displayName", Some(&full_name)).unwrap_or_default();
    let job_title = limited("title", text(resource, "title"));
    let enterprise = resource.get(ENTERPRISE_USER);
    let department = limited(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        enterprise.and_then(|e| text(e, "department")),
    );
    let manager = enterprise.and_then(|e| e.get("manager")).and_then(|mgr| match mgr {
        Value::String(s) => Some(s.trim().to_string()),
        other => text(other, "value").map(str::to_string),
    });
    let manager = manager.filter(|s| !s.is_empty());
    if let Some(mgr) = &manager
        && mgr.parse::<UserId>().is_err()
    {
        problems.push(format!("manager.value: {mgr:?} is not the id of a user here"));
    }
    let active = match resource.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            problems.push("active: must be true or false".into());
            None
        }
    };
    let external_id = text(resource, "externalId").map(str::to_string);
    if external_id.as_ref().is_some_and(|e| e.chars().count() > 1024) {
        problems.push("externalId: must be at most 1024 characters".into());
    }
    if !problems.is_empty() {
        return Err(ScimError::invalid_value(problems.join("; ")));
    }
    let mut attributes = resource.clone();
    if let Value::Object(map) = &mut attributes {
        for gone in ["password", "id", "meta", "groups", "schemas"] {
            map.remove(gone);
        }
    }
    let size = attributes.to_string().len();
    if size > 64 * 1024 {
        return Err(ScimError::invalid_value(format!(
            "the user's attributes take {size} bytes; at most 65536 are kept"
        )));
    }
    let email = email.ok_or_else(|| ScimError::invalid_value("emails: no usable email address"))?;
    Ok(Wanted {
        user_name,
        email,
        username,
        full_name,
        job_title,
        department,
        manager,
        active,
        external_id,
        attributes,
    })
}

fn owner_refused() -> ApiError {
    scim(ScimError {
        status: 403,
        scim_type: None,
        detail: "this member is an owner of the tenant; owners are managed in Roster, never by the directory".into(),
    })
}

fn not_found(id: &str) -> ApiError {
    scim(ScimError::not_found(format!("no user {id} in this tenant")))
}

/// A SCIM id as a user id, or 404.
fn user_id(id: &str) -> Result<String, ApiError> {
    id.parse::<UserId>().map(|u| u.as_text()).map_err(|_| not_found(id))
}

/// `userName` must be unique in the tenant: among what the directory wrote, and the usernames
/// and addresses of members it never wrote.
fn ensure_user_name_free(
    conn: &mut AnyConnection,
    tenant: &str,
    name: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let key = name.to_lowercase();
    let holder = su::scim_users
        .filter(su::tenant_id.eq(tenant))
        .filter(su::user_name_key.eq(&key))
        .select(su::user_id)
        .first::<String>(conn)
        .optional()?;
    let holder = match holder {
        Some(h) => Some(h),
        None => m::memberships
            .inner_join(u::users)
            .filter(m::tenant_id.eq(tenant))
            .filter(u::email.eq(&key).or(u::username.eq(&key)))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                su::scim_users.filter(su::tenant_id.eq(m::tenant_id)).filter(su::user_id.eq(m::user_id)),
            )))
            .select(m::user_id)
            .first::<String>(conn)
            .optional()?,
    };
    match holder {
        Some(h) if Some(h.as_str()) != except => {
            Err(scim(ScimError::uniqueness(format!("userName {name:?} is already taken by user {h} in this tenant"))))
        }
        _ => Ok(()),
    }
}

fn check_password(conn: &mut AnyConnection, tenant: &str, w: &Wanted, pw: &NewPassword) -> Result<(), ApiError> {
    let min: i32 = t::tenants.filter(t::id.eq(tenant)).select(t::password_min_length).first(conn)?;
    crate::domain::password::check_policy(pw.plain.expose_secret(), min, Some(w.email.as_str()), w.username.as_deref())
        .map_err(|why| scim(ScimError::invalid_value(format!("password: {}", why.join("; ")))))
}

#[derive(Insertable)]
#[diesel(table_name = crate::db::schema::scim_users)]
struct NewScimUser {
    tenant_id: String,
    user_id: String,
    user_name: String,
    user_name_key: String,
    external_id: Option<String>,
    attributes: String,
}

fn scim_row_values(tenant: &str, user: &str, w: &Wanted) -> NewScimUser {
    NewScimUser {
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
        user_name: w.user_name.clone(),
        user_name_key: w.user_name.to_lowercase(),
        external_id: w.external_id.clone(),
        attributes: w.attributes.to_string(),
    }
}

/// Turns a refusal of the member store into SCIM's words where SCIM has them.
fn as_scim(e: ApiError) -> ApiError {
    match e {
        ApiError::Validation(errors) => scim(ScimError::invalid_value(
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
        )),
        ApiError::Conflict { slug: "username-taken" | "email-taken" | "already-member", detail } => {
            scim(ScimError::uniqueness(detail))
        }
        other => other,
    }
}

/// Whether the directory has written this member (its role then comes from its groups).
pub(in crate::store) fn directory_managed(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
) -> Result<bool, ApiError> {
    Ok(su::scim_users.filter(su::tenant_id.eq(tenant)).filter(su::user_id.eq(user)).count().get_result::<i64>(conn)?
        > 0)
}

// ---------------------------------------------------------------- reads

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: &str, base: &str) -> Result<Value, ApiError> {
    let uid = user_id(id)?;
    resources(conn, &ctx.tenant_text(), &[uid], base)?.into_iter().next().ok_or_else(|| not_found(id))
}

/// What a list asks: a filter, an order, a page (`start_index` from 1).
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    pub start_index: i64,
    pub count: i64,
}

pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    q: &ListQuery,
    base: &str,
) -> Result<(i64, Vec<Value>), ApiError> {
    let tenant = ctx.tenant_text();
    let backend = conn.kind();
    let cond = q.filter.as_ref().map(|f| sql::translate(f, Over::Users, backend)).transpose().map_err(scim)?;
    // `userName eq "..."`: the few members it can name, found by index first.
    let named: Option<Vec<String>> = match q.filter.as_ref().and_then(sql::user_name_eq) {
        Some(name) => Some(named_by(conn, &tenant, name)?),
        None => None,
    };
    let build = || {
        let mut query = m::memberships.filter(m::tenant_id.eq(tenant.clone())).into_boxed();
        if let Some(ids) = &named {
            query = query.filter(among(m::user_id, ids));
        }
        if let Some(c) = &cond {
            query = query.filter(c.clone());
        }
        query
    };
    if named.as_ref().is_some_and(Vec::is_empty) {
        return Ok((0, Vec::new()));
    }
    if named.is_some() && q.sort_by.is_none() {
        // The few members a `userName eq` names: read them by key and order them here, so the
        // planner never walks the tenant in creation order to avoid a sort.
        // (Only the id is selected: with `created_at` too SQLite prefers walking the tenant's
        // creation-order index to looking the few ids up.)
        let ids: Vec<String> = build().select(m::user_id).load(conn)?;
        let mut found = resources(conn, &tenant, &ids, base)?;
        let key = |r: &Value| {
            (r.pointer("/meta/created").and_then(Value::as_str).unwrap_or("").to_string(), r["id"].to_string())
        };
        found.sort_by_key(key);
        let total = found.len() as i64;
        let page = found.into_iter().skip((q.start_index - 1) as usize).take(q.count as usize).collect();
        return Ok((total, page));
    }
    let total: i64 = build().count().get_result(conn)?;
    if q.count == 0 || q.start_index > total {
        return Ok((total, Vec::new()));
    }
    let mut query = build().select(m::user_id);
    if let Some(path) = &q.sort_by {
        let expr = sql::sort_expr(path, Over::Users, backend).map_err(scim)?;
        let dir = if q.descending { "DESC" } else { "ASC" };
        let nulls = if backend == BackendKind::Postgres {
            if q.descending { " NULLS LAST" } else { " NULLS FIRST" }
        } else {
            ""
        };
        query = query.order(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
            "{expr} {dir}{nulls}, memberships.created_at, memberships.user_id"
        )));
    } else {
        query = query.order((m::created_at, m::user_id));
    }
    let ids: Vec<String> = query.offset(q.start_index - 1).limit(q.count).load(conn)?;
    Ok((total, resources(conn, &tenant, &ids, base)?))
}

/// The members a `userName` can name: the one the directory gave it, or one it never wrote
/// whose username or address it is.
fn named_by(conn: &mut AnyConnection, tenant: &str, name: &str) -> Result<Vec<String>, ApiError> {
    let key = name.to_lowercase();
    let mut ids: Vec<String> = su::scim_users
        .filter(su::tenant_id.eq(tenant))
        .filter(su::user_name_key.eq(&key))
        .select(su::user_id)
        .load(conn)?;
    let by_identity: Vec<String> =
        u::users.filter(u::email.eq(&key).or(u::username.eq(&key))).select(u::id).load(conn)?;
    ids.extend(by_identity);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

// ---------------------------------------------------------------- writes

/// `POST /Users`: a new member (a new identity, or a membership for an identity another tenant
/// has, which is neither changed nor shown and gets a notice).
pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    resource: &Value,
    password: Option<NewPassword>,
    mailer: &Mailer<'_>,
    base: &str,
) -> Result<Value, ApiError> {
    let w = wanted(resource).map_err(scim)?;
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        ensure_user_name_free(conn, &tenant, &w.user_name, None)?;
        let existing: Option<(String, String, String)> = u::users
            .filter(u::email.eq(w.email.as_str()))
            .select((u::id, u::email, u::full_name))
            .first(conn)
            .optional()?;
        let (role, regions) = roles::defaults(conn, &tenant)?;
        let regions: Vec<RegionId> = regions.iter().map(|r| parse_stored(r)).collect();
        let status = if w.active.unwrap_or(true) { MemberStatus::Active } else { MemberStatus::Disabled };
        if status.takes_seat() {
            members::ensure_seat(conn, &tenant)?;
        }
        let joining = Joining {
            tenant: tenant.clone(),
            role,
            status,
            job_title: w.job_title.clone(),
            department: w.department.clone(),
            section: None,
            manager_id: w.manager.clone(),
        };
        crate::store::placement::ensure_for_member(conn, &tenant, w.department.as_deref(), None).map_err(as_scim)?;
        let tenant_name: String = t::tenants.filter(t::id.eq(&tenant)).select(t::name).first(conn)?;
        let user_id = match existing {
            Some((id, email, full_name)) => {
                let here = m::memberships
                    .filter(m::tenant_id.eq(&tenant))
                    .filter(m::user_id.eq(&id))
                    .count()
                    .get_result::<i64>(conn)?;
                if here > 0 {
                    return Err(scim(ScimError::uniqueness(format!(
                        "{} is already a member of this tenant (user {id})",
                        w.email
                    ))));
                }
                if let Some(mgr) = &w.manager {
                    members::ensure_manager(conn, &tenant, &id, mgr).map_err(as_scim)?;
                }
                let person = Person {
                    user_id: &id,
                    email: &email,
                    username: None,
                    full_name: &full_name,
                    sign_in: SignIn::Existing,
                };
                let (_, membership) = new_member_rows(person, joining, now());
                diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
                let notice = Notice::AddedToTenant {
                    full_name: full_name.clone(),
                    tenant: tenant_name.clone(),
                    role: role.as_str().to_string(),
                    link: format!("{}/login", mailer.app_url),
                };
                outbox::enqueue(conn, mailer.master, Some(&tenant), &email, &notice)?;
                id
            }
            None => {
                if let Some(name) = &w.username {
                    members::ensure_username_free(conn, name, None).map_err(as_scim)?;
                }
                if let Some(pw) = &password {
                    check_password(conn, &tenant, &w, pw)?;
                }
                let id = UserId::new().as_text();
                if let Some(mgr) = &w.manager {
                    members::ensure_manager(conn, &tenant, &id, mgr).map_err(as_scim)?;
                }
                let sign_in = match &password {
                    Some(pw) => SignIn::Password(pw.hash.clone()),
                    None => SignIn::NoPasswordYet,
                };
                let person = Person {
                    user_id: &id,
                    email: w.email.as_str(),
                    username: w.username.as_deref(),
                    full_name: &w.full_name,
                    sign_in,
                };
                let (user, membership) = new_member_rows(person, joining, now());
                let user = user.ok_or_else(|| ApiError::internal("a new member without an identity"))?;
                diesel::insert_into(u::users).values(&user).execute(conn)?;
                if password.is_none() {
                    let creator = match ctx.actor().audit_identity() {
                        (_, _, Some(name)) => format!("{tenant_name}'s directory ({name})"),
                        _ => format!("{tenant_name}'s directory"),
                    };
                    crate::store::resets::issue_set_password(
                        conn,
                        mailer.master,
                        &user,
                        (&tenant, &tenant_name),
                        &creator,
                        mailer.app_url,
                    )?;
                }
                diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
                id
            }
        };
        members::insert_regions(conn, &tenant, &user_id, &regions)?;
        diesel::insert_into(su::scim_users).values(scim_row_values(&tenant, &user_id, &w)).execute(conn)?;
        let after = members::event_object(conn, &tenant, &user_id)?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.created",
                target_type: "member",
                target_id: Some(user_id.clone()),
                before: None,
                after,
            },
        )?;
        resources(conn, &tenant, &[user_id], base)?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("user vanished"))
    })
}

/// `PUT /Users/{id}`: the member becomes what the resource says (attributes it leaves out are
/// cleared, as RFC 7644 section 3.5.1 has it).
pub fn replace(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    resource: &Value,
    password: Option<NewPassword>,
    if_match: Option<i32>,
    base: &str,
) -> Result<Value, ApiError> {
    let w = wanted(resource).map_err(scim)?;
    let uid = user_id(id)?;
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = load(conn, &ctx.tenant_text(), std::slice::from_ref(&uid))?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(id))?;
        write(conn, ctx, before, w, password, if_match, base)
    })
}

/// `PATCH /Users/{id}`: the operations applied to the member as SCIM shows them, all or none.
pub fn patch(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    ops: &[crate::scim::patch::PatchOp],
    password: Option<NewPassword>,
    if_match: Option<i32>,
    base: &str,
) -> Result<Value, ApiError> {
    let uid = user_id(id)?;
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let mut current = resources(conn, &tenant, std::slice::from_ref(&uid), base)?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(id))?;
        crate::scim::patch::apply(crate::scim::schema::ResourceKind::User, &mut current, ops).map_err(scim)?;
        let w = wanted(&current).map_err(scim)?;
        let before =
            load(conn, &tenant, std::slice::from_ref(&uid))?.into_iter().next().ok_or_else(|| not_found(id))?;
        write(conn, ctx, before, w, password, if_match, base)
    })
}

/// Writes what a resource asks of an existing member (replace and patch).
fn write(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    before: Loaded,
    w: Wanted,
    password: Option<NewPassword>,
    if_match: Option<i32>,
    base: &str,
) -> Result<Value, ApiError> {
    let tenant = ctx.tenant_text();
    let uid = before.m.user_id.clone();
    if before.m.role == Role::Owner.as_str() {
        return Err(owner_refused());
    }
    if let Some(v) = if_match
        && v != before.m.version
    {
        return Err(scim(ScimError {
            status: 412,
            scim_type: None,
            detail: format!("the user changed since you read it (If-Match version {v}, now {})", before.m.version),
        }));
    }
    ensure_user_name_free(conn, &tenant, &w.user_name, Some(&uid))?;
    let audit_before = members::event_object(conn, &tenant, &uid)?;
    let at = now();
    let managed = members::is_managed(conn, &tenant, &uid)?;
    if managed {
        if w.email.as_str() != before.email {
            let taken = u::users
                .filter(u::email.eq(w.email.as_str()))
                .filter(u::id.ne(&uid))
                .count()
                .get_result::<i64>(conn)?;
            if taken > 0 {
                return Err(scim(ScimError::uniqueness(format!("{} is already used by another account", w.email))));
            }
        }
        if let Some(name) = &w.username
            && before.username.as_deref() != Some(name)
        {
            members::ensure_username_free(conn, name, Some(&uid)).map_err(as_scim)?;
        }
        // An address as userName leaves the username as it was.
        let username = if w.username.is_some() { w.username.clone() } else { before.username.clone() };
        if w.email.as_str() != before.email || username != before.username || w.full_name != before.full_name {
            diesel::update(u::users.filter(u::id.eq(&uid)))
                .set((
                    u::email.eq(w.email.as_str()),
                    u::username.eq(&username),
                    u::full_name.eq(&w.full_name),
                    u::updated_at.eq(at),
                ))
                .execute(conn)?;
            diesel::update(m::memberships.filter(m::user_id.eq(&uid)).filter(m::tenant_id.eq(&tenant)))
                .set((
                    m::search_text.eq(crate::db::models::search_text(
                        &w.full_name,
                        username.as_deref(),
                        w.email.as_str(),
                    )),
                    m::sort_name.eq(w.full_name.to_lowercase()),
                    m::sort_email.eq(w.email.as_str()),
                ))
                .execute(conn)?;
        }
        if let Some(pw) = &password {
            check_password(conn, &tenant, &w, pw)?;
            diesel::update(u::users.filter(u::id.eq(&uid)))
                .set((
                    u::password_hash.eq(Some(pw.hash.clone())),
                    u::must_change_password.eq(false),
                    u::failed_logins.eq(0),
                    u::locked_until.eq(None::<chrono::NaiveDateTime>),
                    u::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
    }
    if let Some(mgr) = &w.manager
        && before.m.manager_id.as_deref() != Some(mgr)
    {
        members::ensure_manager(conn, &tenant, &uid, mgr).map_err(as_scim)?;
    }
    if w.department != before.m.department {
        crate::store::placement::ensure_for_member(conn, &tenant, w.department.as_deref(), None).map_err(as_scim)?;
    }
    let section = if w.department == before.m.department { before.m.section.clone() } else { None };
    let old_status = MemberStatus::parse(&before.m.status).unwrap_or(MemberStatus::Disabled);
    let status = match (w.active, old_status) {
        (None, current) => current,
        (Some(true), _) => MemberStatus::Active,
        (Some(false), MemberStatus::Active) => MemberStatus::Disabled,
        (Some(false), other) => other,
    };
    let status_changed = status != old_status;
    if status_changed && status == MemberStatus::Active && !old_status.takes_seat() {
        members::ensure_seat(conn, &tenant)?;
    }
    diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid)))
        .set((
            m::job_title.eq(&w.job_title),
            m::department.eq(&w.department),
            m::section.eq(section),
            m::manager_id.eq(&w.manager),
            m::status.eq(status.as_str()),
            m::version.eq(m::version + 1),
            m::auth_version.eq(m::auth_version + i32::from(status_changed)),
            m::updated_at.eq(at),
        ))
        .execute(conn)?;
    let adopted = before.scim.is_none();
    if adopted {
        diesel::insert_into(su::scim_users).values(scim_row_values(&tenant, &uid, &w)).execute(conn)?;
    } else {
        diesel::update(su::scim_users.filter(su::tenant_id.eq(&tenant)).filter(su::user_id.eq(&uid)))
            .set((
                su::user_name.eq(&w.user_name),
                su::user_name_key.eq(w.user_name.to_lowercase()),
                su::external_id.eq(&w.external_id),
                su::attributes.eq(w.attributes.to_string()),
            ))
            .execute(conn)?;
    }
    if status_changed && status != MemberStatus::Active {
        sessions::end_all(conn, parse_stored(&uid), Sessions::InTenant(&tenant), EndReason::MemberDisabled)?;
    }
    let audit_after = members::event_object(conn, &tenant, &uid)?;
    audit::record(
        conn,
        ctx,
        AuditEntry {
            action: "member.updated",
            target_type: "member",
            target_id: Some(uid.clone()),
            before: audit_before,
            after: audit_after.clone(),
        },
    )?;
    if status_changed {
        let action = if status == MemberStatus::Active { "member.enabled" } else { "member.disabled" };
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action,
                target_type: "member",
                target_id: Some(uid.clone()),
                before: None,
                after: audit_after,
            },
        )?;
    }
    if adopted {
        // Now directory-managed: its role comes from its groups (or the defaults).
        roles::apply(conn, ctx, std::slice::from_ref(&uid))?;
    }
    resources(conn, &tenant, &[uid], base)?.into_iter().next().ok_or_else(|| ApiError::internal("user vanished"))
}

/// `DELETE /Users/{id}`: the membership goes (the identity with its last one).
pub fn delete(conn: &mut AnyConnection, ctx: &TenantContext, id: &str, if_match: Option<i32>) -> Result<(), ApiError> {
    let uid = user_id(id)?;
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = members::load_record(conn, &tenant, &uid)?.ok_or_else(|| not_found(id))?;
        if before.role() == Role::Owner {
            return Err(owner_refused());
        }
        if let Some(v) = if_match
            && v != before.membership.version
        {
            return Err(scim(ScimError {
                status: 412,
                scim_type: None,
                detail: format!(
                    "the user changed since you read it (If-Match version {v}, now {})",
                    before.membership.version
                ),
            }));
        }
        sessions::end_all(conn, parse_stored(&uid), Sessions::InTenant(&tenant), EndReason::MemberDisabled)?;
        members::remove_membership(conn, &tenant, &uid)?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.deleted",
                target_type: "member",
                target_id: Some(uid.clone()),
                before: Some(before.event_object()),
                after: None,
            },
        )
    })
}

/// The password a PATCH sets, if any (so it is hashed before the transaction).
pub fn password_in_patch(ops: &[crate::scim::patch::PatchOp]) -> Option<String> {
    ops.iter().rev().find_map(|op| {
        if op.op == crate::scim::patch::PatchOpKind::Remove {
            return None;
        }
        match &op.path {
            Some(p) if p.attr.name.eq_ignore_ascii_case("password") => op.value.as_ref()?.as_str().map(str::to_string),
            Some(_) => None,
            None => op
                .value
                .as_ref()?
                .as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("password"))?
                .1
                .as_str()
                .map(str::to_string),
        }
    })
}
