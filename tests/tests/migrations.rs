//! Migrations on main are immutable: an installed database refuses a migration whose
//! checksum changed. Every migration file is pinned by SHA-256 in
//! `infra/migrations/pins.sha256`; editing or removing a pinned file fails this test.
//! A new migration is pinned with `UPDATE_MIGRATION_PINS=1 cargo test -p tests --test
//! migrations`, which only ever appends pins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/migrations")
}

fn pins_file() -> PathBuf {
    migrations_dir().join("pins.sha256")
}

/// `backend/file.sql` → hex SHA-256 of every migration file on disk.
fn files_on_disk() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for backend in ["postgres", "sqlite"] {
        let dir = migrations_dir().join(backend);
        for entry in std::fs::read_dir(&dir)
            .expect("migrations folder")
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "sql") {
                let name = format!("{backend}/{}", path.file_name().unwrap().to_string_lossy());
                let digest = Sha256::digest(std::fs::read(&path).unwrap());
                files.insert(name, hex::encode(digest));
            }
        }
    }
    files
}

fn pinned() -> BTreeMap<String, String> {
    std::fs::read_to_string(pins_file())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (hash, name) = l.split_once("  ").expect("`<sha256>  <path>` lines");
            (name.to_string(), hash.to_string())
        })
        .collect()
}

#[test]
fn pinned_migrations_are_unchanged_and_every_migration_is_pinned() {
    let on_disk = files_on_disk();
    let pins = pinned();
    let mut problems = Vec::new();
    for (name, hash) in &pins {
        match on_disk.get(name) {
            None => problems.push(format!("{name}: pinned but removed")),
            Some(h) if h != hash => problems.push(format!(
                "{name}: changed after it was pinned (never edit a migration: add a new one)"
            )),
            Some(_) => {}
        }
    }
    let new: Vec<_> = on_disk
        .iter()
        .filter(|(name, _)| !pins.contains_key(*name))
        .collect();
    if std::env::var_os("UPDATE_MIGRATION_PINS").is_some() && problems.is_empty() {
        let mut text = std::fs::read_to_string(pins_file()).unwrap_or_default();
        for (name, hash) in &new {
            text.push_str(&format!("{hash}  {name}\n"));
        }
        std::fs::write(pins_file(), text).unwrap();
        return;
    }
    for (name, _) in new {
        problems.push(format!(
            "{name}: not pinned (run `UPDATE_MIGRATION_PINS=1 cargo test -p tests --test migrations`)"
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_pin_check_notices_an_edit() {
    // Guards the test above: a changed byte changes the pin.
    let on_disk = files_on_disk();
    let (name, hash) = on_disk.iter().next().expect("at least one migration");
    let path = migrations_dir().join(name);
    let mut bytes = std::fs::read(path).unwrap();
    bytes.push(b'\n');
    assert_ne!(&hex::encode(Sha256::digest(&bytes)), hash);
}
