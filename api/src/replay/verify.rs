//! `commerce verify`: the log is what the engine wrote. Positions increase, every
//! stream's versions are gap-free from 1, every hash matches its event and continues its
//! stream's chain, no command record claims an event the log no longer holds, and every
//! event still decodes through the upcasters to the current schema.
//!
//! `--from POSITION` checks only events from there on: the chain of each stream is
//! anchored at the stored event just before the first one checked, so an incremental
//! run still notices an edited or deleted row at the boundary.

use std::collections::HashMap;
use std::io::Write;

use clap::Args;
use infra::store::ScanFilter;
use infra::{Store, StreamRef};

use super::aggregate::decode;
use super::ReplayError;
use crate::cli::DatabaseArgs;

/// Options of `commerce verify`.
#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Check events from this global position on (default: the whole log).
    #[arg(long, default_value_t = 1)]
    pub from: i64,
}

/// One thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub position: Option<i64>,
    pub stream: String,
    pub version: i64,
    pub problem: String,
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub streams: u64,
    pub last_position: i64,
    pub problems: Vec<Problem>,
}

/// Reads the log from `from` and checks it; problems are collected, not fatal.
pub async fn verify(store: &Store, from: i64) -> Result<Report, ReplayError> {
    if from < 1 {
        return Err(ReplayError::InvalidArgument(
            "--from must be a position of 1 or more".into(),
        ));
    }
    let mut report = Report::default();
    // (version, hash) of the newest event checked per stream.
    let mut heads: HashMap<(String, String), (i64, Vec<u8>)> = HashMap::new();
    let filter = ScanFilter::default();
    let mut after = from - 1;
    loop {
        let page = store.scan(&filter, after, 5000).await?;
        if page.is_empty() {
            break;
        }
        for e in page {
            let stream = format!("{}/{}", e.stream_type, e.stream_id);
            let mut problem = |text: String| {
                report.problems.push(Problem {
                    position: Some(e.position),
                    stream: stream.clone(),
                    version: e.version,
                    problem: text,
                })
            };
            if e.position <= after {
                problem(format!("position does not increase after {after}"));
            }
            let key = (e.stream_type.clone(), e.stream_id.clone());
            let (expected_version, expected_prev) = match heads.get(&key) {
                Some((v, h)) => (v + 1, Some(h.clone())),
                // The first event of a stream in range: anchored at the stored event
                // before it (none for version 1).
                None if e.version > 1 => {
                    let stream_ref = StreamRef::new(&e.stream_type, &e.stream_id);
                    match store.hash_at(&stream_ref, e.version - 1).await? {
                        Some(h) => (e.version, Some(h)),
                        None if from <= 1 => (1, None),
                        None => {
                            problem(format!("version {} is missing", e.version - 1));
                            (e.version, None)
                        }
                    }
                }
                None => (1, None),
            };
            if e.version != expected_version {
                problem(format!(
                    "version {} where {expected_version} was expected: version {expected_version} is missing",
                    e.version
                ));
            }
            if e.prev_hash.as_deref() != expected_prev.as_deref() {
                problem("previous hash does not match the stream's chain".into());
            }
            if e.recomputed_hash().as_slice() != e.hash.as_slice() {
                problem("hash does not match the event's content (edited?)".into());
            }
            if let Err(err) = decode(&e) {
                let reason = match err {
                    ReplayError::Decode { reason, .. } => reason,
                    other => other.to_string(),
                };
                problem(format!("does not decode to the current schema: {reason}"));
            }
            after = e.position;
            report.events += 1;
            report.last_position = e.position;
            heads.insert(key, (e.version, e.hash));
        }
    }
    for (stream, recorded, held) in store.missing_command_versions().await? {
        report.problems.push(Problem {
            position: None,
            stream: stream.to_string(),
            version: held + 1,
            problem: format!(
                "versions {}..={recorded} were recorded by commands but are missing from the log",
                held + 1
            ),
        });
    }
    report.streams = heads.len() as u64;
    Ok(report)
}

pub async fn run(args: VerifyArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    if args.from < 1 {
        return Err(ReplayError::InvalidArgument(
            "--from must be a position of 1 or more".into(),
        ));
    }
    let store = super::open(&args.db).await?;
    let report = verify(&store, args.from).await?;
    writeln!(
        out,
        "{} events in {} streams checked from position {}, last position {}",
        report.events, report.streams, args.from, report.last_position
    )?;
    for p in &report.problems {
        let at = p
            .position
            .map_or_else(|| "-".to_string(), |p| p.to_string());
        writeln!(
            out,
            "position {at} {} v{}: {}",
            p.stream, p.version, p.problem
        )?;
    }
    if report.problems.is_empty() {
        writeln!(out, "the log verifies")?;
        Ok(())
    } else {
        let n = report.problems.len();
        Err(ReplayError::Failed(format!(
            "{n} {} found in the log",
            if n == 1 { "problem" } else { "problems" }
        )))
    }
}
