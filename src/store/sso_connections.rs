//! SSO connections of one tenant (DESIGN.md section 13): create, list, read, change, delete.
//! Owners (and API keys with the owner role). The OIDC client secret is sealed with the master
//! key and never leaves; a SAML connection keeps the IdP's metadata as given. Protocol checks
//! (OIDC discovery, SAML metadata) happen in the handler before a write.

use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::audit::{self, AuditEntry};
use super::sso::{ConnectionRow, secret_context};
use crate::auth::TenantContext;
use crate::auth::master_key::MasterKey;
use crate::auth::policy::TenantAction;
use crate::db::AnyConnection;
use crate::db::schema::sso_connections::dsl as c;
use crate::domain::{RegionId, Role, now};
use crate::error::ApiError;

/// Just-in-time membership: whether a person the IdP vouches for who is not a member yet becomes
/// one, with which role (operator or viewer) and regions.
#[derive(Debug, Clone)]
pub struct JustInTime {
    pub enabled: bool,
    pub role: Role,
    pub regions: Vec<RegionId>,
}

/// A connection to create: its protocol's settings as JSON, and the OIDC client secret.
pub struct NewConnection {
    pub protocol: &'static str,
    pub name: String,
    pub enabled: bool,
    pub settings: String,
    pub secret: Option<SecretString>,
    pub jit: JustInTime,
}

/// New protocol settings: OIDC fields to replace, or a whole new SAML settings document.
pub enum SettingsChange {
    Oidc { issuer: Option<String>, client_id: Option<String>, scopes: Option<Vec<String>> },
    Saml(crate::sso::SamlSettings),
}

/// Changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct ConnectionChanges {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub settings: Option<SettingsChange>,
    pub secret: Option<SecretString>,
    pub jit: Option<JustInTime>,
}

fn regions_text(regions: &[RegionId]) -> String {
    Value::from(regions.iter().map(|r| r.as_text()).collect::<Vec<_>>()).to_string()
}

/// What the audit log keeps of a connection (never the secret).
fn state(row: &ConnectionRow) -> Value {
    let settings: Value = serde_json::from_str(&row.settings).unwrap_or(Value::Null);
    // The metadata document is long and adds nothing the entity id and URL do not say.
    let settings = match settings {
        Value::Object(mut map) => {
            map.remove("idp_metadata_xml");
            Value::Object(map)
        }
        other => other,
    };
    json!({
        "protocol": row.protocol, "name": row.name, "enabled": row.enabled, "settings": settings,
        "client_secret_set": row.sealed_secret.is_some(),
        "just_in_time": {"enabled": row.jit_enabled, "role": row.jit_role, "region_ids": regions_of(row)},
    })
}

/// The region ids a connection gives just-in-time members.
pub fn regions_of(row: &ConnectionRow) -> Vec<String> {
    serde_json::from_str(&row.jit_regions).unwrap_or_default()
}

fn not_found() -> ApiError {
    ApiError::not_found("SSO connection not found")
}

fn load(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<ConnectionRow, ApiError> {
    c::sso_connections
        .filter(c::tenant_id.eq(ctx.tenant_text()))
        .filter(c::id.eq(id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)
}

fn audit_change(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    action: &str,
    id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    let entry = AuditEntry { action, target_type: "sso_connection", target_id: Some(id.to_string()), before, after };
    audit::record(conn, ctx, entry)
}

fn check_jit(conn: &mut AnyConnection, tenant: &str, jit: &JustInTime) -> Result<(), ApiError> {
    if !matches!(jit.role, Role::Operator | Role::Viewer) {
        return Err(ApiError::invalid(
            "just_in_time.role",
            "just-in-time members are operators or viewers; make someone an admin or owner yourself",
        ));
    }
    crate::store::members::ensure_regions_exist(conn, tenant, &jit.regions).map_err(|e| match e {
        ApiError::Validation(errors) => ApiError::Validation(
            errors
                .into_iter()
                .map(|mut f| {
                    f.field = f.field.replace("regions[", "just_in_time.region_ids[");
                    f
                })
                .collect(),
        ),
        other => other,
    })
}

fn seal(master: &MasterKey, tenant: &str, id: &str, secret: &SecretString) -> Result<String, ApiError> {
    master.seal(secret.expose_secret().as_bytes(), &secret_context(tenant, id)).map_err(ApiError::internal)
}

pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    master: &MasterKey,
    new: NewConnection,
) -> Result<ConnectionRow, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        check_jit(conn, &tenant, &new.jit)?;
        let id = uuid::Uuid::now_v7().to_string();
        let sealed = new.secret.as_ref().map(|s| seal(master, &tenant, &id, s)).transpose()?;
        let at = now();
        diesel::insert_into(c::sso_connections)
            .values((
                c::tenant_id.eq(&tenant),
                c::id.eq(&id),
                c::protocol.eq(new.protocol),
                c::name.eq(&new.name),
                c::enabled.eq(new.enabled),
                c::settings.eq(&new.settings),
                c::sealed_secret.eq(&sealed),
                c::jit_enabled.eq(new.jit.enabled),
                c::jit_role.eq(new.jit.role.as_str()),
                c::jit_regions.eq(regions_text(&new.jit.regions)),
                c::created_by.eq(ctx.actor().user_id.as_text()),
                c::created_at.eq(at),
                c::updated_at.eq(at),
                c::version.eq(1),
            ))
            .execute(conn)?;
        let row = load(conn, ctx, &id)?;
        audit_change(conn, ctx, "sso_connection.created", &id, None, Some(state(&row)))?;
        Ok(row)
    })
}

