//! What members look like on the wire, and how requests become domain values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::{Problems, clean, double_option};
use crate::domain::ids::parse_stored;
use crate::domain::{EmailAddress, MemberStatus, RegionId, Role, UserId};
use crate::store::members::{ListFilter, MemberPatch, MemberRecord, NewMember, SortKey, StatusFilter};

/// A member of the tenant. `id` is the person's user id.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30", "email": "ann@acme.example", "username": "ann",
    "full_name": "Ann Smith", "role": "operator", "status": "active",
    "regions": ["01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e40"], "job_title": "Dispatcher",
    "department": "Operations", "section": "North", "manager_id": null,
    "created_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z", "last_login_at": null,
    "os_username": null, "version": 1
}))]
pub struct MemberView {
    pub id: UserId,
    pub email: String,
    pub username: Option<String>,
    pub full_name: String,
    pub role: Role,
    pub status: MemberStatus,
    /// Region ids.
    pub regions: Vec<RegionId>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub section: Option<String>,
    /// The user id of this member's manager (a member of the same tenant).
    pub manager_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Last sign-in to this tenant.
    pub last_login_at: Option<DateTime<Utc>>,
    /// The OS username a device agent enrolled the member under (unique in the tenant).
    #[serde(default)]
    pub os_username: Option<String>,
    /// Set while sign-in is locked after repeated failed attempts (UTC); an owner or admin
    /// can clear it with `DELETE .../users/{user_id}/lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
    /// Changes on every write; the `ETag` carries it for `If-Match`.
    pub version: i32,
}

impl From<&MemberRecord> for MemberView {
    fn from(rec: &MemberRecord) -> Self {
        let m = &rec.membership;
        MemberView {
            id: parse_stored(&m.user_id),
            email: rec.email.clone(),
            username: rec.username.clone(),
            full_name: rec.full_name.clone(),
            role: Role::parse(&m.role).unwrap_or(Role::Viewer),
            status: MemberStatus::parse(&m.status).unwrap_or(MemberStatus::Disabled),
            regions: rec.regions.iter().map(|r| parse_stored(r)).collect(),
            job_title: m.job_title.clone(),
            department: m.department.clone(),
            section: m.section.clone(),
            manager_id: m.manager_id.as_deref().map(parse_stored),
            created_at: m.created_at.and_utc(),
            updated_at: m.updated_at.and_utc(),
            last_login_at: m.last_login_at.map(|t| t.and_utc()),
            os_username: rec.os_username.clone(),
            locked_until: rec.locked_until.filter(|until| *until > crate::domain::now()).map(|t| t.and_utc()),
            version: m.version,
        }
    }
}

/// A page of members.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<MemberView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Members matching the filters (all pages).
    pub total: i64,
}

