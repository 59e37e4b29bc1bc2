//! Which events a subscription receives.
//!
//! A filter is a list of patterns over the webhook type `<stream_type>.<event_type>`:
//!
//! * `*`: every event;
//! * `order.*`: every event of stream type `order`;
//! * `order.OrderPlaced`: exactly that event type of that stream type.
//!
//! An empty list means every event. An event matches when any pattern matches.

use serde::{Deserialize, Serialize};

/// Most patterns in one filter.
pub const MAX_PATTERNS: usize = 50;
/// Longest pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 200;

/// A validated event-type filter. Patterns are kept in the order given, duplicates removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct EventFilter {
    patterns: Vec<String>,
}

impl EventFilter {
    /// Checks and normalizes `patterns`. The error says which pattern is wrong and why.
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        if patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "at most {MAX_PATTERNS} event type patterns are allowed, got {}",
                patterns.len()
            ));
        }
        let mut kept: Vec<String> = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            validate(&pattern)?;
            if !kept.contains(&pattern) {
                kept.push(pattern);
            }
        }
        Ok(Self { patterns: kept })
    }

    /// The patterns, in the order given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether an event of `stream_type` and `event_type` passes the filter.
    pub fn matches(&self, stream_type: &str, event_type: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|pattern| {
                if pattern == "*" {
                    return true;
                }
                match pattern.split_once('.') {
                    Some((st, "*")) => st == stream_type,
                    Some((st, et)) => st == stream_type && et == event_type,
                    None => false,
                }
            })
    }
}

impl TryFrom<Vec<String>> for EventFilter {
    type Error = String;

    fn try_from(patterns: Vec<String>) -> Result<Self, String> {
        Self::new(patterns)
    }
}

impl From<EventFilter> for Vec<String> {
    fn from(filter: EventFilter) -> Self {
        filter.patterns
    }
}

fn validate(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "event type pattern `{}…` is longer than {MAX_PATTERN_LEN} bytes",
            pattern.chars().take(40).collect::<String>()
        ));
    }
    let usage = "use `*`, `<stream_type>.*` or `<stream_type>.<event_type>`";
    let Some((stream_type, event_type)) = pattern.split_once('.') else {
        return Err(format!(
            "event type pattern `{pattern}` has no `.`: {usage}"
        ));
    };
    let is_name = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !is_name(stream_type) || !(event_type == "*" || is_name(event_type)) {
        return Err(format!(
            "event type pattern `{pattern}` is malformed: {usage}, names of letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> EventFilter {
        EventFilter::new(patterns.iter().map(|p| p.to_string()).collect()).unwrap()
    }

    #[test]
    fn empty_and_star_match_everything() {
        assert!(filter(&[]).matches("order", "OrderPlaced"));
        assert!(filter(&["*"]).matches("cart", "ItemAdded"));
    }

    #[test]
    fn stream_type_wildcards_and_exact_types() {
        let f = filter(&["order.*", "cart.ItemAdded"]);
        assert!(f.matches("order", "OrderPlaced"));
        assert!(f.matches("order", "OrderShipped"));
        assert!(f.matches("cart", "ItemAdded"));
        assert!(!f.matches("cart", "ItemRemoved"));
        assert!(!f.matches("orders", "OrderPlaced"));
        assert!(!f.matches("payment", "ItemAdded"));
    }

    #[test]
    fn malformed_patterns_and_too_many_are_refused() {
        for bad in [
            "order",
            ".x",
            "order.",
            "*.OrderPlaced",
            "order.Order Placed",
            "a.b.c",
            "",
        ] {
            assert!(
                EventFilter::new(vec![bad.to_string()]).is_err(),
                "{bad} accepted"
            );
        }
        let many = (0..=MAX_PATTERNS).map(|i| format!("s{i}.*")).collect();
        assert!(EventFilter::new(many).is_err());
        assert!(EventFilter::new(vec!["x".repeat(MAX_PATTERN_LEN + 1)]).is_err());
    }

    #[test]
    fn duplicates_are_dropped_and_order_kept() {
        let f = filter(&["order.*", "cart.*", "order.*"]);
        assert_eq!(f.patterns(), ["order.*", "cart.*"]);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"["order.*","cart.*"]"#);
        let back: EventFilter = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<EventFilter>(r#"["nope"]"#).is_err());
    }
}
