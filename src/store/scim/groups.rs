//! Groups: a tenant resource that the directory writes over SCIM and the REST API reads. A
//! group's members are rows of `group_members`, read and changed in chunks and by id, so a group
//! of 10,000 members is never loaded as 10,000 member records; its role mapping (an owner's, in
//! the REST API) gives its directory-managed members their role (see `roles`).

use std::fmt::Write as _;

use diesel::prelude::*;
use serde_json::{Value, json};

use super::roles;
use super::sql::{self, Over};
use super::users::scim;
use crate::auth::TenantContext;
use crate::db::AnyConnection;
use crate::db::among::among;
use crate::db::schema::{
    group_members::dsl as gm, group_role_mappings::dsl as grm, group_role_regions::dsl as grr, groups::dsl as g,
    memberships::dsl as m,
};
use crate::domain::{UserId, now};
use crate::error::ApiError;
use crate::scim::error::ScimError;
use crate::scim::patch::GroupChange;
use crate::scim::schema::URN_GROUP as GROUP;
use crate::store::audit::{self, AuditEntry};

/// Members read or written per statement.
const CHUNK: i64 = 1000;

#[derive(Debug, Clone, Queryable)]
pub struct GroupRow {
    pub tenant_id: String,
    pub id: String,
    pub display_name: String,
    pub display_name_key: String,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

fn not_found(id: &str) -> ApiError {
    scim(ScimError::not_found(format!("no group {id} in this tenant")))
}

fn find(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Option<GroupRow>, ApiError> {
    if id.parse::<uuid::Uuid>().is_err() {
        return Ok(None);
    }
    Ok(g::groups.filter(g::tenant_id.eq(tenant)).filter(g::id.eq(id)).first::<GroupRow>(conn).optional()?)
}

/// The group as SCIM shows it, as JSON text, members written in chunks (`with_members`).
fn render(conn: &mut AnyConnection, row: &GroupRow, with_members: bool, base: &str) -> Result<Value, ApiError> {
    let mut members = String::from("[");
    if with_members {
        let mut after = String::new();
        let mut first = true;
        loop {
            let chunk: Vec<String> = gm::group_members
                .filter(gm::tenant_id.eq(&row.tenant_id))
                .filter(gm::group_id.eq(&row.id))
                .filter(gm::user_id.gt(&after))
                .select(gm::user_id)
                .order(gm::user_id)
                .limit(CHUNK)
                .load(conn)?;
            let Some(last) = chunk.last() else { break };
            after = last.clone();
            for id in &chunk {
                if !first {
                    members.push(',');
                }
                first = false;
                let item = json!({"value": id, "$ref": format!("{base}/Users/{id}"), "type": "User"});
                let _ = write!(members, "{item}");
            }
            if (chunk.len() as i64) < CHUNK {
                break;
            }
        }
    }
    members.push(']');
    let mut out = json!({
        "schemas": [GROUP],
        "id": row.id,
        "displayName": row.display_name,
        "meta": {
            "resourceType": "Group",
            "created": crate::domain::time::utc(row.created_at),
            "lastModified": crate::domain::time::utc(row.updated_at),
            "location": format!("{base}/Groups/{}", row.id),
            "version": super::users::etag(row.version),
        },
    });
    if let Some(ext) = &row.external_id {
        out["externalId"] = json!(ext);
    }
    if with_members {
        let list: Value = serde_json::from_str(&members).map_err(|e| ApiError::internal(e.to_string()))?;
        if list.as_array().is_some_and(|a| !a.is_empty()) {
            out["members"] = list;
        }
    }
    Ok(out)
}

pub fn get(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    with_members: bool,
    base: &str,
) -> Result<Value, ApiError> {
    let row = find(conn, &ctx.tenant_text(), id)?.ok_or_else(|| not_found(id))?;
    render(conn, &row, with_members, base)
}

pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    q: &super::users::ListQuery,
    with_members: bool,
    base: &str,
) -> Result<(i64, Vec<Value>), ApiError> {
    let tenant = ctx.tenant_text();
    let backend = conn.kind();
    let cond = q.filter.as_ref().map(|f| sql::translate(f, Over::Groups, backend)).transpose().map_err(scim)?;
    let build = || {
        let mut query = g::groups.filter(g::tenant_id.eq(tenant.clone())).into_boxed();
        if let Some(c) = &cond {
            query = query.filter(c.clone());
        }
        query
    };
    let total: i64 = build().count().get_result(conn)?;
    if q.count == 0 || q.start_index > total {
        return Ok((total, Vec::new()));
    }
    let mut query = build();
    if let Some(path) = &q.sort_by {
        let expr = sql::sort_expr(path, Over::Groups, backend).map_err(scim)?;
        let dir = if q.descending { "DESC" } else { "ASC" };
        query = query
            .order(diesel::dsl::sql::<diesel::sql_types::Text>(&format!("{expr} {dir}, groups.created_at, groups.id")));
    } else {
        query = query.order((g::created_at, g::id));
    }
    let rows: Vec<GroupRow> = query.offset(q.start_index - 1).limit(q.count).load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(render(conn, row, with_members, base)?);
    }
    Ok((total, out))
}