/// Filters, sort and paging for the member list.
#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Search in name, username and email (case-insensitive, substring).
    #[param(schema_with = crate::api::params::text200)]
    pub q: Option<String>,
    /// `owner`, `admin`, `operator` or `viewer`.
    #[param(schema_with = crate::api::params::role)]
    pub role: Option<String>,
    /// `active`, `inactive` (not active), `all` (default), or an exact status:
    /// `disabled`, `invited`, `pending_approval`.
    #[param(schema_with = crate::api::params::member_status)]
    pub status: Option<String>,
    #[param(schema_with = crate::api::params::text200)]
    pub department: Option<String>,
    #[param(schema_with = crate::api::params::text200)]
    pub section: Option<String>,
    /// A region id: members in it or in any of its sub-regions.
    #[param(schema_with = crate::api::params::uuid)]
    pub region: Option<String>,
    /// A manager's user id: their direct reports.
    #[param(schema_with = crate::api::params::uuid)]
    pub manager: Option<String>,
    /// Created at or after this time: RFC 3339 (`2026-11-01T09:00:00Z`) or a date (`2026-11-01`,
    /// midnight UTC).
    #[param(schema_with = crate::api::params::instant)]
    pub created_after: Option<String>,
    /// Created before this time (same forms).
    #[param(schema_with = crate::api::params::instant)]
    pub created_before: Option<String>,
    /// Last signed in to this tenant at or after this time (never signed in: excluded).
    #[param(schema_with = crate::api::params::instant)]
    pub last_login_after: Option<String>,
    /// Last signed in to this tenant before this time (never signed in: excluded).
    #[param(schema_with = crate::api::params::instant)]
    pub last_login_before: Option<String>,
    /// `name`, `email`, `role`, `job_title`, `department` or `created_at`; prefix `-` for
    /// descending. Default `name`.
    #[param(schema_with = crate::api::params::member_sort)]
    pub sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn parse(self) -> Result<ListFilter, crate::error::ApiError> {
        let mut p = Problems::default();
        let role = match clean(self.role) {
            None => None,
            Some(r) => {
                let parsed = Role::parse(&r);
                if parsed.is_none() {
                    p.add("role", format!("must be owner, admin, operator or viewer (got {r:?})"));
                }
                parsed
            }
        };
        let status = match clean(self.status).as_deref() {
            None | Some("all") => StatusFilter::All,
            Some("inactive") => StatusFilter::Inactive,
            Some(s) => match MemberStatus::parse(s) {
                Some(st) => StatusFilter::Exact(st),
                None => {
                    p.add(
                        "status",
                        format!("must be active, inactive, all, disabled, invited or pending_approval (got {s:?})"),
                    );
                    StatusFilter::All
                }
            },
        };
        let region = clean(self.region)
            .and_then(|r| p.check("region", r.parse::<RegionId>().map_err(|_| "must be a region id (UUID)")));
        let manager = clean(self.manager)
            .and_then(|r| p.check("manager", r.parse::<UserId>().map_err(|_| "must be a user id (UUID)")));
        let (sort, desc) = match clean(self.sort) {
            None => (SortKey::Name, false),
            Some(s) => SortKey::parse(&s).unwrap_or_else(|| {
                p.add("sort", format!("must be name, email, role, job_title, department or created_at, optionally with a leading - (got {s:?})"));
                (SortKey::Name, false)
            }),
        };
        let limit = match crate::api::page_limit(self.limit) {
            Ok(l) => l,
            Err(_) => {
                p.add("limit", "must be between 1 and 200");
                50
            }
        };
        let mut time = |field: &str, raw: Option<String>| {
            clean(raw).and_then(|v| p.check(field, crate::domain::time::parse_instant(&v)))
        };
        let created_after = time("created_after", self.created_after);
        let created_before = time("created_before", self.created_before);
        let last_login_after = time("last_login_after", self.last_login_after);
        let last_login_before = time("last_login_before", self.last_login_before);
        let q = clean(self.q);
        if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
            p.add("q", "must be at most 200 characters");
        }
        p.finish()?;
        Ok(ListFilter {
            q,
            role,
            status,
            department: clean(self.department),
            section: clean(self.section),
            region,
            manager,
            created: (created_after, created_before),
            last_login: (last_login_after, last_login_before),
            sort,
            desc,
            cursor: clean(self.cursor),
            limit,
        })
    }
}

fn parse_username(p: &mut Problems, field: &str, raw: &str) -> Option<String> {
    let u = raw.trim().to_lowercase();
    let ok_chars = u.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !(3..=64).contains(&u.chars().count()) || !ok_chars {
        p.add(field, "must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-'");
        return None;
    }
    if u.contains('@') {
        p.add(field, "must not look like an email address");
        return None;
    }
    Some(u)
}

pub(crate) fn parse_regions(p: &mut Problems, regions: &[String]) -> Vec<RegionId> {
    let mut out = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        match r.parse::<RegionId>() {
            Ok(id) if !out.contains(&id) => out.push(id),
            Ok(_) => p.add(format!("regions[{i}]"), "is listed twice"),
            Err(_) => p.add(format!("regions[{i}]"), "must be a region id (UUID)"),
        }
    }
    out
}

fn parse_user_id(p: &mut Problems, field: &str, raw: &str) -> Option<UserId> {
    p.check(field, raw.parse::<UserId>().map_err(|_| "must be a user id (UUID)"))
}

/// A new member. Without `temporary_password` one is generated and returned once; either way
/// the member must choose their own password at first sign-in.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ann@acme.example", "full_name": "Ann Smith", "role": "operator",
    "regions": [], "job_title": "Dispatcher", "department": "Operations"
}))]
pub struct CreateMemberRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub full_name: String,
    #[schema(pattern = r"^[A-Za-z0-9._-]{3,64}$")]
    pub username: Option<String>,
    pub role: Role,
    #[serde(default)]
    #[schema(value_type = BTreeSet<RegionId>)]
    pub regions: Vec<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub job_title: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub department: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub section: Option<String>,
    #[schema(value_type = Option<UserId>)]
    pub manager_id: Option<String>,
    /// `active` (default) or `disabled`.
    pub status: Option<SettableStatus>,
    /// A temporary password you choose (the member changes it at first sign-in).
    #[schema(min_length = 8, max_length = 256)]
    pub temporary_password: Option<String>,
    /// `temporary_password` (default): the answer carries one, shown once. `email`: no
    /// password; the member gets an email with a link (7 days, single use) to choose one.
    #[serde(default)]
    pub delivery: Delivery,
}

