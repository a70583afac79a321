//! Departments and their sections: tenant resources that members' `department` and `section`
//! name. Naming a new one on a member creates it (`store::placement`); renaming one renames it
//! on every member; deleting one in use needs somewhere to move its members. Listed with the
//! number of members the caller can see in each.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::{members, placement};
use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::AnyConnection;
use crate::db::schema::{departments::dsl as d, memberships::dsl as m, sections::dsl as s};
use crate::domain::now;
use crate::error::ApiError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::departments)]
pub struct DepartmentRow {
    pub id: String,
    pub name: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::sections)]
pub struct SectionRow {
    pub id: String,
    pub department_id: String,
    pub name: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A section and how many members (of those the caller can see) are in it.
pub type Section = (SectionRow, i64);

/// A department with its sections and member counts (of the members the caller can see).
#[derive(Debug, Clone)]
pub struct Department {
    pub row: DepartmentRow,
    pub members: i64,
    pub sections: Vec<Section>,
}

fn not_found(what: &str) -> ApiError {
    ApiError::not_found(format!("{what} not found"))
}

/// Member counts per (department, section) among the members the caller can see.
fn counts(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<HashMap<(String, Option<String>), i64>, ApiError> {
    let rows = members::visible_departments(conn, ctx)?;
    let mut out: HashMap<(String, Option<String>), i64> = HashMap::new();
    for (dept, section) in rows {
        if let Some(dept) = dept {
            *out.entry((dept.clone(), None)).or_default() += 1;
            if section.is_some() {
                *out.entry((dept, section)).or_default() += 1;
            }
        }
    }
    Ok(out)
}

fn assemble(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    rows: Vec<DepartmentRow>,
) -> Result<Vec<Department>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut sections: HashMap<String, Vec<SectionRow>> = HashMap::new();
    for row in s::sections
        .filter(s::tenant_id.eq(ctx.tenant_text()))
        .filter(s::department_id.eq_any(&ids))
        .order((s::name, s::id))
        .select(SectionRow::as_select())
        .load(conn)?
    {
        sections.entry(row.department_id.clone()).or_default().push(row);
    }
    let counts = counts(conn, ctx)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let members = counts.get(&(row.name.clone(), None)).copied().unwrap_or(0);
            let sections = sections
                .remove(&row.id)
                .unwrap_or_default()
                .into_iter()
                .map(|sec| {
                    let n = counts.get(&(row.name.clone(), Some(sec.name.clone()))).copied().unwrap_or(0);
                    (sec, n)
                })
                .collect();
            Department { row, members, sections }
        })
        .collect())
}

