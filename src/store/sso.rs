//! Single sign-on's rows that both protocols share: the connections (read here by id for the
//! public routes, which have no tenant context yet), the sign-ins a browser was sent off for,
//! each SAML assertion id seen, and the one-minute codes. Connection management (CRUD, under
//! the guard) is in `store::sso_connections`; verified domains in `store::domains`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::auth::master_key::MasterKey;
use crate::db::schema::{sso_assertions::dsl as sa, sso_connections::dsl as sc, sso_requests::dsl as sr};
use crate::db::{AnyConnection, on_backend, write_tx};
use crate::domain::now;
use crate::error::ApiError;

/// A connection as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::sso_connections)]
pub struct ConnectionRow {
    pub tenant_id: String,
    pub id: String,
    pub protocol: String,
    pub name: String,
    pub enabled: bool,
    /// JSON: [`crate::sso::OidcSettings`] or [`crate::sso::SamlSettings`].
    pub settings: String,
    pub sealed_secret: Option<String>,
    pub jit_enabled: bool,
    pub jit_role: String,
    /// JSON array of region ids.
    pub jit_regions: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
}

impl ConnectionRow {
    pub fn oidc_settings(&self) -> Result<crate::sso::OidcSettings, ApiError> {
        serde_json::from_str(&self.settings).map_err(|e| ApiError::internal(format!("stored OIDC settings: {e}")))
    }

    pub fn saml_settings(&self) -> Result<crate::sso::SamlSettings, ApiError> {
        serde_json::from_str(&self.settings).map_err(|e| ApiError::internal(format!("stored SAML settings: {e}")))
    }

    /// The OIDC client secret, opened with the master key.
    pub fn client_secret(&self, master: &MasterKey) -> Result<secrecy::SecretString, ApiError> {
        let sealed = self.sealed_secret.as_deref().ok_or_else(|| ApiError::internal("connection has no secret"))?;
        let plain = master.open(sealed, &secret_context(&self.tenant_id, &self.id)).map_err(ApiError::internal)?;
        String::from_utf8(plain).map(secrecy::SecretString::from).map_err(|_| ApiError::internal("sealed secret"))
    }
}

/// What a connection's sealed secret is bound to (a secret moved to another row won't open).
pub fn secret_context(tenant: &str, connection: &str) -> String {
    format!("sso-connection:{tenant}:{connection}")
}

/// A connection by its id alone (the public routes: ACS, metadata, callback).
pub fn find_connection(conn: &mut AnyConnection, id: &str) -> Result<Option<ConnectionRow>, ApiError> {
    Ok(sc::sso_connections.filter(sc::id.eq(id)).select(ConnectionRow::as_select()).first(conn).optional()?)
}

/// A sign-in the browser was sent off for: what to check the IdP's answer against.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// OIDC `state`; the SAML AuthnRequest's `ID`.
    pub id: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub protocol: String,
    pub nonce: Option<String>,
    /// The PKCE verifier (kept sealed).
    pub verifier: Option<String>,
}

fn verifier_context(id: &str) -> String {
    format!("sso-request:{id}")
}

/// Records a sign-in the browser is being sent off for; it lives [`crate::sso::REQUEST_TTL_SECS`].
pub fn save_request(conn: &mut AnyConnection, master: &MasterKey, request: &PendingRequest) -> Result<(), ApiError> {
    let sealed = match &request.verifier {
        Some(v) => Some(master.seal(v.as_bytes(), &verifier_context(&request.id)).map_err(ApiError::internal)?),
        None => None,
    };
    let at = now();
    diesel::insert_into(sr::sso_requests)
        .values((
            sr::id.eq(&request.id),
            sr::tenant_id.eq(&request.tenant_id),
            sr::connection_id.eq(&request.connection_id),
            sr::protocol.eq(&request.protocol),
            sr::nonce.eq(request.nonce.as_deref()),
            sr::sealed_verifier.eq(sealed),
            sr::created_at.eq(at),
            sr::expires_at.eq(at + Duration::seconds(crate::sso::REQUEST_TTL_SECS)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes a pending sign-in, once: `None` when it was never made, was already used, or has
/// expired. Marking it used and reading it are one transaction, so two answers racing with the
/// same `state` (or `InResponseTo`) get it once between them.
pub fn take_request(conn: &mut AnyConnection, master: &MasterKey, id: &str) -> Result<Option<PendingRequest>, ApiError> {
    type Row = (String, String, String, String, Option<String>, Option<String>);
    let at = now();
    let row: Option<Row> = write_tx(conn, |conn| {
        let taken = diesel::update(
            sr::sso_requests.filter(sr::id.eq(id)).filter(sr::used_at.is_null()).filter(sr::expires_at.gt(at)),
        )
        .set(sr::used_at.eq(at))
        .execute(conn)?;
        if taken == 0 {
            return Ok(None);
        }
        Ok(sr::sso_requests
            .filter(sr::id.eq(id))
            .select((sr::id, sr::tenant_id, sr::connection_id, sr::protocol, sr::nonce, sr::sealed_verifier))
            .first(conn)
            .optional()?)
    })?;
    let Some((id, tenant_id, connection_id, protocol, nonce, sealed)) = row else { return Ok(None) };
    let verifier = match sealed {
        Some(s) => Some(
            String::from_utf8(master.open(&s, &verifier_context(&id)).map_err(ApiError::internal)?)
                .map_err(|_| ApiError::internal("sealed verifier"))?,
        ),
        None => None,
    };
    Ok(Some(PendingRequest { id, tenant_id, connection_id, protocol, nonce, verifier }))
}

/// Records a SAML assertion's id; false when it was seen before (a replay). Kept until
/// `expires_at` (the assertion's own `NotOnOrAfter`), after which it could not be used anyway.
pub fn first_use_of_assertion(
    conn: &mut AnyConnection,
    tenant: &str,
    connection: &str,
    assertion_id: &str,
    expires_at: NaiveDateTime,
) -> Result<bool, ApiError> {
    let inserted = on_backend!(conn, |conn| diesel::insert_into(sa::sso_assertions)
        .values((
            sa::tenant_id.eq(tenant),
            sa::connection_id.eq(connection),
            sa::assertion_id.eq(assertion_id),
            sa::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn))?;
    Ok(inserted == 1)
}
