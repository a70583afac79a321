//! CSV import of members: the file is read and every row checked (shape, policy, duplicates in
//! the file and against the tenant, seats for the whole file) before anything is written; a
//! real run then creates every member in one transaction, or none.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::members::{Joining, Person, SignIn, new_member_rows};
use super::outbox::Mailer;
use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::among::among;
use crate::db::models::AuditRow;
use crate::db::schema::{
    audit_events::dsl as a, membership_regions::dsl as mr, memberships::dsl as m, regions::dsl as r, tenants::dsl as t,
    users::dsl as u,
};
use crate::db::{AnyConnection, on_backend};
use crate::domain::password::{digest_generated, generate_secret};
use crate::domain::{EmailAddress, MemberStatus, Role, UserId, now};
use crate::error::{ApiError, FieldError};

/// Most data rows in one file.
pub const MAX_ROWS: usize = 10_000;
/// Largest file.
pub const MAX_BYTES: usize = 5 * 1024 * 1024;

const COLUMNS: [&str; 10] = [
    "email",
    "full_name",
    "username",
    "job_title",
    "department",
    "section",
    "role",
    "regions",
    "manager_email",
    "status",
];

/// One data row, checked for shape.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its line in the file (the header is line 1).
    pub line: usize,
    pub email: EmailAddress,
    pub full_name: String,
    pub username: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub section: Option<String>,
    pub role: Role,
    /// Region names or ids, as written.
    pub regions: Vec<String>,
    pub manager_email: Option<String>,
    pub status: MemberStatus,
}

fn file_problem(detail: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new("file", detail)])
}

/// UTF-8 text without its byte-order mark, or a clear refusal.
fn decode(bytes: &[u8]) -> Result<&str, ApiError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(file_problem("the file is UTF-16; save it as CSV UTF-8"));
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        file_problem(format!("the file is not UTF-8 text (line {line} has a byte that is not); save it as CSV UTF-8"))
    })?;
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(file_problem(format!("line {line} holds the NUL character, which no field may contain")));
    }
    Ok(text)
}

/// `;` when the header line has more semicolons than commas (outside quotes), else `,`.
fn separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    let (mut quoted, mut commas, mut semicolons) = (false, 0, 0);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}

fn optional(value: &str, line: usize, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.chars().count() > 200 {
        errors.push(FieldError::at_row(line, field, "must be at most 200 characters"));
        return None;
    }
    Some(v.to_string())
}

