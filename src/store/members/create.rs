//! Creating a member with a new identity, with a temporary password or an email to choose one;
//! idempotent with a key.

use diesel::prelude::*;

use super::invariants::{
    ensure_manager, ensure_regions_exist, ensure_seat_within, ensure_username_free, insert_regions, limit_of,
};
use super::joining::{Joining, Person, SignIn, new_member_rows};
use super::record::MemberRecord;
use crate::auth::TenantContext;
use crate::auth::guard::TenantLock;
use crate::auth::policy::TenantAction;
use crate::db::AnyConnection;
use crate::db::schema::{memberships::dsl as m, tenants::dsl as t, users::dsl as u};
use crate::domain::{EmailAddress, MemberStatus, RegionId, Role, UserId, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditEntry};
use crate::store::idempotency::{self, IdempotencyKey, Replay};

// ---------------------------------------------------------------- writes

/// A new member, parsed and checked for shape.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub email: EmailAddress,
    pub full_name: String,
    pub username: Option<String>,
    pub role: Role,
    pub regions: Vec<RegionId>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub section: Option<String>,
    pub manager_id: Option<UserId>,
    pub status: MemberStatus,
}

/// What a create did: made the member, found the first answer for the same
/// `Idempotency-Key`, or found that the email already has an account (a member of other
/// tenants only), so nothing was written: the caller invites that person instead.
pub enum Created {
    New(Box<MemberRecord>),
    Replayed(Replay),
    HasAccount,
}

/// Renders the answer kept for an idempotent retry (never with secrets).
pub type RenderReplay<'a> = idempotency::Render<'a, MemberRecord>;

/// How a new member gets in.
pub enum Credential<'a> {
    /// The stored form of a temporary password; the member must change it at first sign-in.
    Temporary(String),
    /// No password yet: an email with a link to choose one.
    EmailLink(&'a crate::store::outbox::Mailer<'a>),
}

/// Creates a member with a new identity. With an idempotency key, the first answer is stored
/// in the same transaction. An email that already has an account writes nothing and answers
/// [`Created::HasAccount`].
pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    new: NewMember,
    credential: Credential<'_>,
    idem: Option<(&IdempotencyKey, RenderReplay<'_>)>,
) -> Result<Created, ApiError> {
    ctx.actor().require(TenantAction::CreateMember)?;
    ctx.actor().require_grant(new.role, &new.regions)?;
    let tenant = ctx.tenant_text();
    let actor = ctx.actor().user_id.as_text();
    crate::db::write_tx(conn, |conn| {
        // The tenant's row shared: creates run side by side, its settings stay put. An
        // idempotency key needs this tenant's creates in single file, and a seat limit needs
        // the seat-taking ones so (the advisory lock; the other seat-taking writes lock the
        // row exclusively, which waits for this shared lock).
        let lock = if idem.is_some() { TenantLock::Exclusive } else { TenantLock::Shared };
        let plan = ctx.lock_and_recheck(conn, lock)?;
        let limit = if new.status.takes_seat() { limit_of(&plan.plan, plan.seat_limit_override) } else { None };
        if limit.is_some() && lock == TenantLock::Shared {
            crate::db::lock_tenant_seats(conn, &tenant)?;
        }
        if let Some(replay) = idem.map(|(key, _)| idempotency::find(conn, &tenant, &actor, key)).transpose()?.flatten()
        {
            return Ok(Created::Replayed(replay));
        }
        if let Some(name) = &new.username {
            // The email's answer comes first, before the name's.
            if let Some(found) = has_account(conn, &tenant, &new.email)? {
                return Ok(found);
            }
            ensure_username_free(conn, name, None)?;
        }
        let user_id = UserId::new().as_text();
        let sign_in = match &credential {
            Credential::Temporary(hash) => SignIn::Temporary(hash.clone()),
            Credential::EmailLink(_) => SignIn::NoPasswordYet,
        };
        let person = Person {
            user_id: &user_id,
            email: new.email.as_str(),
            username: new.username.as_deref(),
            full_name: &new.full_name,
            sign_in,
        };
        let joining = Joining {
            tenant: tenant.clone(),
            role: new.role,
            status: new.status,
            job_title: new.job_title.clone(),
            department: new.department.clone(),
            section: new.section.clone(),
            manager_id: new.manager_id.map(|m| m.as_text()),
        };
        let (user, membership) = new_member_rows(person, joining, now());
        let user = user.ok_or_else(|| ApiError::internal("a new member without an identity"))?;
        // The identity first: an email that already has one writes nothing here (and waits
        // for a create of the same email in flight to end), and the member is in this tenant
        // already or is invited instead.
        let inserted = crate::db::on_backend!(&mut *conn, |c| diesel::insert_into(u::users)
            .values(&user)
            .on_conflict(u::email)
            .do_nothing()
            .execute(c))?;
        if inserted == 0 {
            return has_account(conn, &tenant, &new.email)?
                .ok_or_else(|| ApiError::internal("an email taken and then free again inside one transaction"));
        }
        ensure_regions_exist(conn, &tenant, &new.regions)?;
        crate::store::placement::ensure_for_member(conn, &tenant, new.department.as_deref(), new.section.as_deref())?;
        ensure_seat_within(conn, &tenant, limit.map(i64::from))?;
        if let Some(mgr) = new.manager_id {
            ensure_manager(conn, &tenant, &user_id, &mgr.as_text())?;
        }
        if let Credential::EmailLink(mailer) = credential {
            let tenant_name: String = t::tenants.filter(t::id.eq(&tenant)).select(t::name).first(conn)?;
            let creator: String = u::users.filter(u::id.eq(&actor)).select(u::full_name).first(conn)?;
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
        insert_regions(conn, &tenant, &user_id, &new.regions)?;
        let rec = MemberRecord {
            membership,
            email: user.email,
            username: user.username,
            full_name: user.full_name,
            regions: new.regions.iter().map(|r| r.as_text()).collect(),
            locked_until: None,
            os_username: None,
        };
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.created",
                target_type: "member",
                target_id: Some(user_id),
                before: None,
                after: Some(rec.audit_state()),
            },
        )?;
        if let Some((key, render)) = idem {
            idempotency::save(conn, &tenant, &actor, key, 201, &render(&rec))?;
        }
        Ok(Created::New(Box::new(rec)))
    })
}

/// What a create answers for an email that already has an identity: `already-member` when it
/// is a member here, else [`Created::HasAccount`]; `None` when the email has no identity.
fn has_account(conn: &mut AnyConnection, tenant: &str, email: &EmailAddress) -> Result<Option<Created>, ApiError> {
    let Some(existing) = u::users.filter(u::email.eq(email.as_str())).select(u::id).first::<String>(conn).optional()?
    else {
        return Ok(None);
    };
    let here = m::memberships
        .filter(m::tenant_id.eq(tenant))
        .filter(m::user_id.eq(&existing))
        .count()
        .get_result::<i64>(conn)?;
    if here > 0 {
        return Err(ApiError::conflict("already-member", format!("{email} is already a member of this tenant")));
    }
    // Never changed or shown here: the person is invited and joins with their own credentials.
    Ok(Some(Created::HasAccount))
}