/// Every department of the tenant, by name.
pub fn list(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<Vec<Department>, ApiError> {
    ctx.actor().require(TenantAction::ReadDepartments)?;
    let rows = d::departments
        .filter(d::tenant_id.eq(ctx.tenant_text()))
        .order((d::name, d::id))
        .select(DepartmentRow::as_select())
        .load(conn)?;
    assemble(conn, ctx, rows)
}

fn load(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<DepartmentRow, ApiError> {
    d::departments
        .filter(d::tenant_id.eq(ctx.tenant_text()))
        .filter(d::id.eq(id))
        .select(DepartmentRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found("department"))
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<Department, ApiError> {
    ctx.actor().require(TenantAction::ReadDepartments)?;
    let row = load(conn, ctx, id)?;
    assemble(conn, ctx, vec![row])?.pop().ok_or_else(|| not_found("department"))
}

fn name_taken(what: &str, name: &str) -> ApiError {
    ApiError::conflict("name-taken", format!("a {what} named {name:?} already exists here"))
}

/// Records `action` (`department.*` or `section.*`) on the department or section `id`; the
/// target type is the action's noun.
fn audit_department(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    action: &str,
    id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let target_type = if action.starts_with("section.") { "section" } else { "department" };
    audit::record(conn, ctx, AuditEntry { action, target_type, target_id: Some(id.into()), before, after })
}

pub fn create(conn: &mut AnyConnection, ctx: &TenantContext, name: &str) -> Result<Department, ApiError> {
    ctx.actor().require(TenantAction::ManageDepartments)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let taken = d::departments.filter(d::tenant_id.eq(&tenant)).filter(d::name.eq(name)).count();
        if taken.get_result::<i64>(conn)? > 0 {
            return Err(name_taken("department", name));
        }
        let id = placement::ensure_department(conn, &tenant, name)?;
        audit_department(conn, ctx, "department.created", &id, None, Some(json!({"name": name})))?;
        get(conn, ctx, &id)
    })
}

/// Renames a department, on every member too.
pub fn rename(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    name: &str,
    if_match: Option<i32>,
) -> Result<Department, ApiError> {
    ctx.actor().require(TenantAction::ManageDepartments)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("department", before.version, if_match)?;
        if before.name != name {
            let taken = d::departments.filter(d::tenant_id.eq(&tenant)).filter(d::name.eq(name)).count();
            if taken.get_result::<i64>(conn)? > 0 {
                return Err(name_taken("department", name));
            }
            diesel::update(d::departments.filter(d::tenant_id.eq(&tenant)).filter(d::id.eq(id)))
                .set((d::name.eq(name), d::version.eq(d::version + 1), d::updated_at.eq(now())))
                .execute(conn)?;
            let moved =
                diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::department.eq(&before.name)))
                    .set((m::department.eq(Some(name)), m::version.eq(m::version + 1), m::updated_at.eq(now())))
                    .execute(conn)?;
            audit_department(
                conn,
                ctx,
                "department.renamed",
                id,
                Some(json!({"name": before.name})),
                Some(json!({"name": name, "members_renamed": moved})),
            )?;
        }
        get(conn, ctx, id)
    })
}

fn in_use(what: &str, n: i64) -> ApiError {
    ApiError::conflict(
        "in-use",
        format!("{n} member(s) are in this {what}; move them first, or delete with ?reassign_to=<another {what}'s id>"),
    )
}

/// Deletes a department and its sections. Members in it move to `reassign_to` (leaving their
/// section) or, without it, the delete is refused while any member is in it.
pub fn delete(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    reassign_to: Option<&str>,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageDepartments)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("department", before.version, if_match)?;
        let here = m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::department.eq(&before.name));
        let n: i64 = here.count().get_result(conn)?;
        let mut moved_to = None;
        if n > 0 {
            let Some(target) = reassign_to else { return Err(in_use("department", n)) };
            if target == id {
                return Err(ApiError::invalid("reassign_to", "must be another department"));
            }
            let target = load(conn, ctx, target)
                .map_err(|_| ApiError::invalid("reassign_to", "is not a department of this tenant"))?;
            diesel::update(here)
                .set((
                    m::department.eq(Some(&target.name)),
                    m::section.eq(None::<String>),
                    m::version.eq(m::version + 1),
                    m::updated_at.eq(now()),
                ))
                .execute(conn)?;
            moved_to = Some(target.name);
        }
        diesel::delete(s::sections.filter(s::tenant_id.eq(&tenant)).filter(s::department_id.eq(id))).execute(conn)?;
        diesel::delete(d::departments.filter(d::tenant_id.eq(&tenant)).filter(d::id.eq(id))).execute(conn)?;
        audit_department(
            conn,
            ctx,
            "department.deleted",
            id,
            Some(json!({"name": before.name})),
            Some(json!({"members_moved": n, "moved_to": moved_to})),
        )
    })
}

fn load_section(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    department: &str,
    id: &str,
) -> Result<SectionRow, ApiError> {
    s::sections
        .filter(s::tenant_id.eq(ctx.tenant_text()))
        .filter(s::department_id.eq(department))
        .filter(s::id.eq(id))
        .select(SectionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found("section"))
}

