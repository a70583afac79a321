//! The permission table (DESIGN.md section 3), in one place. Handlers and the store ask here;
//! nothing else decides who may do what. The tests at the bottom and `tests/api/policy.rs`
//! walk it cell by cell.
//!
//! Denials come in two kinds: `NotFound` when the target lies outside what the caller may see
//! (another tenant, outside an admin's regions, or anyone but self for operators and viewers),
//! so existence never leaks; `Forbidden` when the caller sees the target but its role can
//! never do the action. [`Decision::or_refuse`] and the `require*` methods turn a decision into
//! the API's answer (404 or 403); nothing else maps a decision to an error.

use std::collections::HashSet;

use crate::domain::{RegionId, RegionScope, Role, UserId};
use crate::error::ApiError;

/// What a caller tries to do to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberAction {
    Read,
    EditProfile,
    ChangeRoleOrRegions,
    ChangeStatus,
    ResetPassword,
    Delete,
    /// Let in a member a device agent enrolled (`pending_approval` to `active`): as enabling.
    Approve,
    /// Turn away a member a device agent enrolled (removed): as deleting.
    Reject,
}

/// What a caller tries to do to the tenant as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantAction {
    /// See the tenant's name, plan and settings, and its regions.
    ReadTenant,
    /// List members (the rows shown are narrowed by [`Actor::member_visibility`]).
    ListMembers,
    CreateMember,
    /// Departments and sections: list and read (owners and admins; operators and viewers see
    /// only themselves here).
    ReadDepartments,
    /// Departments and sections: create, rename, delete (owners and admins, as for members).
    ManageDepartments,
    /// Settings, plan, billing owner, regions.
    ManageTenant,
    ReadAudit,
    /// Export the member list as a file (the plan must include exports too).
    ExportMembers,
    /// Send one action for many members. Each member is then checked on its own with
    /// [`Actor::can_member`]; this only refuses a caller who could manage no member at all.
    BulkManageMembers,
    /// Create, list, change, rotate and revoke API keys (owners; never a key).
    ManageApiKeys,
    /// Webhook endpoints: create, list, change, rotate, test, their deliveries (owners, and
    /// API keys with the owner role).
    ManageWebhooks,
    /// The event feed (owners, and API keys with the owner role).
    ReadEvents,
    /// Directory groups and the SCIM settings: list and read (owners and admins, as for
    /// departments); a group's members are narrowed by [`Actor::member_visibility`].
    ReadGroups,
    /// Map a directory group to a role and regions, and set the SCIM default role and regions
    /// (owners, and API keys with the owner role): it decides who becomes an admin.
    MapGroupRoles,
    /// Single sign-on: verified domains, SSO connections and the SSO requirement (owners, and
    /// API keys with the owner role): it decides who can sign in and how.
    ManageSso,
}

impl TenantAction {
    pub const ALL: [TenantAction; 15] = [
        TenantAction::ReadTenant,
        TenantAction::ListMembers,
        TenantAction::CreateMember,
        TenantAction::ReadDepartments,
        TenantAction::ManageDepartments,
        TenantAction::ManageTenant,
        TenantAction::ReadAudit,
        TenantAction::ExportMembers,
        TenantAction::BulkManageMembers,
        TenantAction::ManageApiKeys,
        TenantAction::ManageWebhooks,
        TenantAction::ReadEvents,
        TenantAction::ReadGroups,
        TenantAction::MapGroupRoles,
        TenantAction::ManageSso,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Answer 404: the caller may not know the target exists.
    NotFound,
    /// Answer 403: the caller's role can never do this (or it would change itself).
    Forbidden(&'static str),
}

/// Who acts: a member with an access token, or an API key of kind `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Member,
    /// An API key acting with its own role and regions; [`Actor::user_id`] holds the key's id
    /// (never a user's), and "self" rules never match it.
    ApiKey {
        name: String,
    },
}

/// The authenticated member (or API key) acting in a tenant, as the guard found it in the
/// database.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The member's user id, or the key's id for an API key (see [`Actor::principal`]).
    pub user_id: UserId,
    pub principal: Principal,
    pub role: Role,
    pub scope: RegionScope,
    pub admins_can_manage_users: bool,
}

