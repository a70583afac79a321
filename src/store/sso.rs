//! Single sign-on's rows that both protocols share: the connections (read here by id for the
//! public routes, which have no tenant context yet), the sign-ins a browser was sent off for,
//! each SAML assertion id seen, and the one-minute codes. Connection management (CRUD, under
//! the guard) is in `store::sso_connections`; verified domains in `store::domains`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::json;

use super::audit::{self, AuditActor, AuditEntry};
use super::members::{self, Joining, Person, SignIn, new_member_rows};
use super::sessions::{self, NewSession};
use crate::auth::RequestMeta;
use crate::auth::master_key::MasterKey;
use crate::config::SessionLimits;
use crate::db::schema::{
    domain_claims::dsl as dc, memberships::dsl as m, sessions::dsl as s, sso_assertions::dsl as sa,
    sso_codes::dsl as co, sso_connections::dsl as sc, sso_requests::dsl as sr, users::dsl as u,
};
use crate::db::{AnyConnection, lock_tenant, on_backend, write_tx};
use crate::domain::ids::parse_stored;
use crate::domain::password::{digest_generated, generate_secret};
use crate::domain::{EmailAddress, MemberStatus, RegionId, Role, TenantId, UserId, now};
use crate::error::ApiError;
use crate::sso::{Asserted, Refused};

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
    /// The digest of the secret the browser that started the sign-in keeps
    /// ([`crate::sso::browser_binding`]); its code exchanges only with that secret.
    pub binding: String,
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
            sr::binding_digest.eq(&request.binding),
            sr::created_at.eq(at),
            sr::expires_at.eq(at + Duration::seconds(crate::sso::REQUEST_TTL_SECS)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes a pending sign-in, once: `None` when it was never made, was already used, or has
/// expired. Marking it used and reading it are one transaction, so two answers racing with the
/// same `state` (or `InResponseTo`) get it once between them.
pub fn take_request(
    conn: &mut AnyConnection,
    master: &MasterKey,
    id: &str,
) -> Result<Option<PendingRequest>, ApiError> {
    type Row = (String, String, String, String, Option<String>, Option<String>, String);
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
            .select((
                sr::id,
                sr::tenant_id,
                sr::connection_id,
                sr::protocol,
                sr::nonce,
                sr::sealed_verifier,
                sr::binding_digest,
            ))
            .first(conn)
            .optional()?)
    })?;
    let Some((id, tenant_id, connection_id, protocol, nonce, sealed, binding)) = row else { return Ok(None) };
    let verifier = match sealed {
        Some(s) => Some(
            String::from_utf8(master.open(&s, &verifier_context(&id)).map_err(ApiError::internal)?)
                .map_err(|_| ApiError::internal("sealed verifier"))?,
        ),
        None => None,
    };
    Ok(Some(PendingRequest { id, tenant_id, connection_id, protocol, nonce, verifier, binding }))
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

// ---------------------------------------------------------------- signing in

/// Who the IdP's person turned out to be in the connection's tenant.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub user_id: String,
    /// Made just now (just in time).
    pub created: bool,
}

fn refuse<T>(reason: &'static str, detail: impl Into<String>) -> Result<Result<T, Refused>, ApiError> {
    Ok(Err(Refused::new(reason, detail)))
}

