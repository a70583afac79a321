//! Device-agent enrolment: OS usernames and the provisional address of a person enrolled by
//! one (DESIGN.md section 11). No I/O here.

/// Enrolled people get an address under this domain until they confirm their own. `.invalid`
/// is reserved (RFC 2606): mail to it can never be delivered.
pub const PROVISIONAL_DOMAIN: &str = "enrolled.roster.invalid";

/// The longest OS username taken (a Windows user principal name may be 104 characters).
pub const MAX_USERNAME: usize = 104;

/// How long a profile-completion link works, and a confirmation link after it.
pub const COMPLETION_DAYS: i64 = 7;

/// What enrolments compare: OS usernames are matched without regard to case (Windows ignores
/// it), so `JDoe` and `jdoe` are one person.
pub fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// A provisional address for an enrolled person: readable (from the username) and unique (from
/// the user id), under [`PROVISIONAL_DOMAIN`].
pub fn provisional_email(username: &str, user_id: &uuid::Uuid) -> String {
    let mut local: String = username
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '-' })
        .take(40)
        .collect();
    local = local.trim_matches(|c| c == '.' || c == '-').to_string();
    let unique = user_id.simple().to_string();
    let unique = &unique[unique.len() - 12..];
    if local.is_empty() {
        format!("device-{unique}@{PROVISIONAL_DOMAIN}")
    } else {
        format!("{local}.{unique}@{PROVISIONAL_DOMAIN}")
    }
}

/// Whether an address is a provisional one (the person has not confirmed their own).
pub fn is_provisional(email: &str) -> bool {
    email.ends_with(&format!("@{PROVISIONAL_DOMAIN}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_addresses_are_valid_undeliverable_and_distinct() {
        let a = provisional_email("ACME\\J Doe", &uuid::Uuid::now_v7());
        let b = provisional_email("ACME\\J Doe", &uuid::Uuid::now_v7());
        assert_ne!(a, b);
        assert!(a.starts_with("acme-j-doe."), "{a}");
        assert!(is_provisional(&a));
        assert!(crate::domain::EmailAddress::parse(&a).is_ok(), "{a}");
        let odd = provisional_email("ü", &uuid::Uuid::now_v7());
        assert!(odd.starts_with("device-") && crate::domain::EmailAddress::parse(&odd).is_ok(), "{odd}");
        assert_eq!(username_key(" JDoe "), "jdoe");
    }
}

/// Where an enrolment stands, as the agent polls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Waiting for an owner or admin to approve or reject the member.
    PendingApproval,
    /// Approved (or a member already): the person can work once their profile is complete.
    Active,
    /// The member is disabled.
    Disabled,
    /// An invited member who has not accepted yet.
    Invited,
    /// An admin turned the member away; the membership is gone.
    Rejected,
    /// The member was deleted after approval.
    Removed,
}

/// How far the person got with their profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    /// Name, address and password not given yet: the completion link is what the agent shows.
    Incomplete,
    /// Given; the link sent to the address has not been followed yet.
    AwaitingEmailConfirmation,
    /// The person has their own confirmed address (and signs in with it once active).
    Complete,
}