/// Reads the file: encoding, separator, header and each row's shape. Problems with single rows
/// are collected (every one of them); a file that cannot be read at all is refused at once.
pub fn parse(bytes: &[u8]) -> Result<(Vec<Row>, Vec<FieldError>), ApiError> {
    let text = decode(bytes)?;
    if text.trim().is_empty() {
        return Err(file_problem("the file is empty; the first line must name the columns (email, full_name, ...)"));
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(text))
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| file_problem(format!("the header line cannot be read: {e}")))?.clone();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut errors = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_lowercase().replace([' ', '-'], "_");
        match COLUMNS.iter().find(|c| **c == name) {
            Some(known) if index.contains_key(known) => {
                errors.push(FieldError::at_row(1, name.clone(), "this column appears twice"))
            }
            Some(known) => {
                index.insert(known, i);
            }
            None => errors.push(FieldError::at_row(
                1,
                if name.is_empty() { format!("column {}", i + 1) } else { name.clone() },
                format!("unknown column; the columns are {}", COLUMNS.join(", ")),
            )),
        }
    }
    for required in ["email", "full_name"] {
        if !index.contains_key(required) {
            errors.push(FieldError::at_row(1, required, "this column is required"));
        }
    }
    if !errors.is_empty() {
        return Ok((Vec::new(), errors));
    }
    let mut rows = Vec::new();
    // Lines counted from byte offsets (the reader's own count skips blank lines), incrementally.
    let (mut counted_to, mut line_at) = (0usize, 1usize);
    for record in reader.records() {
        let record = record.map_err(|e| file_problem(format!("the file is not valid CSV: {e}")))?;
        let mut byte = record.position().map(|p| p.byte() as usize).unwrap_or(counted_to).min(text.len());
        // A record after blank lines is placed where the blank lines start.
        while matches!(text.as_bytes().get(byte), Some(b'\n' | b'\r')) {
            byte += 1;
        }
        line_at += text.as_bytes()[counted_to.min(byte)..byte].iter().filter(|b| **b == b'\n').count();
        counted_to = byte;
        let line = line_at;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if rows.len() + 1 > MAX_ROWS {
            return Err(file_problem(format!("the file has more than {MAX_ROWS} rows; split it")));
        }
        if record.len() != header.len() {
            errors.push(FieldError::at_row(
                line,
                "row",
                format!("has {} fields; the header has {}", record.len(), header.len()),
            ));
            continue;
        }
        let get = |c: &str| index.get(c).and_then(|&i| record.get(i)).unwrap_or("").trim();
        let before = errors.len();
        let email = match EmailAddress::parse(get("email")) {
            Ok(e) => Some(e),
            Err(why) => {
                errors.push(FieldError::at_row(line, "email", why.to_string()));
                None
            }
        };
        let full_name = get("full_name").to_string();
        if full_name.is_empty() || full_name.chars().count() > 200 {
            errors.push(FieldError::at_row(line, "full_name", "is required (at most 200 characters)"));
        }
        let username = match get("username") {
            "" => None,
            raw => {
                let name = raw.to_lowercase();
                let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if !(3..=64).contains(&name.chars().count()) || !ok {
                    errors.push(FieldError::at_row(
                        line,
                        "username",
                        "must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-'",
                    ));
                }
                Some(name)
            }
        };
        let role = match get("role").to_lowercase().as_str() {
            "" => Role::Viewer,
            other => Role::parse(other).unwrap_or_else(|| {
                errors.push(FieldError::at_row(
                    line,
                    "role",
                    format!("must be owner, admin, operator or viewer (got {other:?})"),
                ));
                Role::Viewer
            }),
        };
        let status = match get("status").to_lowercase().as_str() {
            "" | "active" => MemberStatus::Active,
            "disabled" => MemberStatus::Disabled,
            other => {
                errors.push(FieldError::at_row(line, "status", format!("must be active or disabled (got {other:?})")));
                MemberStatus::Active
            }
        };
        let department = optional(get("department"), line, "department", &mut errors);
        let section = optional(get("section"), line, "section", &mut errors);
        if section.is_some() && department.is_none() {
            errors.push(FieldError::at_row(
                line,
                "section",
                "a section belongs to a department: fill in department too",
            ));
        }
        let regions: Vec<String> =
            get("regions").split(['|', ';']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        let manager_email = match get("manager_email") {
            "" => None,
            raw => match EmailAddress::parse(raw) {
                Ok(e) => Some(e.as_str().to_string()),
                Err(why) => {
                    errors.push(FieldError::at_row(line, "manager_email", why.to_string()));
                    None
                }
            },
        };
        if errors.len() > before {
            continue;
        }
        let Some(email) = email else { continue };
        rows.push(Row {
            line,
            email,
            full_name,
            username,
            job_title: optional(get("job_title"), line, "job_title", &mut errors),
            department,
            section,
            role,
            regions,
            manager_email,
            status,
        });
    }
    if rows.is_empty() && errors.is_empty() {
        return Err(file_problem("the file has a header but no rows"));
    }
    Ok((rows, errors))
}

/// How new members get in.
pub enum Delivery<'a> {
    /// A generated temporary password each, in the answer once.
    TemporaryPasswords,
    /// An email each with a link to choose a password.
    Emails(&'a Mailer<'a>),
}

/// A member the import made (or, in a dry run, would make).
pub struct Imported {
    pub line: usize,
    pub user_id: UserId,
    pub email: String,
    pub full_name: String,
    pub temporary_password: Option<SecretString>,
}

/// A checked row, ready to write.
struct Ready {
    row: Row,
    user_id: UserId,
    regions: Vec<String>,
    manager_id: Option<String>,
}

