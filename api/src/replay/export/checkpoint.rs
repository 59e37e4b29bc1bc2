//! `<output>.checkpoint`: how far an export got, written after every page (atomically:
//! a temporary file renamed over the old one), so `--resume` continues exactly there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::replay::ReplayError;

/// The last position written and, for NDJSON and CSV, the file's length after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: i64,
    pub bytes: u64,
}

impl Checkpoint {
    /// `events.ndjson` → `events.ndjson.checkpoint`.
    pub fn path_for(output: &Path) -> PathBuf {
        let mut name = output.as_os_str().to_owned();
        name.push(".checkpoint");
        PathBuf::from(name)
    }

    /// The checkpoint at `path`; `None` when there is none yet (a first run).
    pub fn read(path: &Path) -> Result<Option<Self>, ReplayError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                ReplayError::InvalidArgument(format!(
                    "{} is not an export checkpoint: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReplayError::Output(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), ReplayError> {
        let fail = |e: std::io::Error| {
            ReplayError::Output(format!("cannot write {}: {e}", path.display()))
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let text = serde_json::to_string(self).map_err(|e| ReplayError::Output(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }
}