/// Oldest first (few per tenant), with the total.
pub fn list(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<Vec<ConnectionRow>, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    Ok(c::sso_connections
        .filter(c::tenant_id.eq(ctx.tenant_text()))
        .order(c::id.asc())
        .select(ConnectionRow::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<ConnectionRow, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    load(conn, ctx, id)
}

pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    master: &MasterKey,
    id: &str,
    changes: ConnectionChanges,
    if_match: Option<i32>,
) -> Result<ConnectionRow, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("SSO connection", before.version, if_match)?;
        if let Some(jit) = &changes.jit {
            check_jit(conn, &tenant, jit)?;
        }
        let settings = match changes.settings {
            None => before.settings.clone(),
            Some(SettingsChange::Oidc { issuer, client_id, scopes }) => {
                if before.protocol != crate::sso::PROTOCOL_OIDC {
                    return Err(ApiError::invalid("oidc", "is for protocol oidc; this connection is saml"));
                }
                let mut s = before.oidc_settings()?;
                s.issuer = issuer.unwrap_or(s.issuer);
                s.client_id = client_id.unwrap_or(s.client_id);
                s.scopes = scopes.unwrap_or(s.scopes);
                serde_json::to_string(&s).map_err(|e| ApiError::internal(e.to_string()))?
            }
            Some(SettingsChange::Saml(s)) => {
                if before.protocol != crate::sso::PROTOCOL_SAML {
                    return Err(ApiError::invalid("saml", "is for protocol saml; this connection is oidc"));
                }
                serde_json::to_string(&s).map_err(|e| ApiError::internal(e.to_string()))?
            }
        };
        if changes.secret.is_some() && before.protocol != crate::sso::PROTOCOL_OIDC {
            return Err(ApiError::invalid("oidc.client_secret", "is for protocol oidc; this connection is saml"));
        }
        let sealed = match &changes.secret {
            Some(s) => Some(seal(master, &tenant, id, s)?),
            None => before.sealed_secret.clone(),
        };
        let (jit_enabled, jit_role, jit_regions) = match &changes.jit {
            Some(j) => (j.enabled, j.role.as_str().to_string(), regions_text(&j.regions)),
            None => (before.jit_enabled, before.jit_role.clone(), before.jit_regions.clone()),
        };
        diesel::update(c::sso_connections.filter(c::tenant_id.eq(&tenant)).filter(c::id.eq(id)))
            .set((
                c::name.eq(changes.name.as_deref().unwrap_or(&before.name)),
                c::enabled.eq(changes.enabled.unwrap_or(before.enabled)),
                c::settings.eq(&settings),
                c::sealed_secret.eq(&sealed),
                c::jit_enabled.eq(jit_enabled),
                c::jit_role.eq(&jit_role),
                c::jit_regions.eq(&jit_regions),
                c::updated_at.eq(now()),
                c::version.eq(before.version + 1),
            ))
            .execute(conn)?;
        let after = load(conn, ctx, id)?;
        if !after.enabled {
            ensure_enforcement_keeps_a_connection(conn, &tenant)?;
        }
        audit_change(conn, ctx, "sso_connection.updated", id, Some(state(&before)), Some(state(&after)))?;
        Ok(after)
    })
}

pub fn delete(conn: &mut AnyConnection, ctx: &TenantContext, id: &str, if_match: Option<i32>) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("SSO connection", before.version, if_match)?;
        diesel::delete(c::sso_connections.filter(c::tenant_id.eq(&tenant)).filter(c::id.eq(id))).execute(conn)?;
        ensure_enforcement_keeps_a_connection(conn, &tenant)?;
        audit_change(conn, ctx, "sso_connection.deleted", id, Some(state(&before)), None)?;
        Ok(())
    })
}

/// A tenant that requires SSO must keep an enabled connection, or its members could not sign in.
fn ensure_enforcement_keeps_a_connection(conn: &mut AnyConnection, tenant: &str) -> Result<(), ApiError> {
    use crate::db::schema::tenants::dsl as t;
    let required: bool = t::tenants.filter(t::id.eq(tenant)).select(t::sso_required).first(conn)?;
    if !required {
        return Ok(());
    }
    let enabled: i64 =
        c::sso_connections.filter(c::tenant_id.eq(tenant)).filter(c::enabled.eq(true)).count().get_result(conn)?;
    if enabled == 0 {
        return Err(ApiError::conflict(
            "sso-required",
            "this tenant requires SSO and this is its last enabled connection: turn the requirement off first (PATCH the tenant's sso_required)",
        ));
    }
    Ok(())
}