/// What a Group resource (POST, PUT) asks.
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

pub fn input(resource: &Value) -> Result<GroupInput, ScimError> {
    let display_name = resource
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    if display_name.chars().count() > 256 {
        return Err(ScimError::invalid_value("displayName: must be at most 256 characters"));
    }
    let external_id = resource.get("externalId").and_then(Value::as_str).map(str::to_string);
    let members = match resource.get("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.get("value").and_then(Value::as_str) {
                    Some(v) => out.push(v.to_string()),
                    None => return Err(ScimError::invalid_value(format!("members[{i}].value is required"))),
                }
            }
            out
        }
        Some(_) => return Err(ScimError::invalid_value("members: must be an array of {\"value\": user id}")),
    };
    Ok(GroupInput { display_name: display_name.to_string(), external_id, members })
}

fn ensure_name_free(conn: &mut AnyConnection, tenant: &str, name: &str, except: Option<&str>) -> Result<(), ApiError> {
    let holder = g::groups
        .filter(g::tenant_id.eq(tenant))
        .filter(g::display_name_key.eq(name.to_lowercase()))
        .select(g::id)
        .first::<String>(conn)
        .optional()?;
    match holder {
        Some(h) if Some(h.as_str()) != except => {
            Err(scim(ScimError::uniqueness(format!("a group named {name:?} already exists in this tenant ({h})"))))
        }
        _ => Ok(()),
    }
}