/// Decides whether the person an IdP vouched for signs in to the connection's tenant: the
/// email must lie in one of the tenant's verified domains (whatever the IdP says about it); an
/// active member gets in; a disabled (or not yet approved) one does not; a non-member is made a
/// member just in time when the connection allows it (the seat limit applies; an identity of
/// another tenant gets a membership and nothing of it changes), else refused.
pub fn admit(
    conn: &mut AnyConnection,
    connection: &ConnectionRow,
    asserted: &Asserted,
    meta: &RequestMeta,
) -> Result<Result<Admitted, Refused>, ApiError> {
    let tenant = connection.tenant_id.as_str();
    let email = match EmailAddress::parse(&asserted.email) {
        Ok(e) => e,
        Err(why) => {
            return refuse(
                "invalid-email",
                format!("the identity provider asserted the email {:?}, which {why}", asserted.email),
            );
        }
    };
    let Some(domain) = crate::sso::email_domain(email.as_str()) else {
        return refuse("invalid-email", format!("the identity provider asserted {email}, which has no domain"));
    };
    let claimed: Option<String> =
        dc::domain_claims.filter(dc::domain.eq(&domain)).select(dc::tenant_id).first(conn).optional()?;
    if claimed.as_deref() != Some(tenant) {
        return refuse(
            "email-outside-verified-domains",
            format!(
                "the identity provider asserted {email}, but {domain} is not a verified domain of this tenant: a connection may only sign in addresses of its tenant's verified domains"
            ),
        );
    }
    let member = |conn: &mut AnyConnection| -> Result<Option<(String, Option<String>)>, ApiError> {
        let user: Option<String> = u::users.filter(u::email.eq(email.as_str())).select(u::id).first(conn).optional()?;
        let Some(user) = user else { return Ok(None) };
        let status: Option<String> = m::memberships
            .filter(m::tenant_id.eq(tenant))
            .filter(m::user_id.eq(&user))
            .select(m::status)
            .first(conn)
            .optional()?;
        Ok(Some((user, status)))
    };
    let judge = |found: &Option<(String, Option<String>)>| -> Option<Result<Admitted, Refused>> {
        match found {
            Some((user, Some(status))) if status == MemberStatus::Active.as_str() => {
                Some(Ok(Admitted { user_id: user.clone(), created: false }))
            }
            Some((_, Some(status))) => Some(Err(Refused::new(
                "member-not-active",
                format!(
                    "{email} is a member of this tenant, but the membership is {status}: ask the tenant's owner or an admin"
                ),
            ))),
            _ if !connection.jit_enabled => Some(Err(Refused::new(
                "not-a-member",
                format!(
                    "{email} is not a member of this tenant, and this connection does not add members just in time: ask the tenant's owner or an admin to add you"
                ),
            ))),
            _ => None,
        }
    };
    if let Some(decided) = judge(&member(conn)?) {
        return Ok(decided);
    }
    // Just in time, in single file with the tenant's other writes (the seat limit).
    write_tx(conn, |conn| {
        lock_tenant(conn, tenant)?;
        let found = member(conn)?;
        if let Some(decided) = judge(&found) {
            return Ok(decided);
        }
        if let Err(ApiError::Conflict { detail, .. }) = members::ensure_seat(conn, tenant) {
            return refuse("seat-limit", format!("{email} could not be added just in time: {detail}"));
        }
        let role = Role::parse(&connection.jit_role).unwrap_or(Role::Viewer);
        let regions: Vec<RegionId> =
            crate::store::sso_connections::regions_of(connection).iter().filter_map(|r| r.parse().ok()).collect();
        let joining = Joining::active(tenant, role);
        let user_id = match found {
            Some((existing, _)) => {
                let (full_name, stored_email): (String, String) =
                    u::users.filter(u::id.eq(&existing)).select((u::full_name, u::email)).first(conn)?;
                let person = Person {
                    user_id: &existing,
                    email: &stored_email,
                    username: None,
                    full_name: &full_name,
                    sign_in: SignIn::Existing,
                };
                let (_, membership) = new_member_rows(person, joining, now());
                diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
                existing
            }
            None => {
                let id = UserId::new().as_text();
                let full_name = display_name(asserted, &email);
                let person = Person {
                    user_id: &id,
                    email: email.as_str(),
                    username: None,
                    full_name: &full_name,
                    sign_in: SignIn::NoPasswordYet,
                };
                let (user, membership) = new_member_rows(person, joining, now());
                let user = user.ok_or_else(|| ApiError::internal("a new member without an identity"))?;
                diesel::insert_into(u::users).values(&user).execute(conn)?;
                diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
                id
            }
        };
        members::insert_regions(conn, tenant, &user_id, &regions)?;
        let after = members::event_object(conn, tenant, &user_id)?;
        audit::record_raw(
            conn,
            parse_stored(tenant),
            AuditActor::SsoConnection(connection.id.clone(), connection.name.clone()),
            meta,
            AuditEntry {
                action: "member.created",
                target_type: "member",
                target_id: Some(user_id.clone()),
                before: None,
                after,
            },
        )?;
        Ok(Ok(Admitted { user_id, created: true }))
    })
}

