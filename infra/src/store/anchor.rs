//! Anchors: the head of every stream, written outside the database, to check the log
//! against later.
//!
//! The hash chain ([`Store::verify`]) finds an edited event or a broken link, but not a
//! rewrite that recomputes a whole stream consistently, a stream whose newest events were
//! deleted, or a stream deleted whole: what remains is a valid chain. An anchor file,
//! kept where whoever can write the database cannot (object storage with retention, a
//! ticket, a backup system), records each stream's version and hash at one moment;
//! [`check_anchors`] then finds every stream that no longer has that event with that
//! hash. With a key (which the database never sees) the file carries an HMAC-SHA256 over
//! its lines, so it cannot be forged or edited unnoticed either.
//!
//! Format: JSON lines. A header `{"format":"commerce-anchors/1","head_position":…,
//! "created_at":…}`, one `{"stream_type":…,"stream_id":…,"version":…,"hash":"<hex>"}` per
//! stream, and with a key a last line `{"mac":"<hex>"}` over every byte before it.

use std::io::{BufRead, Write};

use futures_util::TryStreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Db, Store, StoreError};
use crate::on_db;

const FORMAT: &str = "commerce-anchors/1";

/// Why anchors could not be written or read (not a mismatch: see [`AnchorReport`]).
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("anchor file: {0}")]
    Io(#[from] std::io::Error),
    #[error("anchor file line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("the anchor file's MAC does not match: it was edited, or the key is another")]
    BadMac,
    #[error("the anchor file has a MAC but no key was given to check it")]
    KeyNeeded,
    #[error("a key was given but the anchor file has no MAC")]
    Unsigned,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    head_position: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Head {
    stream_type: String,
    stream_id: String,
    version: i64,
    hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Seal {
    mac: String,
}

/// What [`write_anchors`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorSummary {
    pub streams: u64,
    pub head_position: i64,
}

/// One stream that does not match its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorProblem {
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub problem: String,
}

/// What [`check_anchors`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorReport {
    pub streams: u64,
    pub head_position: i64,
    pub problems: Vec<AnchorProblem>,
}

impl AnchorReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Writes the head of every stream (as of the log's readable head) to `out`, signed with
/// `key` when one is given. Streams the rows; memory stays flat however many streams.
pub async fn write_anchors(
    store: &Store,
    key: Option<&[u8]>,
    out: &mut (impl Write + Send),
) -> Result<AnchorSummary, AnchorError> {
    let head_position = store.head_position().await?;
    let mut mac = key.map(new_mac);
    let mut emit = |line: String, out: &mut (dyn Write + Send)| -> std::io::Result<()> {
        if let Some(mac) = mac.as_mut() {
            mac.update(line.as_bytes());
            mac.update(b"\n");
        }
        writeln!(out, "{line}")
    };
    let header = Header {
        format: FORMAT.into(),
        head_position,
        created_at: store.clock().now(),
    };
    emit(json(&header), out)?;
    let mut streams = 0;
    let sql = "SELECT e.stream_type, e.stream_id, e.version, e.hash FROM events e \
               JOIN (SELECT stream_type, stream_id, max(version) AS version FROM events \
                     WHERE position <= $1 GROUP BY stream_type, stream_id) h \
                 ON e.stream_type = h.stream_type AND e.stream_id = h.stream_id \
                AND e.version = h.version \
               ORDER BY e.stream_type, e.stream_id";
    on_db!(store.db_read(), pool => {
        let mut rows = sqlx::query_as::<_, (String, String, i64, Vec<u8>)>(sql)
            .bind(head_position)
            .fetch(pool);
        while let Some((stream_type, stream_id, version, hash)) = rows.try_next().await? {
            let head = Head { stream_type, stream_id, version, hash: hex::encode(hash) };
            emit(json(&head), out)?;
            streams += 1;
        }
    });
    if let Some(mac) = mac {
        let seal = Seal {
            mac: hex::encode(mac.finalize().into_bytes()),
        };
        writeln!(out, "{}", json(&seal))?;
    }
    out.flush()?;
    Ok(AnchorSummary {
        streams,
        head_position,
    })
}

/// Checks the log against an anchor file: every anchored stream must still hold the
/// anchored version with the anchored hash. With `key`, the file's MAC is checked first
/// and nothing is compared if it fails.
pub async fn check_anchors(
    store: &Store,
    key: Option<&[u8]>,
    input: impl BufRead,
) -> Result<AnchorReport, AnchorError> {
    let lines: Vec<String> = input.lines().collect::<Result<_, _>>()?;
    let sealed = lines
        .last()
        .and_then(|last| serde_json::from_str::<Seal>(last).ok());
    let body = match (&sealed, key) {
        (Some(seal), Some(key)) => {
            let body = &lines[..lines.len() - 1];
            let mut mac = new_mac(key);
            for line in body {
                mac.update(line.as_bytes());
                mac.update(b"\n");
            }
            let expected = hex::decode(&seal.mac).map_err(|_| AnchorError::BadMac)?;
            mac.verify_slice(&expected)
                .map_err(|_| AnchorError::BadMac)?;
            body
        }
        (Some(_), None) => return Err(AnchorError::KeyNeeded),
        (None, Some(_)) => return Err(AnchorError::Unsigned),
        (None, None) => &lines[..],
    };
    let malformed = |line: usize, reason: String| AnchorError::Malformed { line, reason };
    let header: Header = body
        .first()
        .ok_or_else(|| malformed(1, "empty file".into()))
        .and_then(|l| serde_json::from_str(l).map_err(|e| malformed(1, e.to_string())))?;
    if header.format != FORMAT {
        return Err(malformed(
            1,
            format!("format `{}`, not {FORMAT}", header.format),
        ));
    }
    let mut report = AnchorReport {
        head_position: header.head_position,
        ..AnchorReport::default()
    };
    for (index, line) in body.iter().enumerate().skip(1) {
        let head: Head =
            serde_json::from_str(line).map_err(|e| malformed(index + 1, e.to_string()))?;
        report.streams += 1;
        if let Some(problem) = check_one(store.db_read(), &head).await? {
            report.problems.push(AnchorProblem {
                stream_type: head.stream_type,
                stream_id: head.stream_id,
                version: head.version,
                problem,
            });
        }
    }
    Ok(report)
}

/// What is wrong with one anchored stream, if anything.
async fn check_one(db: Db<'_>, head: &Head) -> Result<Option<String>, AnchorError> {
    let hash: Option<Vec<u8>> = on_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT hash FROM events WHERE stream_type = $1 AND stream_id = $2 AND version = $3",
        )
        .bind(&head.stream_type)
        .bind(&head.stream_id)
        .bind(head.version)
        .fetch_optional(pool)
        .await?
    });
    Ok(match hash {
        Some(hash) if hex::encode(&hash) == head.hash => None,
        Some(_) => Some(format!(
            "the event at version {} has another hash than anchored: history was rewritten",
            head.version
        )),
        None => {
            let newest: Option<i64> = on_db!(db, pool => {
                sqlx::query_scalar(
                    "SELECT max(version) FROM events WHERE stream_type = $1 AND stream_id = $2",
                )
                .bind(&head.stream_type)
                .bind(&head.stream_id)
                .fetch_one(pool)
                .await?
            });
            Some(match newest {
                None => format!(
                    "the stream is gone: it was anchored at version {}",
                    head.version
                ),
                Some(newest) => format!(
                    "the stream ends at version {newest}: it was anchored at version {}, \
                     so events were deleted",
                    head.version
                ),
            })
        }
    })
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("anchor lines always serialize")
}
