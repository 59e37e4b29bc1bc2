//! The row-change vocabulary: what a projection asks of its tables.
//!
//! A fold never reads a table; it says what to write. Three operations cover every view:
//! an upsert keyed by the table's primary key, an update of the rows matching a key, and
//! a delete. Columns are set to a value, incremented, or set only when the row is first
//! inserted. The SQL stores in `infra::projection` turn a [`Change`] into one statement of
//! either dialect (PostgreSQL and SQLite share `INSERT … ON CONFLICT … DO UPDATE`), so the
//! same fold drives both backends.

use chrono::{DateTime, Utc};

/// A column value. Money is two columns (`*_minor` and `currency`), never a float.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::Int(i64::from(v))
    }
}

/// Counts beyond `i64::MAX` cannot occur in a commerce log; they saturate rather than wrap.
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Time(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// How one column changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Set {
    /// Written on insert and on update.
    Value(Value),
    /// Added to the stored value on update; the initial value on insert.
    Add(i64),
    /// Written on insert only; an existing row keeps its value (first-seen facts such as
    /// a customer's first order).
    Init(Value),
}

/// What happens to the matched rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert the row (key + columns), or update the columns of the existing one. The key
    /// must be the table's primary key.
    Upsert,
    /// Update the columns of every row matching the key; no row, no change. The key may
    /// be any columns (e.g. every warehouse row of a SKU).
    Update,
    /// Delete every row matching the key.
    Delete,
}

/// One change to one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: &'static str,
    pub op: Op,
    pub key: Vec<(&'static str, Value)>,
    pub columns: Vec<(&'static str, Set)>,
}

impl Change {
    fn new(table: &'static str, op: Op, key: Vec<(&'static str, Value)>) -> Self {
        Self {
            table,
            op,
            key,
            columns: Vec::new(),
        }
    }

    pub fn upsert(table: &'static str, key: Vec<(&'static str, Value)>) -> Self {
        Self::new(table, Op::Upsert, key)
    }

    pub fn update(table: &'static str, key: Vec<(&'static str, Value)>) -> Self {
        Self::new(table, Op::Update, key)
    }

    pub fn delete(table: &'static str, key: Vec<(&'static str, Value)>) -> Self {
        Self::new(table, Op::Delete, key)
    }

    /// Sets `column` to `value`.
    pub fn set(mut self, column: &'static str, value: impl Into<Value>) -> Self {
        self.columns.push((column, Set::Value(value.into())));
        self
    }

    /// Adds `delta` to `column`.
    pub fn add(mut self, column: &'static str, delta: i64) -> Self {
        self.columns.push((column, Set::Add(delta)));
        self
    }

    /// Sets `column` only when the row is inserted.
    pub fn init(mut self, column: &'static str, value: impl Into<Value>) -> Self {
        self.columns.push((column, Set::Init(value.into())));
        self
    }

    /// The statement's shape (table, operation, column names and kinds), which is all the
    /// SQL text depends on: stores cache prepared text by it.
    pub fn shape(&self) -> Shape {
        Shape {
            table: self.table,
            op: match self.op {
                Op::Upsert => 0,
                Op::Update => 1,
                Op::Delete => 2,
            },
            key: self.key.iter().map(|(c, _)| *c).collect(),
            columns: self
                .columns
                .iter()
                .map(|(c, s)| {
                    (
                        *c,
                        match s {
                            Set::Value(_) => 0,
                            Set::Add(_) => 1,
                            Set::Init(_) => 2,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// See [`Change::shape`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    pub table: &'static str,
    op: u8,
    key: Vec<&'static str>,
    columns: Vec<(&'static str, u8)>,
}

/// A key of one column.
pub fn key(column: &'static str, value: impl Into<Value>) -> Vec<(&'static str, Value)> {
    vec![(column, value.into())]
}

/// A key of two columns.
pub fn key2(
    first: &'static str,
    first_value: impl Into<Value>,
    second: &'static str,
    second_value: impl Into<Value>,
) -> Vec<(&'static str, Value)> {
    vec![(first, first_value.into()), (second, second_value.into())]
}
