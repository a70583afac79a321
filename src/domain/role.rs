//! Roles, member statuses and plans: closed sets stored as text.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in a tenant, highest first: owner > admin > operator > viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Operator,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Higher is more powerful.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Operator => 1,
            Role::Viewer => 0,
        }
    }

    /// Operators and viewers: the roles an admin may manage and grant.
    pub fn is_below_admin(self) -> bool {
        self.rank() < Role::Admin.rank()
    }
}

/// A membership's status. Only `active` members can sign in to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Disabled,
    Invited,
    PendingApproval,
}

impl MemberStatus {
    pub const ALL: [MemberStatus; 4] =
        [MemberStatus::Active, MemberStatus::Disabled, MemberStatus::Invited, MemberStatus::PendingApproval];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Disabled => "disabled",
            MemberStatus::Invited => "invited",
            MemberStatus::PendingApproval => "pending_approval",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Statuses that hold a seat.
    pub fn takes_seat(self) -> bool {
        !matches!(self, MemberStatus::Disabled)
    }
}

/// A tenant's plan; it sets the default seat limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Plus,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Plus => "plus",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Plan::Free, Plan::Plus, Plan::Enterprise].into_iter().find(|p| p.as_str() == s)
    }

    /// Seats included in the plan; `None` is unlimited.
    pub fn default_seats(self) -> Option<i32> {
        match self {
            Plan::Free => Some(6),
            Plan::Plus => Some(50),
            Plan::Enterprise => None,
        }
    }
}
