//! The rows of a person joining a tenant: a new identity (unless they have one) and their
//! membership. Member creation, CSV import, tenant creation (the first owner) and invitation
//! acceptance all build them here, so a new member looks the same whichever way they came in.

use chrono::NaiveDateTime;

use crate::db::models::{MembershipRow, UserRow, search_text};
use crate::domain::{MemberStatus, Role};

/// Who joins, as their identity holds them and the membership's search and sort columns show
/// them.
pub(in crate::store) struct Person<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub username: Option<&'a str>,
    pub full_name: &'a str,
    pub sign_in: SignIn,
}

/// How the person signs in.
pub(in crate::store) enum SignIn {
    /// They already have an identity: only the membership is new.
    Existing,
    /// A new identity with the stored form of a password they chose.
    Password(String),
    /// A new identity with the stored form of a temporary password, to change at first sign-in.
    Temporary(String),
    /// A new identity without a password yet (an emailed link lets them choose one).
    NoPasswordYet,
}

/// The membership they get in `tenant`.
pub(in crate::store) struct Joining {
    pub tenant: String,
    pub role: Role,
    pub status: MemberStatus,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub section: Option<String>,
    pub manager_id: Option<String>,
}

impl Joining {
    /// A membership waiting for approval (a device agent's enrolment), with `role`.
    pub fn pending(tenant: &str, role: Role) -> Self {
        Self { status: MemberStatus::PendingApproval, ..Self::active(tenant, role) }
    }

    /// An active membership with `role` and nothing else set.
    pub fn active(tenant: &str, role: Role) -> Self {
        Self {
            tenant: tenant.to_string(),
            role,
            status: MemberStatus::Active,
            job_title: None,
            department: None,
            section: None,
            manager_id: None,
        }
    }
}

/// The rows to insert, stamped `at`: the identity (`None` for [`SignIn::Existing`]), made by
/// and at home in the joined tenant, and the membership.
pub(in crate::store) fn new_member_rows(
    person: Person<'_>,
    joining: Joining,
    at: NaiveDateTime,
) -> (Option<UserRow>, MembershipRow) {
    let password = match person.sign_in {
        SignIn::Existing => None,
        SignIn::Password(hash) => Some((Some(hash), false)),
        SignIn::Temporary(hash) => Some((Some(hash), true)),
        SignIn::NoPasswordYet => Some((None, false)),
    };
    let user = password.map(|(password_hash, must_change_password)| UserRow {
        id: person.user_id.to_string(),
        email: person.email.to_string(),
        username: person.username.map(str::to_string),
        full_name: person.full_name.to_string(),
        avatar_url: None,
        password_hash,
        must_change_password,
        auth_version: 1,
        failed_logins: 0,
        locked_until: None,
        home_tenant_id: Some(joining.tenant.clone()),
        created_at: at,
        updated_at: at,
    });
    let membership = MembershipRow {
        tenant_id: joining.tenant,
        user_id: person.user_id.to_string(),
        role: joining.role.as_str().into(),
        status: joining.status.as_str().into(),
        job_title: joining.job_title,
        department: joining.department,
        section: joining.section,
        manager_id: joining.manager_id,
        search_text: search_text(person.full_name, person.username, person.email),
        sort_name: person.full_name.to_lowercase(),
        sort_email: person.email.to_string(),
        auth_version: 1,
        version: 1,
        last_login_at: None,
        created_at: at,
        updated_at: at,
    };
    (user, membership)
}