impl CreateMemberRequest {
    pub fn parse(self) -> Result<(NewMember, Option<String>), crate::error::ApiError> {
        let mut p = Problems::validated(&self);
        let email = p.check("email", EmailAddress::parse(&self.email));
        let full_name = self.full_name.trim().to_string();
        if full_name.is_empty() && !p.0.iter().any(|e| e.field == "full_name") {
            p.add("full_name", "must not be blank");
        }
        let username = clean(self.username).and_then(|u| parse_username(&mut p, "username", &u));
        let regions = parse_regions(&mut p, &self.regions);
        let manager_id = clean(self.manager_id).and_then(|m| parse_user_id(&mut p, "manager_id", &m));
        let status = self.status.map(MemberStatus::from).unwrap_or(MemberStatus::Active);
        if !matches!(status, MemberStatus::Active | MemberStatus::Disabled) {
            p.add("status", "must be active or disabled (invite people to make them invited)");
        }
        p.finish()?;
        let email = email.ok_or_else(|| crate::error::ApiError::internal("email parsed"))?;
        Ok((
            NewMember {
                email,
                full_name,
                username,
                role: self.role,
                regions,
                job_title: clean(self.job_title),
                department: clean(self.department),
                section: clean(self.section),
                manager_id,
                status,
            },
            self.temporary_password,
        ))
    }
}

/// The created member and, this once, its temporary password.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MemberCreated {
    #[serde(flatten)]
    pub member: MemberView,
    /// Shown only in this response; give it to the member, who must change it at first
    /// sign-in. Absent with `delivery: email`.
    #[schema(example = "q3Vt0b1Yx9J2mWcK4hN7sA")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
    /// How the member gets in: `temporary_password` or `email`.
    #[schema(example = "temporary_password")]
    pub delivery: String,
}

/// Fields to change. Absent fields stay; `null` clears an optional field. `email`,
/// `username` and `full_name` change only for identities this tenant manages.
#[derive(Deserialize, ToSchema, Validate, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"job_title": "Team lead", "role": "operator"}))]
pub struct UpdateMemberRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{3,64}$")]
    pub username: Option<Option<String>>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub full_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub job_title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub section: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<UserId>)]
    pub manager_id: Option<Option<String>>,
    pub role: Option<Role>,
    #[schema(value_type = Option<BTreeSet<RegionId>>)]
    pub regions: Option<Vec<String>>,
}

fn clean_text(p: &mut Problems, field: &str, v: Option<Option<String>>) -> Option<Option<String>> {
    v.map(|inner| {
        let c = clean(inner);
        if c.as_ref().is_some_and(|s| s.chars().count() > 200) {
            p.add(field, "must be at most 200 characters");
        }
        c
    })
}

impl UpdateMemberRequest {
    pub fn parse(self) -> Result<MemberPatch, crate::error::ApiError> {
        let mut p = Problems::validated(&self);
        let email = self.email.and_then(|e| p.check("email", EmailAddress::parse(&e)));
        let username = self.username.map(|u| clean(u).and_then(|u| parse_username(&mut p, "username", &u)));
        let full_name = self.full_name.map(|n| n.trim().to_string());
        if full_name.as_deref() == Some("") {
            p.add("full_name", "must not be blank");
        }
        let job_title = clean_text(&mut p, "job_title", self.job_title);
        let department = clean_text(&mut p, "department", self.department);
        let section = clean_text(&mut p, "section", self.section);
        let manager_id = self.manager_id.map(|m| clean(m).and_then(|m| parse_user_id(&mut p, "manager_id", &m)));
        let regions = self.regions.map(|r| parse_regions(&mut p, &r));
        p.finish()?;
        Ok(MemberPatch {
            email,
            username,
            full_name,
            job_title,
            department,
            section,
            manager_id,
            role: self.role,
            regions,
        })
    }
}

/// The status to set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "disabled"}))]
pub struct StatusRequest {
    /// `active` or `disabled`.
    pub status: SettableStatus,
}

/// The statuses an owner or admin sets directly (`pending_approval` ends by approving or
/// rejecting; invitations are their own resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettableStatus {
    Active,
    Disabled,
}

impl From<SettableStatus> for MemberStatus {
    fn from(s: SettableStatus) -> Self {
        match s {
            SettableStatus::Active => MemberStatus::Active,
            SettableStatus::Disabled => MemberStatus::Disabled,
        }
    }
}

