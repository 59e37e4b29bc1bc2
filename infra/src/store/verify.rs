//! Verification of the log: positions increase, versions are gap-free per stream, and
//! every event's hash matches its content and continues its stream's chain.

use std::collections::HashMap;

use super::{Store, StoreError};

/// One thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    pub problem: String,
}

/// The result of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub streams: u64,
    pub last_position: i64,
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Reads the whole log and checks it. Problems are reported, not fatal.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        let mut heads: HashMap<(String, String), (i64, Vec<u8>)> = HashMap::new();
        let mut after = 0;
        loop {
            let batch = self.read_all(after, 5000).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                let mut problem = |text: String| {
                    report.problems.push(VerifyProblem {
                        position: e.position,
                        stream: format!("{}/{}", e.stream_type, e.stream_id),
                        version: e.version,
                        problem: text,
                    })
                };
                if e.position <= after {
                    problem(format!("position does not increase after {after}"));
                }
                let key = (e.stream_type.clone(), e.stream_id.clone());
                let (expected_version, expected_prev) = match heads.get(&key) {
                    Some((v, h)) => (v + 1, Some(h.as_slice())),
                    None => (1, None),
                };
                if e.version != expected_version {
                    problem(format!(
                        "version {} where {expected_version} was expected",
                        e.version
                    ));
                }
                if e.prev_hash.as_deref() != expected_prev {
                    problem("previous hash does not match the stream's chain".into());
                }
                if e.recomputed_hash().as_slice() != e.hash.as_slice() {
                    problem("hash does not match the event's content".into());
                }
                after = e.position;
                report.events += 1;
                report.last_position = e.position;
                heads.insert(key, (e.version, e.hash));
            }
        }
        report.streams = heads.len() as u64;
        Ok(report)
    }
}
