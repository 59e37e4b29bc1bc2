//! What changed between two JSON documents (two states of one aggregate), as a list of
//! JSON-pointer paths with the value before and after.

use serde::Serialize;
use serde_json::Value;

/// One changed value. `before` is `None` for an added path, `after` for a removed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// A JSON pointer (RFC 6901), e.g. `/details/paid/amount`.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Every leaf that differs, depth first, object keys in order. Arrays are compared
/// index by index; a value whose type changed is reported whole.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut changes);
    changes
}

fn walk(path: String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(format!("{path}/{}", escape(k)), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}/{i}"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path: if path.is_empty() { "/".into() } else { path },
            before: a.cloned(),
            after: b.cloned(),
        }),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changed_added_and_removed_leaves_are_listed_by_path() {
        let before = json!({"status": "Placed", "paid": {"amount": 0}, "lines": [1], "a/b": 1});
        let after = json!({"status": "Confirmed", "paid": {"amount": 500}, "lines": [1, 2]});
        let changes = diff(&before, &after);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/a~1b", "/lines/1", "/paid/amount", "/status"]);
        assert_eq!(changes[0].after, None);
        assert_eq!(changes[1].before, None);
        assert_eq!(changes[2].after, Some(json!(500)));
        assert!(diff(&before, &before).is_empty());
    }
}
