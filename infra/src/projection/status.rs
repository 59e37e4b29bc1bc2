//! Where every projection stands: `commerce projections status`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::checkpoint;
use super::ProjectionError;
use crate::store::Store;

/// One projection version's standing against the head of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    pub version: i64,
    /// `live` or `building` (a rebuild in progress).
    pub state: &'static str,
    pub position: i64,
    pub head: i64,
    /// head − position.
    pub lag_events: i64,
    /// Age of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
    pub updated_at: DateTime<Utc>,
    /// The error the projection stopped on, and the event's position.
    pub error: Option<String>,
    pub failed_position: Option<i64>,
}

/// The status of every projection version with a checkpoint; a projection that never
/// ran shows as version 1 at position 0.
pub async fn status(store: &Store) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let head = store.head_position().await?;
    let now = store.clock().now();
    let mut rows = checkpoint::all(store.db_read()).await?;
    for p in projections::all() {
        if !rows.iter().any(|r| r.name == p.name()) {
            rows.push(checkpoint::Checkpoint {
                name: p.name().to_string(),
                version: 1,
                live: true,
                position: 0,
                updated_at: now,
                error: None,
                failed_position: None,
            });
        }
    }
    rows.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    let mut out = Vec::new();
    for row in rows {
        let lag_seconds = if row.position < head {
            match store.read_all(row.position, 1).await?.first() {
                Some(next) => ((now - next.recorded_at).num_milliseconds().max(0) as f64) / 1000.0,
                None => 0.0,
            }
        } else {
            0.0
        };
        out.push(ProjectionStatus {
            name: row.name,
            version: row.version,
            state: if row.live { "live" } else { "building" },
            position: row.position,
            head,
            lag_events: (head - row.position).max(0),
            lag_seconds,
            updated_at: row.updated_at,
            error: row.error,
            failed_position: row.failed_position,
        });
    }
    Ok(out)
}
