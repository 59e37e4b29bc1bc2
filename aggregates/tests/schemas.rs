//! The checked-in event schemas are the contract with integrators: they must match the
//! Rust types exactly, every example must validate against its schema, and a published
//! schema never changes.
//!
//! Regenerate after changing an event type: `UPDATE_SCHEMAS=1 cargo test -p aggregates --test schemas`.
//!
//! Every published file is pinned by its SHA-256 in `schemas/events/published.sha256`
//! (`sha256sum` format, so `cd schemas/events && sha256sum -c published.sha256` checks it
//! too). Regeneration writes new files and appends their pins, but refuses to rewrite or
//! remove a pinned file: stored events of that version exist, so a new shape must be a new
//! version with an upcaster. Re-pinning a file on purpose means deleting its line from the
//! pin file by hand, where a reviewer sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aggregates::schema::catalogue;

const PIN_FILE: &str = "published.sha256";

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

fn render(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("schemas serialize");
    text.push('\n');
    text
}

/// Pins by path relative to the schema folder.
type Pins = BTreeMap<String, String>;

fn read_pins(dir: &Path) -> Pins {
    let text = std::fs::read_to_string(dir.join(PIN_FILE)).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (hash, path) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("{PIN_FILE}: `{line}` is not `<sha256>  <path>`"));
            (path.to_string(), hash.to_string())
        })
        .collect()
}

fn append_pins(dir: &Path, new: &Pins) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(PIN_FILE))
        .expect("open pin file");
    for (path, hash) in new {
        writeln!(file, "{hash}  {path}").expect("write pin");
    }
}

/// The schema files under `dir`, relative to it.
fn files_on_disk(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for aggregate_dir in std::fs::read_dir(dir).unwrap().flatten() {
        if !aggregate_dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(aggregate_dir.path()).unwrap().flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "json") {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy();
                files.insert(relative.replace('\\', "/"));
            }
        }
    }
    files
}

/// What a regeneration did, or would do without `write`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Regeneration {
    /// Files whose content differs from the types (written when allowed).
    stale: Vec<String>,
    /// Pinned files whose content would change or which would be removed: never touched.
    refused: Vec<String>,
    /// Pins appended for files written for the first time.
    pinned: Vec<String>,
}

/// Brings `dir` in line with `rendered` (path → text). With `write`, unpinned files are
/// written or removed and new files pinned; pinned files are never rewritten or removed.
fn regenerate(dir: &Path, rendered: &BTreeMap<String, String>, write: bool) -> Regeneration {
    let pins = read_pins(dir);
    let mut outcome = Regeneration::default();
    let mut new_pins = Pins::new();
    for (relative, text) in rendered {
        let path = dir.join(relative);
        let hash = sha256_hex(text.as_bytes());
        let on_disk = std::fs::read_to_string(&path).ok();
        if on_disk.as_deref() == Some(text.as_str()) {
            if write && !pins.contains_key(relative) {
                new_pins.insert(relative.clone(), hash);
            }
            continue;
        }
        outcome.stale.push(relative.clone());
        match pins.get(relative) {
            Some(pin) if *pin != hash => outcome.refused.push(relative.clone()),
            _ if write => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, text).unwrap();
                if !pins.contains_key(relative) {
                    new_pins.insert(relative.clone(), hash);
                }
            }
            _ => {}
        }
    }
    // Files for event types that no longer exist are stale too; an older version of a
    // type that now has a newer one stays published (stored events still have it).
    for relative in files_on_disk(dir) {
        if rendered.contains_key(&relative)
            || (pins.contains_key(&relative) && superseded(&relative, rendered))
        {
            continue;
        }
        outcome.stale.push(relative.clone());
        if pins.contains_key(&relative) {
            outcome.refused.push(relative);
        } else if write {
            std::fs::remove_file(dir.join(&relative)).unwrap();
        }
    }
    if write && !new_pins.is_empty() {
        append_pins(dir, &new_pins);
        outcome.pinned = new_pins.into_keys().collect();
    }
    outcome
}

/// Whether `relative` (`<aggregate>/<Event>.v<N>.json`) is an older version of an event
/// type the catalogue renders at a higher version.
fn superseded(relative: &str, rendered: &BTreeMap<String, String>) -> bool {
    let version_of = |path: &str| -> Option<(String, u32)> {
        let stem = path.strip_suffix(".json")?;
        let (name, version) = stem.rsplit_once(".v")?;
        Some((name.to_string(), version.parse().ok()?))
    };
    let Some((name, version)) = version_of(relative) else {
        return false;
    };
    rendered
        .keys()
        .filter_map(|path| version_of(path))
        .any(|(n, v)| n == name && v > version)
}

fn rendered_catalogue() -> BTreeMap<String, String> {
    catalogue()
        .into_iter()
        .map(|entry| (entry.relative_path(), render(&entry.schema)))
        .collect()
}