/// Of `ids`, the members of this tenant (unknown ids are left out, as Okta and Entra expect).
fn existing_members(conn: &mut AnyConnection, tenant: &str, ids: &[String]) -> Result<Vec<String>, ApiError> {
    let mut valid: Vec<String> = ids.iter().filter(|id| id.parse::<UserId>().is_ok()).cloned().collect();
    valid.sort();
    valid.dedup();
    let mut out = Vec::new();
    for chunk in valid.chunks(CHUNK as usize) {
        let found: Vec<String> = m::memberships
            .filter(m::tenant_id.eq(tenant))
            .filter(among(m::user_id, chunk))
            .select(m::user_id)
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
}

fn add_members(conn: &mut AnyConnection, tenant: &str, group: &str, ids: &[String]) -> Result<Vec<String>, ApiError> {
    let members = existing_members(conn, tenant, ids)?;
    let mut added = Vec::new();
    for chunk in members.chunks(CHUNK as usize) {
        let already: Vec<String> = gm::group_members
            .filter(gm::tenant_id.eq(tenant))
            .filter(gm::group_id.eq(group))
            .filter(among(gm::user_id, chunk))
            .select(gm::user_id)
            .load(conn)?;
        let rows: Vec<_> = chunk
            .iter()
            .filter(|id| !already.contains(id))
            .map(|id| (gm::tenant_id.eq(tenant), gm::group_id.eq(group), gm::user_id.eq(id)))
            .collect();
        if !rows.is_empty() {
            crate::db::on_backend!(&mut *conn, |c| diesel::insert_into(gm::group_members).values(&rows).execute(c))?;
        }
        added.extend(chunk.iter().filter(|id| !already.contains(id)).cloned());
    }
    Ok(added)
}

fn remove_members(
    conn: &mut AnyConnection,
    tenant: &str,
    group: &str,
    ids: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut removed = Vec::new();
    for chunk in ids.chunks(CHUNK as usize) {
        let there: Vec<String> = gm::group_members
            .filter(gm::tenant_id.eq(tenant))
            .filter(gm::group_id.eq(group))
            .filter(among(gm::user_id, chunk))
            .select(gm::user_id)
            .load(conn)?;
        if !there.is_empty() {
            diesel::delete(
                gm::group_members
                    .filter(gm::tenant_id.eq(tenant))
                    .filter(gm::group_id.eq(group))
                    .filter(among(gm::user_id, &there)),
            )
            .execute(conn)?;
        }
        removed.extend(there);
    }
    Ok(removed)
}

fn all_member_ids(conn: &mut AnyConnection, tenant: &str, group: &str) -> Result<Vec<String>, ApiError> {
    Ok(gm::group_members
        .filter(gm::tenant_id.eq(tenant))
        .filter(gm::group_id.eq(group))
        .select(gm::user_id)
        .load(conn)?)
}

fn is_mapped(conn: &mut AnyConnection, tenant: &str, group: &str) -> Result<bool, ApiError> {
    Ok(grm::group_role_mappings
        .filter(grm::tenant_id.eq(tenant))
        .filter(grm::group_id.eq(group))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

fn audit_group(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    action: &str,
    id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    audit::record(
        conn,
        ctx,
        AuditEntry { action, target_type: "group", target_id: Some(id.to_string()), before, after },
    )
}

fn summary(row: &GroupRow) -> Value {
    json!({"id": row.id, "display_name": row.display_name, "external_id": row.external_id, "version": row.version})
}

pub fn create(conn: &mut AnyConnection, ctx: &TenantContext, input: GroupInput, base: &str) -> Result<Value, ApiError> {
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        ensure_name_free(conn, &tenant, &input.display_name, None)?;
        let id = uuid::Uuid::now_v7().to_string();
        let at = now();
        diesel::insert_into(g::groups)
            .values((
                g::tenant_id.eq(&tenant),
                g::id.eq(&id),
                g::display_name.eq(&input.display_name),
                g::display_name_key.eq(input.display_name.to_lowercase()),
                g::external_id.eq(&input.external_id),
                g::version.eq(1),
                g::created_at.eq(at),
                g::updated_at.eq(at),
            ))
            .execute(conn)?;
        let added = add_members(conn, &tenant, &id, &input.members)?;
        let row = find(conn, &tenant, &id)?.ok_or_else(|| ApiError::internal("group vanished"))?;
        let mut after = summary(&row);
        after["members_added"] = json!(added.len());
        audit_group(conn, ctx, "group.created", &id, None, Some(after))?;
        render(conn, &row, true, base)
    })
}

fn check_if_match(row: &GroupRow, if_match: Option<i32>) -> Result<(), ApiError> {
    match if_match {
        Some(v) if v != row.version => Err(scim(ScimError {
            status: 412,
            scim_type: None,
            detail: format!("the group changed since you read it (If-Match version {v}, now {})", row.version),
        })),
        _ => Ok(()),
    }
}

/// Applies changes in order; returns the group's members whose groups changed.
fn change(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    row: &GroupRow,
    changes: Vec<GroupChange>,
) -> Result<(), ApiError> {
    let tenant = ctx.tenant_text();
    let group = row.id.clone();
    let mut touched: Vec<String> = Vec::new();
    let (mut added, mut removed) = (0usize, 0usize);
    let mut name = row.display_name.clone();
    let mut external = row.external_id.clone();
    for c in changes {
        match c {
            GroupChange::DisplayName(n) => {
                let n = n.trim().to_string();
                if n.is_empty() {
                    return Err(scim(ScimError::invalid_value("displayName must not be empty")));
                }
                ensure_name_free(conn, &tenant, &n, Some(&group))?;
                name = n;
            }
            GroupChange::ExternalId(e) => external = e,
            GroupChange::AddMembers(ids) => {
                let a = add_members(conn, &tenant, &group, &ids)?;
                added += a.len();
                touched.extend(a);
            }
            GroupChange::RemoveMembers(ids) => {
                let r = remove_members(conn, &tenant, &group, &ids)?;
                removed += r.len();
                touched.extend(r);
            }
            GroupChange::RemoveAllMembers => {
                let all = all_member_ids(conn, &tenant, &group)?;
                diesel::delete(gm::group_members.filter(gm::tenant_id.eq(&tenant)).filter(gm::group_id.eq(&group)))
                    .execute(conn)?;
                removed += all.len();
                touched.extend(all);
            }
            GroupChange::ReplaceMembers(ids) => {
                let mut keep = existing_members(conn, &tenant, &ids)?;
                keep.sort();
                let current = all_member_ids(conn, &tenant, &group)?;
                let gone: Vec<String> = current.iter().filter(|c| keep.binary_search(c).is_err()).cloned().collect();
                let r = remove_members(conn, &tenant, &group, &gone)?;
                removed += r.len();
                touched.extend(r);
                let a = add_members(conn, &tenant, &group, &keep)?;
                added += a.len();
                touched.extend(a);
            }
        }
    }
    diesel::update(g::groups.filter(g::tenant_id.eq(&tenant)).filter(g::id.eq(&group)))
        .set((
            g::display_name.eq(&name),
            g::display_name_key.eq(name.to_lowercase()),
            g::external_id.eq(&external),
            g::version.eq(g::version + 1),
            g::updated_at.eq(now()),
        ))
        .execute(conn)?;
    let after_row = find(conn, &tenant, &group)?.ok_or_else(|| ApiError::internal("group vanished"))?;
    let mut after = summary(&after_row);
    after["members_added"] = json!(added);
    after["members_removed"] = json!(removed);
    audit_group(conn, ctx, "group.updated", &group, Some(summary(row)), Some(after))?;
    if !touched.is_empty() && is_mapped(conn, &tenant, &group)? {
        touched.sort();
        touched.dedup();
        roles::apply(conn, ctx, &touched)?;
    }
    Ok(())
}

pub fn replace(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    input: GroupInput,
    if_match: Option<i32>,
    base: &str,
) -> Result<Value, ApiError> {
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let row = find(conn, &tenant, id)?.ok_or_else(|| not_found(id))?;
        check_if_match(&row, if_match)?;
        let changes = vec![
            GroupChange::DisplayName(input.display_name),
            GroupChange::ExternalId(input.external_id),
            GroupChange::ReplaceMembers(input.members),
        ];
        change(conn, ctx, &row, changes)?;
        let row = find(conn, &tenant, id)?.ok_or_else(|| not_found(id))?;
        render(conn, &row, true, base)
    })
}

