//! `column IN (ids)` with one bind, so the statement has the same text for any number of ids
//! and stays in the connection's prepared-statement cache. Diesel's `eq_any` writes one
//! placeholder per value and so prepares the statement afresh every time, which for a page of
//! 50 members was a tenth of the request.

use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bool, Text};
use diesel::sqlite::Sqlite;
use diesel::{Column, QueryResult};

use super::MultiBackend;

/// `column` is one of `ids`: `IN (SELECT value FROM json_each(?))` on SQLite, `= ANY(?)` on
/// PostgreSQL.
pub fn among<C>(column: C, ids: &[impl AsRef<str>]) -> Among<C> {
    let ids: Vec<String> = ids.iter().map(|id| id.as_ref().to_string()).collect();
    let json = serde_json::Value::from(ids.clone()).to_string();
    Among { column, ids, json }
}

#[derive(Debug, Clone)]
pub struct Among<C> {
    column: C,
    ids: Vec<String>,
    /// The ids as a JSON array, SQLite's one bind.
    json: String,
}

impl<C> Expression for Among<C> {
    type SqlType = Bool;
}

impl<C: Column, QS> AppearsOnTable<QS> for Among<C> where C: AppearsOnTable<QS> {}
impl<C: Column, QS> SelectableExpression<QS> for Among<C> where C: SelectableExpression<QS> {}

impl<C, GB> ValidGrouping<GB> for Among<C> {
    type IsAggregate = is_aggregate::Never;
}

impl<C> QueryId for Among<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C: QueryFragment<Sqlite>> QueryFragment<Sqlite> for Among<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, String>(&self.json)?;
        out.push_sql("))");
        Ok(())
    }
}

impl<C: QueryFragment<Pg>> QueryFragment<Pg> for Among<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" = ANY(");
        out.push_bind_param::<Array<Text>, Vec<String>>(&self.ids)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<C: QueryFragment<Sqlite> + QueryFragment<Pg>> QueryFragment<MultiBackend> for Among<C> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        MultiBackend::walk_variant_ast(self, pass)
    }
}
