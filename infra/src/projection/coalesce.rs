//! Folds the row changes of one batch that hit the same row into one statement, so a
//! batch costs a statement per row touched rather than per change (an order's placement,
//! confirmation, payment and delivery become one upsert of its summary).
//!
//! Two changes of one table and key merge only when the merged statement has the same
//! effect whether or not the row existed; otherwise both are kept, in order. Changes to
//! other rows commute with them (no view has triggers or foreign keys), but a delete of
//! the key, or a change of the same table keyed by other columns, ends merging for it.

use std::collections::HashMap;

use projections::{Change, Op, Set, Value};

/// A change with the position of the first event merged into it (for error reports).
pub(crate) struct Pending {
    pub change: Change,
    pub position: i64,
}

#[derive(Default)]
pub(crate) struct Coalescer {
    pending: Vec<Pending>,
    /// (table, key values) → index in `pending` of the change later ones may merge into.
    rows: HashMap<(&'static str, String), usize>,
    /// The key columns each table was last changed by.
    shapes: HashMap<&'static str, Vec<&'static str>>,
}

impl Coalescer {
    pub(crate) fn push(&mut self, change: Change, position: i64) {
        let table = change.table;
        let columns: Vec<&'static str> = change.key.iter().map(|(c, _)| *c).collect();
        if self.shapes.get(table).is_some_and(|s| *s != columns) {
            self.rows.retain(|(t, _), _| *t != table);
        }
        self.shapes.insert(table, columns);
        let row = (table, format!("{:?}", change.key));
        if change.op == Op::Delete {
            self.rows.remove(&row);
            self.pending.push(Pending { change, position });
            return;
        }
        if let Some(&i) = self.rows.get(&row) {
            if let Some(merged) = merge(&self.pending[i].change, &change) {
                self.pending[i].change = merged;
                return;
            }
        }
        self.rows.insert(row, self.pending.len());
        self.pending.push(Pending { change, position });
    }

    pub(crate) fn into_changes(self) -> Vec<Pending> {
        self.pending
    }
}

/// `earlier` then `later` (same table and key) as one change, when that is exact.
fn merge(earlier: &Change, later: &Change) -> Option<Change> {
    let upsert = match (&earlier.op, &later.op) {
        (Op::Upsert, Op::Update | Op::Upsert) => true,
        (Op::Update, Op::Update) => false,
        _ => return None,
    };
    let mut merged = earlier.clone();
    for (column, set) in &later.columns {
        let at = merged.columns.iter().position(|(c, _)| c == column);
        match set {
            // Ignored by an update, and by an upsert that conflicts with the row `earlier`
            // inserted or updated.
            Set::Init(_) => {}
            Set::Value(v) => match at {
                Some(i) => merged.columns[i].1 = Set::Value(v.clone()),
                None => merged.columns.push((column, Set::Value(v.clone()))),
            },
            Set::Add(d) => match at.map(|i| (i, &merged.columns[i].1)) {
                Some((i, Set::Add(e))) => merged.columns[i].1 = Set::Add(e.checked_add(*d)?),
                Some((i, Set::Value(Value::Int(x)))) => {
                    merged.columns[i].1 = Set::Value(Value::Int(x.checked_add(*d)?))
                }
                // An update adds to whatever the row holds.
                None if !upsert => merged.columns.push((column, Set::Add(*d))),
                // Insert-only or non-integer values, or a column the insert leaves
                // unset: the sum depends on whether the row existed.
                _ => return None,
            },
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use projections::row::key;
    use projections::{Change, Set, Value};

    use super::Coalescer;

    fn run(changes: Vec<Change>) -> Vec<Change> {
        let mut c = Coalescer::default();
        for (i, change) in changes.into_iter().enumerate() {
            c.push(change, i as i64);
        }
        c.into_changes().into_iter().map(|p| p.change).collect()
    }

    #[test]
    fn later_changes_of_a_row_fold_into_its_upsert() {
        let out = run(vec![
            Change::upsert("t", key("id", "a"))
                .set("s", "placed")
                .set("n", 0i64),
            Change::upsert("t", key("id", "b")).set("s", "placed"),
            Change::update("t", key("id", "a"))
                .set("s", "confirmed")
                .add("n", 5),
            Change::update("t", key("id", "a"))
                .add("n", 2)
                .init("x", 1i64),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].columns,
            vec![
                ("s", Set::Value(Value::from("confirmed"))),
                ("n", Set::Value(Value::Int(7)))
            ]
        );
    }

    #[test]
    fn counters_merge_and_unknowable_sums_do_not() {
        let out = run(vec![
            Change::upsert("d", key("day", "x")).add("orders", 1),
            Change::upsert("d", key("day", "x")).add("orders", 1),
            Change::upsert("c", key("id", "a")).init("orders", 1i64),
            Change::update("c", key("id", "a")).add("orders", 1),
            Change::upsert("e", key("id", "a")).set("y", 1i64),
            Change::update("e", key("id", "a")).add("z", 1),
        ]);
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].columns, vec![("orders", Set::Add(2))]);
    }

    #[test]
    fn deletes_and_other_key_shapes_end_merging() {
        let out = run(vec![
            Change::upsert("l", key("id", "a")).set("q", 1i64),
            Change::delete("l", key("id", "a")),
            Change::update("l", key("id", "a")).set("q", 2i64),
            Change::update("l", key("sku", "s")).set("q", 3i64),
            Change::update("l", key("id", "a")).set("q", 4i64),
        ]);
        assert_eq!(out.len(), 5);
    }
}