pub fn patch(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    changes: Vec<GroupChange>,
    if_match: Option<i32>,
    with_members: bool,
    base: &str,
) -> Result<Value, ApiError> {
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let row = find(conn, &tenant, id)?.ok_or_else(|| not_found(id))?;
        check_if_match(&row, if_match)?;
        change(conn, ctx, &row, changes)?;
        let row = find(conn, &tenant, id)?.ok_or_else(|| not_found(id))?;
        render(conn, &row, with_members, base)
    })
}

pub fn delete(conn: &mut AnyConnection, ctx: &TenantContext, id: &str, if_match: Option<i32>) -> Result<(), ApiError> {
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let row = find(conn, &tenant, id)?.ok_or_else(|| not_found(id))?;
        check_if_match(&row, if_match)?;
        let mapped = is_mapped(conn, &tenant, id)?;
        let former = if mapped { all_member_ids(conn, &tenant, id)? } else { Vec::new() };
        diesel::delete(grr::group_role_regions.filter(grr::tenant_id.eq(&tenant)).filter(grr::group_id.eq(id)))
            .execute(conn)?;
        diesel::delete(grm::group_role_mappings.filter(grm::tenant_id.eq(&tenant)).filter(grm::group_id.eq(id)))
            .execute(conn)?;
        diesel::delete(gm::group_members.filter(gm::tenant_id.eq(&tenant)).filter(gm::group_id.eq(id)))
            .execute(conn)?;
        diesel::delete(g::groups.filter(g::tenant_id.eq(&tenant)).filter(g::id.eq(id))).execute(conn)?;
        audit_group(conn, ctx, "group.deleted", id, Some(summary(&row)), None)?;
        if !former.is_empty() {
            roles::apply(conn, ctx, &former)?;
        }
        Ok(())
    })
}