/// The facts about a target member that the table looks at.
#[derive(Debug, Clone, Copy)]
pub struct TargetFacts<'a> {
    pub user_id: UserId,
    pub role: Role,
    pub regions: &'a [RegionId],
}

/// Which rows a caller sees in member lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberVisibility {
    All,
    /// Self, plus members with at least one region and all regions in this set.
    SelfAndRegions(HashSet<RegionId>),
    SelfOnly,
}

impl Actor {
    pub fn is_key(&self) -> bool {
        matches!(self.principal, Principal::ApiKey { .. })
    }

    /// How the audit log names the actor: `(actor_type, actor_id, actor_name)`.
    pub fn audit_identity(&self) -> (&'static str, String, Option<String>) {
        match &self.principal {
            Principal::Member => ("user", self.user_id.as_text(), None),
            Principal::ApiKey { name } => ("api_key", self.user_id.as_text(), Some(name.clone())),
        }
    }

    /// Whether an admin acts as one (the tenant may switch user administration off for admins).
    fn admin_active(&self) -> bool {
        self.role == Role::Admin && self.admins_can_manage_users
    }

    pub fn member_visibility(&self) -> MemberVisibility {
        match (self.role, &self.scope) {
            (Role::Owner, _) => MemberVisibility::All,
            (Role::Admin, RegionScope::Regions(set)) if self.admin_active() => {
                MemberVisibility::SelfAndRegions(set.clone())
            }
            (Role::Admin, RegionScope::Tenant) if self.admin_active() => MemberVisibility::All,
            _ => MemberVisibility::SelfOnly,
        }
    }

    pub fn can(&self, action: TenantAction) -> Decision {
        use TenantAction::*;
        if action == ManageApiKeys && self.is_key() {
            return Decision::Forbidden("API keys cannot manage API keys: use an owner's access token");
        }
        match (self.role, action) {
            (_, ReadTenant | ListMembers) => Decision::Allow,
            (Role::Owner, _) => Decision::Allow,
            (_, ExportMembers) => Decision::Forbidden("only owners can export members"),
            (Role::Admin, CreateMember | ReadDepartments | ManageDepartments | BulkManageMembers | ReadGroups)
                if self.admin_active() =>
            {
                Decision::Allow
            }
            (Role::Admin, CreateMember | ReadDepartments | ManageDepartments | BulkManageMembers | ReadGroups) => {
                Decision::Forbidden("this tenant has turned user administration off for admins")
            }
            (Role::Admin, MapGroupRoles) => {
                Decision::Forbidden("only owners map directory groups to roles and set the SCIM defaults")
            }
            (Role::Admin, ManageTenant | ReadAudit | ManageApiKeys | ManageWebhooks | ReadEvents | ManageSso) => {
                Decision::Forbidden("only owners can do this")
            }
            (Role::Operator | Role::Viewer, BulkManageMembers) => {
                Decision::Forbidden("your role cannot manage members")
            }
            (Role::Operator | Role::Viewer, _) => Decision::Forbidden("your role cannot do this"),
        }
    }