/// How a member gets (back) in after an admin creates them or resets their password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A temporary password in the answer, shown once; the member must change it at sign-in.
    #[default]
    TemporaryPassword,
    /// An email with a single-use link to choose a password (one hour for a reset, 7 days for
    /// a new member).
    Email,
}

/// Optional: how to deliver, and a temporary password you choose instead of a generated one.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminPasswordResetRequest, example = json!({"delivery": "email"}))]
pub struct PasswordResetRequest {
    #[serde(default)]
    pub delivery: Delivery,
    #[schema(min_length = 8, max_length = 256)]
    pub temporary_password: Option<String>,
}

/// The reset link is on its way to the member.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PasswordResetEmailed {
    pub user_id: UserId,
    #[schema(example = "email")]
    pub delivery: String,
    #[schema(example = "A link to choose a new password is on its way to the member; it works once, for an hour.")]
    pub message: String,
}

/// The new temporary password, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PasswordResetResponse {
    pub user_id: UserId,
    #[schema(example = "q3Vt0b1Yx9J2mWcK4hN7sA")]
    pub temporary_password: String,
    /// Always true: the member must choose a new password at next sign-in.
    pub must_change_password: bool,
}

/// How many sessions an owner or admin ended.
#[derive(Serialize, ToSchema)]
pub struct SessionsEnded {
    pub user_id: UserId,
    #[schema(example = 2)]
    pub sessions_ended: i64,
}

/// How many of a value.
#[derive(Serialize, ToSchema)]
pub struct FacetCount {
    /// The value (null: members without a department).
    #[schema(example = "operator")]
    pub value: Option<String>,
    #[schema(example = 12)]
    pub count: i64,
}

/// Members in a region or its sub-regions: the `total` of the list filtered by `region=<id>`.
#[derive(Serialize, ToSchema)]
pub struct RegionCount {
    #[schema(format = Uuid)]
    pub region_id: String,
    #[schema(example = "North")]
    pub name: String,
    pub count: i64,
}

/// Counts for a filter sidebar, under your scope and the filters you sent.
#[derive(Serialize, ToSchema)]
pub struct MemberFacets {
    /// Members matching the filters.
    pub total: i64,
    pub roles: Vec<FacetCount>,
    pub statuses: Vec<FacetCount>,
    pub departments: Vec<FacetCount>,
    pub regions: Vec<RegionCount>,
}

impl From<crate::store::members::Facets> for MemberFacets {
    fn from(f: crate::store::members::Facets) -> Self {
        let counts =
            |v: Vec<(String, i64)>| v.into_iter().map(|(k, n)| FacetCount { value: Some(k), count: n }).collect();
        Self {
            total: f.total,
            roles: counts(f.roles),
            statuses: counts(f.statuses),
            departments: f.departments.into_iter().map(|(k, n)| FacetCount { value: k, count: n }).collect(),
            regions: f
                .regions
                .into_iter()
                .map(|(id, name, count)| RegionCount { region_id: id, name, count })
                .collect(),
        }
    }
}

/// A bulk action's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkActionName {
    Enable,
    Disable,
    Delete,
    /// Let in members a device agent enrolled (`pending_approval`).
    Approve,
    /// Turn away members a device agent enrolled (removed).
    Reject,
    ResetPassword,
    SetRole,
    SetDepartment,
}

/// One action for many members (at most 1,000).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "disable", "user_ids": ["01937a2f-0000-7000-8000-000000000001", "01937a2f-0000-7000-8000-000000000002"]}))]
pub struct BulkRequest {
    pub action: BulkActionName,
    #[schema(value_type = BTreeSet<UserId>, min_items = 1, max_items = 1000)]
    pub user_ids: Vec<String>,
    /// For `set_role`: the role to give.
    pub role: Option<Role>,
    /// For `set_department`: the department (`null` clears it; a new name creates it).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub department: Option<Option<String>>,
    /// For `set_department`: a section of that department (optional).
    #[schema(max_length = 200)]
    pub section: Option<String>,
}