#[test]
fn checked_in_schemas_match_the_rust_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let outcome = regenerate(&schema_dir(), &rendered_catalogue(), update);
    assert!(
        outcome.refused.is_empty(),
        "published schemas would change: {:?}. A published schema is never rewritten: give \
         the event a new version (`= N` in domain_events!) with an upcaster instead",
        outcome.refused
    );
    assert!(
        update || outcome.stale.is_empty(),
        "event schemas out of date (run `UPDATE_SCHEMAS=1 cargo test -p aggregates --test schemas`): {:?}",
        outcome.stale
    );
}

#[test]
fn every_published_schema_matches_its_pin() {
    let dir = schema_dir();
    let pins = read_pins(&dir);
    assert!(!pins.is_empty(), "{PIN_FILE} pins nothing");
    for (relative, pin) in &pins {
        let bytes = std::fs::read(dir.join(relative))
            .unwrap_or_else(|e| panic!("pinned schema {relative} is gone: {e}"));
        assert_eq!(
            &sha256_hex(&bytes),
            pin,
            "published schema {relative} was changed; a new shape must be a new version"
        );
    }
    let unpinned: Vec<String> = files_on_disk(&dir)
        .into_iter()
        .filter(|f| !pins.contains_key(f))
        .collect();
    assert!(
        unpinned.is_empty(),
        "schemas without a pin (run `UPDATE_SCHEMAS=1 cargo test -p aggregates --test schemas`): {unpinned:?}"
    );
}

/// A scratch schema folder with one pinned file.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("schemas-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(dir.join("cart")).unwrap();
    std::fs::write(dir.join("cart/CartOpened.v1.json"), "{\"v\": 1}\n").unwrap();
    append_pins(
        &dir,
        &Pins::from([(
            "cart/CartOpened.v1.json".to_string(),
            sha256_hex(b"{\"v\": 1}\n"),
        )]),
    );
    dir
}

#[test]
fn regenerating_refuses_to_rewrite_a_published_schema() {
    let dir = scratch_dir();
    let changed = BTreeMap::from([(
        "cart/CartOpened.v1.json".to_string(),
        "{\"v\": 2}\n".to_string(),
    )]);
    let outcome = regenerate(&dir, &changed, true);
    assert_eq!(outcome.refused, ["cart/CartOpened.v1.json"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("cart/CartOpened.v1.json")).unwrap(),
        "{\"v\": 1}\n",
        "the published file is untouched"
    );
    // Nor may regeneration remove it when its type disappears.
    let outcome = regenerate(&dir, &BTreeMap::new(), true);
    assert_eq!(outcome.refused, ["cart/CartOpened.v1.json"]);
    assert!(dir.join("cart/CartOpened.v1.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn regenerating_writes_and_pins_a_new_version() {
    let dir = scratch_dir();
    let rendered = BTreeMap::from([
        (
            "cart/CartOpened.v1.json".to_string(),
            "{\"v\": 1}\n".to_string(),
        ),
        (
            "cart/CartOpened.v2.json".to_string(),
            "{\"v\": 2}\n".to_string(),
        ),
    ]);
    let outcome = regenerate(&dir, &rendered, true);
    assert_eq!(
        outcome,
        Regeneration {
            stale: vec!["cart/CartOpened.v2.json".into()],
            refused: vec![],
            pinned: vec!["cart/CartOpened.v2.json".into()],
        }
    );
    let pins = read_pins(&dir);
    assert_eq!(pins.len(), 2);
    assert_eq!(pins["cart/CartOpened.v2.json"], sha256_hex(b"{\"v\": 2}\n"));
    // Once pinned, the new version is published too.
    let changed = BTreeMap::from([
        (
            "cart/CartOpened.v1.json".to_string(),
            "{\"v\": 1}\n".to_string(),
        ),
        (
            "cart/CartOpened.v2.json".to_string(),
            "{\"v\": 3}\n".to_string(),
        ),
    ]);
    assert_eq!(
        regenerate(&dir, &changed, true).refused,
        ["cart/CartOpened.v2.json"]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_check_without_update_writes_nothing() {
    let dir = scratch_dir();
    let rendered = BTreeMap::from([
        (
            "cart/CartOpened.v1.json".to_string(),
            "{\"v\": 1}\n".to_string(),
        ),
        (
            "cart/CartCheckedOut.v1.json".to_string(),
            "{}\n".to_string(),
        ),
    ]);
    let outcome = regenerate(&dir, &rendered, false);
    assert_eq!(outcome.stale, ["cart/CartCheckedOut.v1.json"]);
    assert!(outcome.pinned.is_empty());
    assert!(!dir.join("cart/CartCheckedOut.v1.json").exists());
    assert_eq!(read_pins(&dir).len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
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

/// Hex SHA-256, as `sha256sum` prints it.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