    /// Whether the caller may do `action` to `target`.
    pub fn can_member(&self, action: MemberAction, target: TargetFacts<'_>) -> Decision {
        let is_self = self.principal == Principal::Member && target.user_id == self.user_id;
        if is_self {
            return match action {
                MemberAction::Read => Decision::Allow,
                MemberAction::EditProfile if self.role == Role::Owner => Decision::Allow,
                MemberAction::ChangeRoleOrRegions
                | MemberAction::ChangeStatus
                | MemberAction::Delete
                | MemberAction::Approve
                | MemberAction::Reject => {
                    Decision::Forbidden("you cannot change your own role, regions or status, or delete yourself")
                }
                MemberAction::ResetPassword => {
                    Decision::Forbidden("change your own password with POST /api/v1/auth/password")
                }
                MemberAction::EditProfile => Decision::Forbidden("your role cannot edit member profiles"),
            };
        }
        match self.role {
            Role::Owner => Decision::Allow,
            Role::Admin if self.admin_active() => {
                if !self.scope.covers_member(target.regions) {
                    return Decision::NotFound;
                }
                match action {
                    MemberAction::Read => Decision::Allow,
                    _ if target.role.is_below_admin() => Decision::Allow,
                    _ => Decision::Forbidden("admins can only manage operators and viewers"),
                }
            }
            Role::Admin | Role::Operator | Role::Viewer => match action {
                MemberAction::Read => Decision::NotFound,
                // Decided without looking at the target: the role can never write members.
                _ => Decision::Forbidden("your role cannot manage members"),
            },
        }
    }

    /// Decided before looking anything up: a role that can never do `action` to another
    /// member is refused with 403 whether or not the target exists, so the answer leaks
    /// nothing. Everything else is decided by [`Actor::can_member`] on the loaded target.
    pub fn can_ever(&self, action: MemberAction) -> Decision {
        match (self.role, action) {
            (_, MemberAction::Read) | (Role::Owner, _) => Decision::Allow,
            (Role::Admin, _) if self.admin_active() => Decision::Allow,
            (Role::Admin, _) => Decision::Forbidden("this tenant has turned user administration off for admins"),
            (Role::Operator | Role::Viewer, _) => Decision::Forbidden("your role cannot manage members"),
        }
    }

    /// Whether the caller may give a member this role and these regions (creating, or
    /// changing them): an admin never grants more than it has.
    pub fn can_grant(&self, role: Role, regions: &[RegionId]) -> Result<(), (&'static str, String)> {
        match self.role {
            Role::Owner => Ok(()),
            Role::Admin if self.admin_active() => {
                if !role.is_below_admin() {
                    return Err(("role", format!("admins can only grant operator or viewer, not {}", role.as_str())));
                }
                if regions.is_empty() {
                    return Err((
                        "regions",
                        "give at least one of your regions: members without regions are managed by owners only".into(),
                    ));
                }
                if let Some(outside) = regions.iter().find(|r| !self.scope.contains(r)) {
                    return Err(("regions", format!("region {outside} is outside your regions")));
                }
                Ok(())
            }
            _ => Err(("role", "your role cannot grant roles".into())),
        }
    }
}

// ---------------------------------------------------------------- the API's answer

impl Decision {
    /// The decision as the API answers it: go on, 404 (the member is not there for this
    /// caller), or 403 with the reason.
    pub fn or_refuse(self) -> Result<(), ApiError> {
        match self {
            Decision::Allow => Ok(()),
            Decision::NotFound => Err(ApiError::not_found("member not found")),
            Decision::Forbidden(why) => Err(ApiError::forbidden("forbidden", why)),
        }
    }
}

impl Actor {
    /// [`Actor::can`], answered: 403 with the reason when refused.
    pub fn require(&self, action: TenantAction) -> Result<(), ApiError> {
        self.can(action).or_refuse()
    }