impl BulkRequest {
    pub fn parse(self) -> Result<(crate::store::bulk::BulkAction, Vec<UserId>), crate::error::ApiError> {
        use crate::store::bulk::{BulkAction, MAX_ITEMS};
        let mut p = Problems::default();
        if self.user_ids.is_empty() || self.user_ids.len() > MAX_ITEMS {
            p.add("user_ids", format!("must list 1 to {MAX_ITEMS} user ids (got {})", self.user_ids.len()));
        }
        let mut seen = std::collections::HashSet::new();
        let mut ids = Vec::with_capacity(self.user_ids.len());
        for (i, raw) in self.user_ids.iter().enumerate() {
            match raw.parse::<UserId>() {
                Ok(id) if !seen.insert(id) => p.add(format!("user_ids[{i}]"), format!("{raw} is listed twice")),
                Ok(id) => ids.push(id),
                Err(_) => p.add(format!("user_ids[{i}]"), format!("must be a user id (UUID), got {raw:?}")),
            }
        }
        let wants_role = self.action == BulkActionName::SetRole;
        let wants_department = self.action == BulkActionName::SetDepartment;
        if wants_role != self.role.is_some() {
            p.add("role", if wants_role { "is required for set_role" } else { "only goes with set_role" });
        }
        if !wants_department && (self.department.is_some() || self.section.is_some()) {
            p.add("department", "department and section only go with set_department");
        }
        if wants_department && self.department.is_none() {
            p.add("department", "is required for set_department (null clears it)");
        }
        let department = self.department.flatten().and_then(|d| clean(Some(d)));
        let section = clean(self.section);
        for (field, value) in [("department", &department), ("section", &section)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
                p.add(field, "must be at most 200 characters");
            }
        }
        p.finish()?;
        let action = match self.action {
            BulkActionName::Enable => BulkAction::Enable,
            BulkActionName::Disable => BulkAction::Disable,
            BulkActionName::Delete => BulkAction::Delete,
            BulkActionName::Approve => BulkAction::Approve,
            BulkActionName::Reject => BulkAction::Reject,
            BulkActionName::ResetPassword => BulkAction::ResetPassword,
            BulkActionName::SetRole => BulkAction::SetRole(self.role.unwrap_or(Role::Viewer)),
            BulkActionName::SetDepartment => BulkAction::SetDepartment { department, section },
        };
        Ok((action, ids))
    }
}

/// How one item of a bulk action went.
#[derive(Serialize, ToSchema)]
pub struct BulkItemResult {
    pub user_id: UserId,
    pub ok: bool,
    /// The HTTP status this item alone would have answered.
    #[schema(example = 200)]
    pub status: u16,
    /// The member as it is now (absent after a delete, or on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberView>,
    /// `reset_password`: the new temporary password, shown only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<crate::error::ProblemDetails>,
}

/// Every item's outcome, in the order sent.
#[derive(Serialize, ToSchema)]
pub struct BulkResponse {
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<BulkItemResult>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportsParams {
    /// `direct` (default): direct reports only; `all`: everyone below, at any depth.
    #[param(schema_with = crate::api::params::depth)]
    pub depth: Option<String>,
}

/// A report and how far below the manager it is.
#[derive(Serialize, ToSchema)]
pub struct Report {
    #[serde(flatten)]
    pub member: MemberView,
    /// 1 for a direct report, 2 for a report's report, and so on.
    pub depth: i32,
}

/// A manager's reports you can see, by depth then name.
#[derive(Serialize, ToSchema)]
pub struct ReportList {
    pub items: Vec<Report>,
    pub total: usize,
}

/// A device a member was enrolled on by a device agent.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e90", "agent_id": "agent-7f3a2c", "hostname": "PC-042",
    "os": "Windows 11 Pro 23H2", "os_username": "jdoe", "api_key_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e70",
    "created_at": "2026-12-07T10:00:00Z", "last_enrolled_at": "2026-12-07T10:00:00Z"
}))]
pub struct DeviceView {
    /// The enrolment's id (what the agent polls).
    #[schema(format = Uuid)]
    pub id: String,
    pub agent_id: String,
    pub hostname: String,
    pub os: Option<String>,
    /// The OS username the agent reported.
    pub os_username: String,
    /// The agent key that enrolled it (last).
    #[schema(format = Uuid)]
    pub api_key_id: String,
    pub created_at: DateTime<Utc>,
    /// The agent's latest enrolment of this member on this device.
    pub last_enrolled_at: DateTime<Utc>,
}

impl From<crate::db::models::EnrollmentRow> for DeviceView {
    fn from(r: crate::db::models::EnrollmentRow) -> Self {
        DeviceView {
            id: r.id,
            agent_id: r.agent_id,
            hostname: r.hostname,
            os: r.os,
            os_username: r.os_username,
            api_key_id: r.api_key_id,
            created_at: r.created_at.and_utc(),
            last_enrolled_at: r.updated_at.and_utc(),
        }
    }
}

/// The devices of a member, oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<DeviceView>,
    pub total: usize,
}