/// Checks every row against the policy and the tenant, then (unless `dry_run`) creates them
/// all in one transaction. Row problems come back as one 422 listing each of them.
pub fn run(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    rows: Vec<Row>,
    mut errors: Vec<FieldError>,
    dry_run: bool,
    delivery: Delivery<'_>,
) -> Result<Vec<Imported>, ApiError> {
    ctx.actor().require(TenantAction::CreateMember)?;
    let tenant = ctx.tenant_text();
    let actor = ctx.actor().clone();
    crate::store::tenant_write(conn, ctx, |conn| {
        let region_rows: Vec<(String, String)> =
            r::regions.filter(r::tenant_id.eq(&tenant)).select((r::id, r::name)).load(conn)?;
        let mut region_ids: HashMap<String, String> = HashMap::new();
        for (id, name) in &region_rows {
            region_ids.insert(id.clone(), id.clone());
            region_ids.insert(name.to_lowercase(), id.clone());
        }
        // Who already exists: identities by email, members of this tenant, usernames taken.
        let emails: Vec<String> = rows.iter().map(|r| r.email.as_str().to_string()).collect();
        let known: HashMap<String, String> =
            u::users.filter(among(u::email, &emails)).select((u::email, u::id)).load(conn)?.into_iter().collect();
        let known_ids: Vec<String> = known.values().cloned().collect();
        let members_here: HashSet<String> = m::memberships
            .filter(m::tenant_id.eq(&tenant))
            .filter(among(m::user_id, &known_ids))
            .select(m::user_id)
            .load(conn)?
            .into_iter()
            .collect();
        let usernames: Vec<String> = rows.iter().filter_map(|r| r.username.clone()).collect();
        let taken: HashSet<String> = if usernames.is_empty() {
            HashSet::new()
        } else {
            u::users
                .filter(u::username.eq_any(&usernames))
                .select(u::username.assume_not_null())
                .load(conn)?
                .into_iter()
                .collect()
        };
        let manager_emails: Vec<String> = rows.iter().filter_map(|r| r.manager_email.clone()).collect();
        let managers_here: HashMap<String, String> = m::memberships
            .inner_join(u::users)
            .filter(m::tenant_id.eq(&tenant))
            .filter(among(u::email, &manager_emails))
            .select((u::email, m::user_id))
            .load(conn)?
            .into_iter()
            .collect();

        let mut in_file: HashMap<String, (usize, UserId)> = HashMap::new();
        let mut usernames_in_file: HashMap<String, usize> = HashMap::new();
        let mut ready: Vec<Ready> = Vec::with_capacity(rows.len());
        for row in &rows {
            let line = row.line;
            let email = row.email.as_str();
            if let Some((first, _)) = in_file.get(email) {
                errors.push(FieldError::at_row(line, "email", format!("{email} is also on line {first}")));
                continue;
            }
            in_file.insert(email.to_string(), (line, UserId::new()));
        }
        for row in rows {
            let line = row.line;
            let email = row.email.as_str().to_string();
            let Some(&(first, user_id)) = in_file.get(&email) else { continue };
            if first != line {
                continue;
            }
            let before = errors.len();
            match known.get(&email) {
                Some(id) if members_here.contains(id) => errors.push(FieldError::at_row(
                    line,
                    "email",
                    format!("{email} is already a member of this tenant"),
                )),
                Some(_) => errors.push(FieldError::at_row(
                    line,
                    "email",
                    format!("{email} already has a Roster account; invite them instead"),
                )),
                None => {}
            }
            if let Some(name) = &row.username {
                if taken.contains(name) {
                    errors.push(FieldError::at_row(line, "username", format!("{name:?} is already taken")));
                } else if let Some(other) = usernames_in_file.insert(name.clone(), line) {
                    errors.push(FieldError::at_row(line, "username", format!("{name:?} is also on line {other}")));
                }
            }
            let mut regions = Vec::new();
            for wanted in &row.regions {
                match region_ids.get(&wanted.to_lowercase()).or_else(|| region_ids.get(wanted)) {
                    Some(id) => regions.push(id.clone()),
                    None => {
                        errors.push(FieldError::at_row(line, "regions", format!("no region {wanted:?} in this tenant")))
                    }
                }
            }
            regions.sort();
            regions.dedup();
            let parsed: Vec<crate::domain::RegionId> =
                regions.iter().map(|s| crate::domain::ids::parse_stored(s)).collect();
            if errors.len() == before
                && let Err((field, why)) = actor.can_grant(row.role, &parsed)
            {
                errors.push(FieldError::at_row(line, field, why));
            }
            let manager_id = match &row.manager_email {
                None => None,
                Some(boss) if *boss == email => {
                    errors.push(FieldError::at_row(line, "manager_email", "a member cannot be their own manager"));
                    None
                }
                Some(boss) => match (managers_here.get(boss), in_file.get(boss)) {
                    (Some(id), _) => Some(id.clone()),
                    (None, Some((_, id))) => Some(id.as_text()),
                    (None, None) => {
                        errors.push(FieldError::at_row(
                            line,
                            "manager_email",
                            format!("{boss} is neither a member of this tenant nor in the file"),
                        ));
                        None
                    }
                },
            };
            if errors.len() == before {
                ready.push(Ready { row, user_id, regions, manager_id });
            }
        }
        // Reporting lines inside the file must not loop.
        let manager_of: HashMap<String, String> =
            ready.iter().filter_map(|r| r.manager_id.clone().map(|m| (r.user_id.as_text(), m))).collect();
        for item in &ready {
            let start = item.user_id.as_text();
            let mut seen = HashSet::new();
            let mut at = manager_of.get(&start);
            while let Some(next) = at {
                if *next == start {
                    errors.push(FieldError::at_row(
                        item.row.line,
                        "manager_email",
                        "the managers in the file form a cycle",
                    ));
                    break;
                }
                if !seen.insert(next.clone()) {
                    break;
                }
                at = manager_of.get(next);
            }
        }
        // Seats, for the whole file.
        let adding = ready.iter().filter(|r| r.row.status.takes_seat()).count() as i64;
        if let Some(limit) = super::members::seat_limit(conn, &tenant)? {
            let used = super::members::seats_used(conn, &tenant)?;
            if used + adding > limit {
                errors.push(FieldError::new(
                    "file",
                    format!(
                        "the file adds {adding} members who take a seat, but only {} of the plan's {limit} seats are free",
                        (limit - used).max(0)
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.row);
            return Err(ApiError::Validation(errors));
        }
        if dry_run {
            return Ok(ready
                .into_iter()
                .map(|r| Imported {
                    line: r.row.line,
                    user_id: r.user_id,
                    email: r.row.email.as_str().to_string(),
                    full_name: r.row.full_name,
                    temporary_password: None,
                })
                .collect());
        }
        write(conn, ctx, ready, delivery)
    })
}

fn write(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    ready: Vec<Ready>,
    delivery: Delivery<'_>,
) -> Result<Vec<Imported>, ApiError> {
    let tenant = ctx.tenant_text();
    let at = now();
    let mut users = Vec::with_capacity(ready.len());
    let mut memberships = Vec::with_capacity(ready.len());
    let mut links: Vec<(String, String, String)> = Vec::new();
    let mut audits = Vec::with_capacity(ready.len() + 1);
    let mut out = Vec::with_capacity(ready.len());
    let mut placements: HashSet<(String, Option<String>)> = HashSet::new();
    for item in &ready {
        let row = &item.row;
        let uid = item.user_id.as_text();
        let (secret, sign_in) = match delivery {
            Delivery::TemporaryPasswords => {
                let secret = generate_secret();
                let hash = digest_generated(&secret);
                (Some(secret), SignIn::Temporary(hash))
            }
            Delivery::Emails(_) => (None, SignIn::NoPasswordYet),
        };
        let person = Person {
            user_id: &uid,
            email: row.email.as_str(),
            username: row.username.as_deref(),
            full_name: &row.full_name,
            sign_in,
        };
        let joining = Joining {
            tenant: tenant.clone(),
            role: row.role,
            status: row.status,
            job_title: row.job_title.clone(),
            department: row.department.clone(),
            section: row.section.clone(),
            manager_id: item.manager_id.clone(),
        };
        let (user, membership) = new_member_rows(person, joining, at);
        users.extend(user);
        memberships.push(membership);
        for region in &item.regions {
            links.push((tenant.clone(), uid.clone(), region.clone()));
        }
        if let Some(department) = &row.department {
            placements.insert((department.clone(), row.section.clone()));
        }
        audits.push(AuditRow {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            tenant_id: tenant.clone(),
            actor_type: ctx.actor().audit_identity().0.into(),
            actor_id: Some(ctx.actor().user_id.as_text()),
            action: "member.created".into(),
            target_type: "member".into(),
            target_id: Some(uid.clone()),
            before_state: None,
            after_state: Some(
                json!({
                    "email": row.email.as_str(), "username": row.username, "full_name": row.full_name,
                    "role": row.role.as_str(), "status": row.status.as_str(), "regions": item.regions,
                    "job_title": row.job_title, "department": row.department, "section": row.section,
                    "manager_id": item.manager_id, "imported_from_line": row.line,
                })
                .to_string(),
            ),
            request_id: ctx.meta().request_id.clone(),
            ip: ctx.meta().ip.clone(),
            created_at: at,
            actor_name: ctx.actor().audit_identity().2,
        });
        out.push(Imported {
            line: row.line,
            user_id: item.user_id,
            email: row.email.as_str().to_string(),
            full_name: row.full_name.clone(),
            temporary_password: secret,
        });
    }
    for (department, section) in &placements {
        super::placement::ensure_for_member(conn, &tenant, Some(department), section.as_deref())?;
    }
    // Many rows per statement (well under SQLite's 32,766 bound values): a multi-row insert
    // runs on the backend's own connection.
    for chunk in users.chunks(1000) {
        on_backend!(&mut *conn, |c| diesel::insert_into(u::users).values(chunk).execute(c))?;
    }
    // Members first without managers (a manager may be a later row), then their managers.
    let managers: Vec<(String, String)> =
        memberships.iter().filter_map(|m| m.manager_id.clone().map(|b| (m.user_id.clone(), b))).collect();
    for membership in &mut memberships {
        membership.manager_id = None;
    }
    for chunk in memberships.chunks(1000) {
        on_backend!(&mut *conn, |c| diesel::insert_into(m::memberships).values(chunk).execute(c))?;
    }
    for (member, boss) in &managers {
        diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(member)))
            .set(m::manager_id.eq(Some(boss)))
            .execute(conn)?;
    }
    for chunk in links.chunks(1000) {
        let values: Vec<_> =
            chunk.iter().map(|(t, u, r)| (mr::tenant_id.eq(t), mr::user_id.eq(u), mr::region_id.eq(r))).collect();
        on_backend!(&mut *conn, |c| diesel::insert_into(mr::membership_regions).values(values).execute(c))?;
    }
    for chunk in audits.chunks(1000) {
        on_backend!(&mut *conn, |c| diesel::insert_into(a::audit_events).values(chunk).execute(c))?;
    }
    super::events::emit(conn, &tenant, &audits)?;
    if let Delivery::Emails(mailer) = delivery {
        let tenant_name: String = t::tenants.filter(t::id.eq(&tenant)).select(t::name).first(conn)?;
        let creator: String = match ctx.actor().audit_identity() {
            (_, _, Some(key_name)) => key_name,
            _ => u::users.filter(u::id.eq(ctx.actor().user_id.as_text())).select(u::full_name).first(conn)?,
        };
        for user in &users {
            super::resets::issue_set_password(
                conn,
                mailer.master,
                user,
                (&tenant, &tenant_name),
                &creator,
                mailer.app_url,
            )?;
        }
    }
    audit::record(
        conn,
        ctx,
        AuditEntry {
            action: "members.imported",
            target_type: "tenant",
            target_id: Some(tenant.clone()),
            before: None,
            after: Some(json!({"created": out.len()})),
        },
    )?;
    Ok(out)
}