    /// [`Actor::can_grant`], answered: 403 `grant-exceeds-own` naming the field.
    pub fn require_grant(&self, role: Role, regions: &[RegionId]) -> Result<(), ApiError> {
        self.can_grant(role, regions)
            .map_err(|(field, why)| ApiError::forbidden("grant-exceeds-own", format!("{field}: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(n: u128) -> RegionId {
        RegionId(uuid::Uuid::from_u128(n))
    }
    fn uid(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }
    fn actor(role: Role, regions: &[u128]) -> Actor {
        Actor {
            user_id: uid(1),
            principal: Principal::Member,
            role,
            scope: if role == Role::Owner {
                RegionScope::Tenant
            } else {
                RegionScope::Regions(regions.iter().map(|n| rid(*n)).collect())
            },
            admins_can_manage_users: true,
        }
    }

    #[test]
    fn admin_scope_rules() {
        let admin = actor(Role::Admin, &[10, 11]);
        let in_scope = [rid(10)];
        let mixed = [rid(10), rid(20)];
        let viewer_in = TargetFacts { user_id: uid(2), role: Role::Viewer, regions: &in_scope };
        let viewer_mixed = TargetFacts { user_id: uid(2), role: Role::Viewer, regions: &mixed };
        let viewer_none = TargetFacts { user_id: uid(2), role: Role::Viewer, regions: &[] };
        let admin_in = TargetFacts { user_id: uid(3), role: Role::Admin, regions: &in_scope };
        assert_eq!(admin.can_member(MemberAction::ChangeStatus, viewer_in), Decision::Allow);
        assert_eq!(admin.can_member(MemberAction::Read, viewer_mixed), Decision::NotFound);
        assert_eq!(admin.can_member(MemberAction::Read, viewer_none), Decision::NotFound);
        assert_eq!(admin.can_member(MemberAction::Read, admin_in), Decision::Allow);
        assert!(matches!(admin.can_member(MemberAction::Delete, admin_in), Decision::Forbidden(_)));
        assert!(admin.can_grant(Role::Viewer, &in_scope).is_ok());
        assert!(admin.can_grant(Role::Admin, &in_scope).is_err());
        assert!(admin.can_grant(Role::Viewer, &mixed).is_err());
        assert!(admin.can_grant(Role::Viewer, &[]).is_err());
    }

    #[test]
    fn nobody_changes_themselves() {
        for role in Role::ALL {
            let a = actor(role, &[10]);
            let me = TargetFacts { user_id: uid(1), role, regions: &[] };
            assert_eq!(a.can_member(MemberAction::Read, me), Decision::Allow);
            for action in [MemberAction::ChangeRoleOrRegions, MemberAction::ChangeStatus, MemberAction::Delete] {
                assert!(matches!(a.can_member(action, me), Decision::Forbidden(_)), "{role:?} {action:?}");
            }
        }
    }

    /// DESIGN.md section 3, the tenant-wide rows: every tenant action (a row each) x every
    /// role, and an admin with user administration switched off.
    #[test]
    fn tenant_actions_cell_by_cell() {
        use TenantAction::*;
        let mut switched_off = actor(Role::Admin, &[10]);
        switched_off.admins_can_manage_users = false;
        let callers = [
            ("owner", actor(Role::Owner, &[])),
            ("admin", actor(Role::Admin, &[10])),
            ("admin, administration off", switched_off),
            ("operator", actor(Role::Operator, &[10])),
            ("viewer", actor(Role::Viewer, &[10])),
        ];
        // Allowed for: owner, admin, admin with administration off, operator, viewer.
        let table = [
            (ReadTenant, [true, true, true, true, true]),
            (ListMembers, [true, true, true, true, true]),
            (CreateMember, [true, true, false, false, false]),
            (ReadDepartments, [true, true, false, false, false]),
            (ManageDepartments, [true, true, false, false, false]),
            (ManageTenant, [true, false, false, false, false]),
            (ReadAudit, [true, false, false, false, false]),
            (ExportMembers, [true, false, false, false, false]),
            (BulkManageMembers, [true, true, false, false, false]),
            (ManageApiKeys, [true, false, false, false, false]),
            (ManageWebhooks, [true, false, false, false, false]),
            (ReadEvents, [true, false, false, false, false]),
            (ReadGroups, [true, true, false, false, false]),
            (MapGroupRoles, [true, false, false, false, false]),
            (ManageSso, [true, false, false, false, false]),
        ];
        assert_eq!(table.map(|(action, _)| action), TenantAction::ALL, "a row for every action, in order");
        for (action, allowed) in table {
            for ((name, who), allow) in callers.iter().zip(allowed) {
                let got = who.can(action);
                if allow {
                    assert_eq!(got, Decision::Allow, "{name} {action:?}");
                } else {
                    assert!(matches!(got, Decision::Forbidden(_)), "{name} {action:?}: {got:?}");
                }
            }
        }
        // A bulk action is refused as a single change of status would be.
        for (name, who) in &callers {
            assert_eq!(who.can(BulkManageMembers), who.can_ever(MemberAction::ChangeStatus), "{name}");
        }
    }

    /// An API key acts through the same table with its own role, except that no key manages
    /// keys, and "self" never matches a key (its id is no user's, but the rule does not rely on it).
    #[test]
    fn keys_use_the_table_but_never_manage_keys_nor_are_self() {
        for role in Role::ALL {
            let mut key = actor(role, &[10]);
            key.principal = Principal::ApiKey { name: "ci".into() };
            let member = actor(role, &[10]);
            for action in TenantAction::ALL {
                if action == TenantAction::ManageApiKeys {
                    assert!(matches!(key.can(action), Decision::Forbidden(_)), "{role:?} key {action:?}");
                } else {
                    assert_eq!(key.can(action), member.can(action), "{role:?} key {action:?}");
                }
            }
            let same_id = TargetFacts { user_id: uid(1), role: Role::Viewer, regions: &[] };
            let got = key.can_member(MemberAction::ChangeStatus, same_id);
            assert_eq!(
                got,
                actor(role, &[10]).can_member(MemberAction::ChangeStatus, TargetFacts { user_id: uid(9), ..same_id })
            );
        }
    }

    /// Approving is decided as enabling is, rejecting as deleting, for every caller and target
    /// (in scope, out of scope, above admin, without regions).
    #[test]
    fn approve_and_reject_follow_enable_and_delete() {
        let mut switched_off = actor(Role::Admin, &[10]);
        switched_off.admins_can_manage_users = false;
        let callers = [
            actor(Role::Owner, &[]),
            actor(Role::Admin, &[10]),
            switched_off,
            actor(Role::Operator, &[10]),
            actor(Role::Viewer, &[10]),
        ];
        let (inside, outside) = ([rid(10)], [rid(20)]);
        for caller in &callers {
            for role in Role::ALL {
                for regions in [&inside[..], &outside[..], &[]] {
                    let target = TargetFacts { user_id: uid(2), role, regions };
                    let (enable, delete) = (
                        caller.can_member(MemberAction::ChangeStatus, target),
                        caller.can_member(MemberAction::Delete, target),
                    );
                    assert_eq!(caller.can_member(MemberAction::Approve, target), enable, "{caller:?} {role:?}");
                    assert_eq!(caller.can_member(MemberAction::Reject, target), delete, "{caller:?} {role:?}");
                }
            }
            assert_eq!(caller.can_ever(MemberAction::Approve), caller.can_ever(MemberAction::ChangeStatus));
            assert_eq!(caller.can_ever(MemberAction::Reject), caller.can_ever(MemberAction::Delete));
        }
        let viewer_in = TargetFacts { user_id: uid(2), role: Role::Viewer, regions: &inside };
        assert_eq!(actor(Role::Admin, &[10]).can_member(MemberAction::Approve, viewer_in), Decision::Allow);
        let admin_in = TargetFacts { user_id: uid(2), role: Role::Admin, regions: &inside };
        assert!(matches!(actor(Role::Admin, &[10]).can_member(MemberAction::Reject, admin_in), Decision::Forbidden(_)));
    }

    #[test]
    fn admins_switched_off_keep_only_self() {
        let mut admin = actor(Role::Admin, &[10]);
        admin.admins_can_manage_users = false;
        let target = TargetFacts { user_id: uid(2), role: Role::Viewer, regions: &[rid(10)] };
        assert_eq!(admin.member_visibility(), MemberVisibility::SelfOnly);
        assert_eq!(admin.can_member(MemberAction::Read, target), Decision::NotFound);
        assert!(matches!(admin.can(TenantAction::CreateMember), Decision::Forbidden(_)));
    }
}
