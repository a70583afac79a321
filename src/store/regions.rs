//! Regions of one tenant, with optional parents (no cycles). Owners manage them; every
//! member can read them.

use diesel::prelude::*;
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::idempotency::{self, IdempotencyKey, Render, Replay};
use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::AnyConnection;
use crate::db::models::RegionRow;
use crate::db::schema::{membership_regions::dsl as mr, regions::dsl as r};
use crate::domain::{RegionId, now};
use crate::error::ApiError;

pub fn list(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<Vec<RegionRow>, ApiError> {
    ctx.actor().require(TenantAction::ReadTenant)?;
    Ok(r::regions
        .filter(r::tenant_id.eq(ctx.tenant_text()))
        .order((r::name, r::id))
        .select(RegionRow::as_select())
        .load(conn)?)
}

fn find(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Option<RegionRow>, ApiError> {
    Ok(r::regions
        .filter(r::tenant_id.eq(tenant))
        .filter(r::id.eq(id))
        .select(RegionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: RegionId) -> Result<RegionRow, ApiError> {
    ctx.actor().require(TenantAction::ReadTenant)?;
    find(conn, &ctx.tenant_text(), &id.as_text())?.ok_or_else(|| ApiError::not_found("region not found"))
}

fn ensure_parent(conn: &mut AnyConnection, tenant: &str, region: &str, parent: &str) -> Result<(), ApiError> {
    let mut current = Some(parent.to_string());
    while let Some(id) = current {
        if id == region {
            return Err(ApiError::invalid("parent_id", "a region cannot be inside itself or its own descendants"));
        }
        let row = find(conn, tenant, &id)?
            .ok_or_else(|| ApiError::invalid("parent_id", format!("region {parent} does not exist in this tenant")))?;
        current = row.parent_id;
    }
    Ok(())
}

fn name_free(conn: &mut AnyConnection, tenant: &str, name: &str, except: Option<&str>) -> Result<(), ApiError> {
    let holder = r::regions
        .filter(r::tenant_id.eq(tenant))
        .filter(r::name.eq(name))
        .select(r::id)
        .first::<String>(conn)
        .optional()?;
    match holder {
        Some(id) if Some(id.as_str()) != except => {
            Err(ApiError::conflict("region-name-taken", format!("a region named {name:?} already exists")))
        }
        _ => Ok(()),
    }
}

fn state(row: &RegionRow) -> serde_json::Value {
    json!({"name": row.name, "parent_id": row.parent_id})
}

pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    name: String,
    parent: Option<RegionId>,
    idem: Option<(&IdempotencyKey, Render<'_, RegionRow>)>,
) -> Result<Result<RegionRow, Replay>, ApiError> {
    ctx.actor().require(TenantAction::ManageTenant)?;
    let tenant = ctx.tenant_text();
    let actor = ctx.actor().user_id.as_text();
    super::tenant_write(conn, ctx, |conn| {
        if let Some(replay) = idem.map(|(key, _)| idempotency::find(conn, &tenant, &actor, key)).transpose()?.flatten()
        {
            return Ok(Err(replay));
        }
        name_free(conn, &tenant, &name, None)?;
        let id = RegionId::new().as_text();
        if let Some(p) = parent {
            ensure_parent(conn, &tenant, &id, &p.as_text())?;
        }
        let now = now();
        let row = RegionRow {
            id: id.clone(),
            tenant_id: tenant.clone(),
            name,
            parent_id: parent.map(|p| p.as_text()),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(r::regions).values(&row).execute(conn)?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "region.created",
                target_type: "region",
                target_id: Some(id),
                before: None,
                after: Some(state(&row)),
            },
        )?;
        if let Some((key, render)) = idem {
            idempotency::save(conn, &tenant, &actor, key, 201, &render(&row))?;
        }
        Ok(Ok(row))
    })
}

pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: RegionId,
    name: Option<String>,
    parent: Option<Option<RegionId>>,
    if_match: Option<i32>,
) -> Result<RegionRow, ApiError> {
    ctx.actor().require(TenantAction::ManageTenant)?;
    let tenant = ctx.tenant_text();
    let rid = id.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = find(conn, &tenant, &rid)?.ok_or_else(|| ApiError::not_found("region not found"))?;
        super::check_version("region", before.version, if_match)?;
        let mut after = before.clone();
        if let Some(n) = name {
            name_free(conn, &tenant, &n, Some(&rid))?;
            after.name = n;
        }
        if let Some(p) = parent {
            if let Some(p) = p {
                ensure_parent(conn, &tenant, &rid, &p.as_text())?;
            }
            after.parent_id = p.map(|p| p.as_text());
        }
        after.updated_at = now();
        after.version += 1;
        diesel::update(r::regions.filter(r::tenant_id.eq(&tenant)).filter(r::id.eq(&rid)))
            .set((
                r::name.eq(&after.name),
                r::parent_id.eq(&after.parent_id),
                r::version.eq(after.version),
                r::updated_at.eq(after.updated_at),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "region.updated",
                target_type: "region",
                target_id: Some(rid.clone()),
                before: Some(state(&before)),
                after: Some(state(&after)),
            },
        )?;
        Ok(after)
    })
}

pub fn delete(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: RegionId,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageTenant)?;
    let tenant = ctx.tenant_text();
    let rid = id.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = find(conn, &tenant, &rid)?.ok_or_else(|| ApiError::not_found("region not found"))?;
        super::check_version("region", before.version, if_match)?;
        let children = r::regions
            .filter(r::tenant_id.eq(&tenant))
            .filter(r::parent_id.eq(&rid))
            .count()
            .get_result::<i64>(conn)?;
        if children > 0 {
            return Err(ApiError::conflict(
                "region-in-use",
                format!("region {:?} has {children} sub-regions; move or delete them first", before.name),
            ));
        }
        let members = mr::membership_regions
            .filter(mr::tenant_id.eq(&tenant))
            .filter(mr::region_id.eq(&rid))
            .count()
            .get_result::<i64>(conn)?;
        if members > 0 {
            return Err(ApiError::conflict(
                "region-in-use",
                format!("region {:?} is assigned to {members} members; reassign them first", before.name),
            ));
        }
        diesel::delete(r::regions.filter(r::tenant_id.eq(&tenant)).filter(r::id.eq(&rid))).execute(conn)?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "region.deleted",
                target_type: "region",
                target_id: Some(rid.clone()),
                before: Some(state(&before)),
                after: None,
            },
        )?;
        Ok(())
    })
}