/// The name a just-in-time identity gets: what the IdP sent, else the email's local part.
fn display_name(asserted: &Asserted, email: &EmailAddress) -> String {
    let given = [asserted.given_name.as_deref(), asserted.family_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = asserted.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
    let name = name.or_else(|| (!given.is_empty()).then_some(given));
    let name = name.unwrap_or_else(|| email.as_str().split('@').next().unwrap_or_default().to_string());
    name.chars().take(200).collect()
}

/// Audits a refused sign-in in the connection's tenant (`sso.sign_in_refused`).
pub fn record_refusal(
    conn: &mut AnyConnection,
    connection: &ConnectionRow,
    email: Option<&str>,
    refused: &Refused,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    write_tx(conn, |conn| {
        audit::record_raw(
            conn,
            parse_stored(&connection.tenant_id),
            AuditActor::SsoConnection(connection.id.clone(), connection.name.clone()),
            meta,
            AuditEntry {
                action: "sso.sign_in_refused",
                target_type: "sso_connection",
                target_id: Some(connection.id.clone()),
                before: None,
                after: Some(json!({"email": email, "reason": refused.reason, "detail": refused.detail})),
            },
        )
    })
}

/// Hands out the one-minute, single-use code the frontend exchanges for tokens.
pub fn issue_code(
    conn: &mut AnyConnection,
    user: &str,
    tenant: &str,
    connection: &str,
    binding: &str,
) -> Result<SecretString, ApiError> {
    let code = generate_secret();
    let at = now();
    diesel::insert_into(co::sso_codes)
        .values((
            co::code_digest.eq(digest_generated(&code)),
            co::user_id.eq(user),
            co::tenant_id.eq(tenant),
            co::connection_id.eq(connection),
            co::binding_digest.eq(binding),
            co::created_at.eq(at),
            co::expires_at.eq(at + Duration::seconds(crate::sso::CODE_TTL_SECS)),
        ))
        .execute(conn)?;
    Ok(code)
}

/// What a code was good for.
pub struct Exchanged {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub session: NewSession,
}

/// Takes a code, once, and starts the session it stands for: in that tenant only, marked with
/// its connection. `None` for an unknown, used or expired code, or a membership no longer active.
pub fn exchange(
    conn: &mut AnyConnection,
    code: &SecretString,
    browser_secret: &SecretString,
    meta: &RequestMeta,
    limits: SessionLimits,
) -> Result<Option<Exchanged>, ApiError> {
    let digest = digest_generated(code);
    let binding = digest_generated(browser_secret);
    let at = now();
    write_tx(conn, |conn| {
        // A wrong browser secret uses the code up too: a code that reached another browser is
        // spent by its first try.
        let taken = diesel::update(
            co::sso_codes
                .filter(co::code_digest.eq(&digest))
                .filter(co::used_at.is_null())
                .filter(co::expires_at.gt(at)),
        )
        .set(co::used_at.eq(at))
        .execute(conn)?;
        if taken == 0 {
            return Ok(None);
        }
        let (user, tenant, connection, bound_to): (String, String, String, String) = co::sso_codes
            .filter(co::code_digest.eq(&digest))
            .select((co::user_id, co::tenant_id, co::connection_id, co::binding_digest))
            .first(conn)?;
        if bound_to != binding {
            return Ok(None);
        }
        let active: i64 = m::memberships
            .filter(m::tenant_id.eq(&tenant))
            .filter(m::user_id.eq(&user))
            .filter(m::status.eq(MemberStatus::Active.as_str()))
            .count()
            .get_result(conn)?;
        if active == 0 {
            return Ok(None);
        }
        let (user_id, tenant_id): (UserId, TenantId) = (parse_stored(&user), parse_stored(&tenant));
        let session = sessions::signed_in(conn, user_id, Some(tenant_id), meta, limits)?;
        diesel::update(s::sessions.filter(s::id.eq(&session.id)))
            .set(s::sso_connection_id.eq(Some(&connection)))
            .execute(conn)?;
        Ok(Some(Exchanged { user_id, tenant_id, session }))
    })
}

/// The connection a session came from and the tenant it acts in, if it came from SSO (it is
/// then for that tenant only).
pub fn session_connection(
    conn: &mut AnyConnection,
    session: &str,
) -> Result<Option<(String, Option<String>)>, ApiError> {
    let row: Option<(Option<String>, Option<String>)> =
        s::sessions.filter(s::id.eq(session)).select((s::sso_connection_id, s::tenant_id)).first(conn).optional()?;
    Ok(row.and_then(|(connection, tenant)| connection.map(|c| (c, tenant))))
}
