//! A member's placement: the department and section rows that a member's `department` and
//! `section` name, made the first time a name is used (by a member, an import or the
//! departments resource), once even when several transactions name it at the same moment.

use diesel::prelude::*;

use crate::db::schema::{departments::dsl as d, sections::dsl as s};
use crate::db::{AnyConnection, on_backend};
use crate::domain::now;
use crate::error::ApiError;

/// The id `find` finds, or else of the row `insert` makes. Another transaction may be making
/// the same row at this moment: the insert (`ON CONFLICT DO NOTHING`) waits for it, then
/// leaves it be, and `find` sees it.
fn find_or_insert(
    conn: &mut AnyConnection,
    what: &str,
    find: impl Fn(&mut AnyConnection) -> QueryResult<Option<String>>,
    insert: impl FnOnce(&mut AnyConnection) -> QueryResult<usize>,
) -> Result<String, ApiError> {
    if let Some(id) = find(conn)? {
        return Ok(id);
    }
    insert(conn)?;
    find(conn)?.ok_or_else(|| ApiError::internal(format!("{what} vanished")))
}

/// The department named `name`, created when the tenant has none yet. Inside the caller's
/// write transaction; safe when several create the same one at once.
pub(in crate::store) fn ensure_department(
    conn: &mut AnyConnection,
    tenant: &str,
    name: &str,
) -> Result<String, ApiError> {
    let find = |conn: &mut AnyConnection| {
        d::departments.filter(d::tenant_id.eq(tenant)).filter(d::name.eq(name)).select(d::id).first(conn).optional()
    };
    let insert = |conn: &mut AnyConnection| {
        let at = now();
        let values = (
            d::id.eq(uuid::Uuid::now_v7().to_string()),
            d::tenant_id.eq(tenant),
            d::name.eq(name),
            d::created_at.eq(at),
            d::updated_at.eq(at),
        );
        on_backend!(conn, |c| diesel::insert_into(d::departments)
            .values(values)
            .on_conflict((d::tenant_id, d::name))
            .do_nothing()
            .execute(c))
    };
    find_or_insert(conn, "department", find, insert)
}

/// The section `name` of department `department` (an id), created when it has none yet.
pub(in crate::store) fn ensure_section(
    conn: &mut AnyConnection,
    tenant: &str,
    department: &str,
    name: &str,
) -> Result<String, ApiError> {
    let find = |conn: &mut AnyConnection| {
        s::sections
            .filter(s::tenant_id.eq(tenant))
            .filter(s::department_id.eq(department))
            .filter(s::name.eq(name))
            .select(s::id)
            .first(conn)
            .optional()
    };
    let insert = |conn: &mut AnyConnection| {
        let at = now();
        let values = (
            s::id.eq(uuid::Uuid::now_v7().to_string()),
            s::tenant_id.eq(tenant),
            s::department_id.eq(department),
            s::name.eq(name),
            s::created_at.eq(at),
            s::updated_at.eq(at),
        );
        // No conflict target: the name's key is (department_id, name) on SQLite and
        // (tenant_id, department_id, name) on PostgreSQL; a fresh id never conflicts.
        on_backend!(conn, |c| diesel::insert_into(s::sections).values(values).on_conflict_do_nothing().execute(c))
    };
    find_or_insert(conn, "section", find, insert)
}

/// Makes sure a member's department and section exist (creating them as needed).
pub(in crate::store) fn ensure_for_member(
    conn: &mut AnyConnection,
    tenant: &str,
    department: Option<&str>,
    section: Option<&str>,
) -> Result<(), ApiError> {
    match (department, section) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            Err(ApiError::invalid("section", "a section belongs to a department: give `department` too"))
        }
        (Some(dept), section) => {
            let id = ensure_department(conn, tenant, dept)?;
            if let Some(section) = section {
                ensure_section(conn, tenant, &id, section)?;
            }
            Ok(())
        }
    }
}