/// One section of a department, with its member count.
pub fn get_section(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    department: &str,
    id: &str,
) -> Result<Section, ApiError> {
    ctx.actor().require(TenantAction::ReadDepartments)?;
    let dept = load(conn, ctx, department)?;
    let row = load_section(conn, ctx, department, id)?;
    let members = counts(conn, ctx)?.get(&(dept.name, Some(row.name.clone()))).copied().unwrap_or(0);
    Ok((row, members))
}

pub fn create_section(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    department: &str,
    name: &str,
) -> Result<Section, ApiError> {
    ctx.actor().require(TenantAction::ManageDepartments)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        load(conn, ctx, department)?;
        let taken = s::sections
            .filter(s::tenant_id.eq(&tenant))
            .filter(s::department_id.eq(department))
            .filter(s::name.eq(name))
            .count();
        if taken.get_result::<i64>(conn)? > 0 {
            return Err(name_taken("section", name));
        }
        let id = placement::ensure_section(conn, &tenant, department, name)?;
        audit_department(
            conn,
            ctx,
            "section.created",
            &id,
            None,
            Some(json!({"department_id": department, "name": name})),
        )?;
        get_section(conn, ctx, department, &id)
    })
}

pub fn rename_section(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    department: &str,
    id: &str,
    name: &str,
    if_match: Option<i32>,
) -> Result<Section, ApiError> {
    ctx.actor().require(TenantAction::ManageDepartments)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let dept = load(conn, ctx, department)?;
        let before = load_section(conn, ctx, department, id)?;
        super::check_version("section", before.version, if_match)?;
        if before.name != name {
            let taken = s::sections
                .filter(s::tenant_id.eq(&tenant))
                .filter(s::department_id.eq(department))
                .filter(s::name.eq(name))
                .count();
            if taken.get_result::<i64>(conn)? > 0 {
                return Err(name_taken("section", name));
            }
            diesel::update(s::sections.filter(s::tenant_id.eq(&tenant)).filter(s::id.eq(id)))
                .set((s::name.eq(name), s::version.eq(s::version + 1), s::updated_at.eq(now())))
                .execute(conn)?;
            let moved = diesel::update(
                m::memberships
                    .filter(m::tenant_id.eq(&tenant))
                    .filter(m::department.eq(&dept.name))
                    .filter(m::section.eq(&before.name)),
            )
            .set((m::section.eq(Some(name)), m::version.eq(m::version + 1), m::updated_at.eq(now())))
            .execute(conn)?;
            audit_department(
                conn,
                ctx,
                "section.renamed",
                id,
                Some(json!({"name": before.name})),
                Some(json!({"name": name, "members_renamed": moved})),
            )?;
        }
        get_section(conn, ctx, department, id)
    })
}

pub fn delete_section(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    department: &str,
    id: &str,
    reassign_to: Option<&str>,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageDepartments)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let dept = load(conn, ctx, department)?;
        let before = load_section(conn, ctx, department, id)?;
        super::check_version("section", before.version, if_match)?;
        let here = m::memberships
            .filter(m::tenant_id.eq(&tenant))
            .filter(m::department.eq(&dept.name))
            .filter(m::section.eq(&before.name));
        let n: i64 = here.count().get_result(conn)?;
        let mut moved_to = None;
        if n > 0 {
            let Some(target) = reassign_to else { return Err(in_use("section", n)) };
            if target == id {
                return Err(ApiError::invalid("reassign_to", "must be another section"));
            }
            let target = load_section(conn, ctx, department, target)
                .map_err(|_| ApiError::invalid("reassign_to", "is not a section of this department"))?;
            diesel::update(here)
                .set((m::section.eq(Some(&target.name)), m::version.eq(m::version + 1), m::updated_at.eq(now())))
                .execute(conn)?;
            moved_to = Some(target.name);
        }
        diesel::delete(s::sections.filter(s::tenant_id.eq(&tenant)).filter(s::id.eq(id))).execute(conn)?;
        audit_department(
            conn,
            ctx,
            "section.deleted",
            id,
            Some(json!({"name": before.name, "department_id": department})),
            Some(json!({"members_moved": n, "moved_to": moved_to})),
        )
    })
}
