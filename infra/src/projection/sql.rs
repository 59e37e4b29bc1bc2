//! Row changes as SQL: one statement per [`Change`], the same text on PostgreSQL and
//! SQLite (`$n` parameters, `INSERT … ON CONFLICT … DO UPDATE`), run in the transaction
//! that also moves the projection's checkpoint.

use std::fmt::Write;

use projections::{Change, Op, Set, Value};
use sqlx::{PgConnection, SqliteConnection};

/// Where a projection writes: its live tables, or the shadow tables of a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Live,
    Shadow(i64),
}

impl Target {
    /// The physical name of view table `table`.
    pub(crate) fn table(&self, table: &str) -> String {
        match self {
            Target::Live => table.to_string(),
            Target::Shadow(version) => shadow_name(table, *version),
        }
    }
}

/// The table a rebuild to `version` fills before the swap.
pub(crate) fn shadow_name(table: &str, version: i64) -> String {
    format!("{table}__v{version}")
}

/// A statement and the values of its parameters (nulls are written as `NULL` literals,
/// since PostgreSQL could not infer the type of an untyped null parameter).
pub(crate) struct Statement<'c> {
    pub sql: String,
    pub params: Vec<Param<'c>>,
}

/// A parameter: a value of the change, or an increment.
pub(crate) enum Param<'c> {
    Value(&'c Value),
    Int(i64),
}

impl<'c> Statement<'c> {
    fn param(&mut self, value: &'c Value) -> String {
        if matches!(value, Value::Null) {
            return "NULL".into();
        }
        self.params.push(Param::Value(value));
        format!("${}", self.params.len())
    }
}

/// The SQL of `change` against physical table `table`; `None` when it changes nothing
/// (an update without columns).
pub(crate) fn statement<'c>(change: &'c Change, table: &str) -> Option<Statement<'c>> {
    let mut s = Statement {
        sql: String::with_capacity(256),
        params: Vec::with_capacity(change.key.len() + change.columns.len()),
    };
    match change.op {
        Op::Upsert => {
            let mut names = Vec::new();
            let mut values = Vec::new();
            for (column, value) in &change.key {
                names.push(*column);
                values.push(s.param(value));
            }
            let mut updates = Vec::new();
            for (column, set) in &change.columns {
                names.push(*column);
                match set {
                    Set::Value(v) => {
                        values.push(s.param(v));
                        updates.push(format!("{column} = excluded.{column}"));
                    }
                    Set::Add(delta) => {
                        values.push(s.param_int(*delta));
                        updates.push(format!("{column} = {table}.{column} + excluded.{column}"));
                    }
                    Set::Init(v) => values.push(s.param(v)),
                }
            }
            let keys: Vec<&str> = change.key.iter().map(|(c, _)| *c).collect();
            let _ = write!(
                s.sql,
                "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO ",
                names.join(", "),
                values.join(", "),
                keys.join(", ")
            );
            if updates.is_empty() {
                s.sql.push_str("NOTHING");
            } else {
                let _ = write!(s.sql, "UPDATE SET {}", updates.join(", "));
            }
        }
        Op::Update => {
            let mut updates = Vec::new();
            for (column, set) in &change.columns {
                match set {
                    Set::Value(v) => {
                        let p = s.param(v);
                        updates.push(format!("{column} = {p}"));
                    }
                    Set::Add(delta) => {
                        let p = s.param_int(*delta);
                        updates.push(format!("{column} = {column} + {p}"));
                    }
                    Set::Init(_) => {}
                }
            }
            if updates.is_empty() {
                return None;
            }
            let _ = write!(s.sql, "UPDATE {table} SET {}", updates.join(", "));
            s.where_key(&change.key);
        }
        Op::Delete => {
            let _ = write!(s.sql, "DELETE FROM {table}");
            s.where_key(&change.key);
        }
    }
    Some(s)
}

impl<'c> Statement<'c> {
    fn param_int(&mut self, delta: i64) -> String {
        self.params.push(Param::Int(delta));
        format!("${}", self.params.len())
    }

    fn where_key(&mut self, key: &'c [(&'static str, Value)]) {
        for (i, (column, value)) in key.iter().enumerate() {
            let p = self.param(value);
            let op = if p == "NULL" { "IS" } else { "=" };
            let _ = write!(
                self.sql,
                "{} {column} {op} {p}",
                if i == 0 { " WHERE" } else { " AND" }
            );
        }
    }
}

macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::Value(Value::Text(v)) => query.bind(v.as_str()),
                Param::Value(Value::Int(v)) => query.bind(*v),
                Param::Value(Value::Bool(v)) => query.bind(*v),
                Param::Value(Value::Time(v)) => query.bind(*v),
                Param::Value(Value::Null) => query,
            };
        }
        query
    }};
}

/// Runs `change` on `table` (PostgreSQL).
pub(crate) async fn apply_pg(
    conn: &mut PgConnection,
    change: &Change,
    table: &str,
) -> Result<(), sqlx::Error> {
    if let Some(s) = statement(change, table) {
        bind_all!(sqlx::query(&s.sql), &s.params)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Runs `change` on `table` (SQLite).
pub(crate) async fn apply_sqlite(
    conn: &mut SqliteConnection,
    change: &Change,
    table: &str,
) -> Result<(), sqlx::Error> {
    if let Some(s) = statement(change, table) {
        bind_all!(sqlx::query(&s.sql), &s.params)
            .execute(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use projections::row::{key, key2};
    use projections::Change;

    use super::statement;

    #[test]
    fn an_upsert_sets_values_adds_counters_and_keeps_insert_only_columns() {
        let change = Change::upsert("sales_daily", key2("day", "2026-11-02", "currency", "EUR"))
            .add("orders", 1)
            .set("updated_at", "x")
            .init("first", "y");
        let s = statement(&change, "sales_daily__v2").unwrap();
        assert_eq!(
            s.sql,
            "INSERT INTO sales_daily__v2 (day, currency, orders, updated_at, first) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (day, currency) DO UPDATE SET \
             orders = sales_daily__v2.orders + excluded.orders, updated_at = excluded.updated_at"
        );
        assert_eq!(s.params.len(), 5);
    }

    #[test]
    fn nulls_are_literals_and_empty_updates_are_skipped() {
        let change = Change::update("carts", key("cart_id", "c1"))
            .set("order_id", Option::<String>::None)
            .add("item_count", -2);
        let s = statement(&change, "carts").unwrap();
        assert_eq!(
            s.sql,
            "UPDATE carts SET order_id = NULL, item_count = item_count + $1 WHERE cart_id = $2"
        );
        assert_eq!(s.params.len(), 2);
        let nothing = Change::update("carts", key("cart_id", "c1")).init("x", 1i64);
        assert!(statement(&nothing, "carts").is_none());
        let delete = Change::delete("cart_lines", key2("cart_id", "c1", "sku", "A"));
        assert_eq!(
            statement(&delete, "cart_lines").unwrap().sql,
            "DELETE FROM cart_lines WHERE cart_id = $1 AND sku = $2"
        );
    }
}
