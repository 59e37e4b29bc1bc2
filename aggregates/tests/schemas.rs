//! The checked-in event schemas are the contract with integrators: they must match the
//! Rust types exactly, and every example must validate against its schema.
//!
//! Regenerate after changing an event type: `UPDATE_SCHEMAS=1 cargo test -p aggregates --test schemas`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aggregates::schema::catalogue;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

fn render(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("schemas serialize");
    text.push('\n');
    text
}

#[test]
fn checked_in_schemas_match_the_rust_types() {
    let dir = schema_dir();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut expected_files = BTreeSet::new();
    let mut stale = Vec::new();
    for entry in catalogue() {
        let path = dir.join(entry.relative_path());
        expected_files.insert(path.clone());
        let text = render(&entry.schema);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(entry.relative_path());
        }
    }
    // Files for event types that no longer exist are stale too.
    for aggregate_dir in std::fs::read_dir(&dir).unwrap().flatten() {
        if !aggregate_dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(aggregate_dir.path()).unwrap().flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "json") && !expected_files.contains(&path) {
                if update {
                    std::fs::remove_file(&path).unwrap();
                } else {
                    stale.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "event schemas out of date (run `UPDATE_SCHEMAS=1 cargo test -p aggregates --test schemas`): {stale:?}"
    );
}

#[test]
fn every_example_validates_against_its_schema() {
    let all = catalogue();
    assert!(!all.is_empty());
    for entry in all {
        let validator = jsonschema::draft202012::new(&entry.schema)
            .unwrap_or_else(|e| panic!("{}: invalid schema: {e}", entry.relative_path()));
        let example = entry.example();
        assert!(!example.is_null(), "{}: no example", entry.relative_path());
        let errors: Vec<String> = validator
            .iter_errors(example)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", entry.relative_path());
    }
}

#[test]
fn a_wrong_payload_fails_validation() {
    // Guards the test above: the validator really rejects a payload that breaks the schema.
    let entry = catalogue()
        .into_iter()
        .find(|e| e.event_type == "ProductCreated")
        .expect("ProductCreated is in the catalogue");
    let validator = jsonschema::draft202012::new(&entry.schema).unwrap();
    let mut bad = entry.example().clone();
    bad["prices"]["EUR"]["amount"] = serde_json::json!("19.99");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn event_types_are_unique_per_aggregate() {
    let mut seen = BTreeSet::new();
    for entry in catalogue() {
        assert!(
            seen.insert((entry.aggregate, entry.event_type)),
            "duplicate event type {}/{}",
            entry.aggregate,
            entry.event_type
        );
    }
}
