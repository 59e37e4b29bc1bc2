//! Replay tooling: the `commerce` commands that read the log directly to answer what
//! happened, when and why (auditors), and to hand the events to analysts.
//!
//! Every command reads through [`infra::Store`] page by page (constant memory however
//! long the log) and decodes events through the aggregates' one path,
//! [`aggregates::EventSourced::decode`], so upcasters apply here exactly as they do for
//! the command layer. Both backends, PostgreSQL and SQLite, answer the same way.
//!
//! * [`events`]: list or follow the log with filters;
//! * [`history`]: one stream's story with a human summary per event;
//! * [`state`]: an aggregate as of a position or time, and what changed between two;
//! * [`trace`]: one business flow across aggregates, as a tree by causation;
//! * [`export`]: NDJSON, CSV or Parquet, resumable;
//! * [`reconcile`]: figures derived independently must agree;
//! * [`verify`]: the hash chain, versions, and that every event still decodes.

pub mod aggregate;
pub mod diff;
pub mod events;
pub mod export;
pub mod format;
pub mod history;
pub mod point;
pub mod reconcile;
pub mod state;
pub mod summary;
pub mod trace;
pub mod verify;

use std::io::Write;

use clap::Subcommand;
use infra::StoreError;

use crate::cli::CliError;

/// The replay commands, flattened into the top level of `commerce`.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// List (or `--follow`) the event log, filtered by stream, type, time, correlation
    /// id or actor: a table, or JSON lines with `--json`.
    Events(events::EventsArgs),
    /// One stream's story: every event with who, when, why and a one-line summary.
    History(history::HistoryArgs),
    /// An aggregate as it was at a position or time, replayed from its stream.
    State(state::StateArgs),
    /// What changed in an aggregate between two positions or times.
    Diff(state::DiffArgs),
    /// Every event of one business flow (a correlation id), as a tree by causation.
    Trace(trace::TraceArgs),
    /// Stream a range of the log to NDJSON, CSV or Parquet, resumable.
    Export(export::ExportArgs),
    /// Cross-check figures derived independently (payments, stock, loyalty); exits
    /// non-zero on any mismatch.
    Reconcile(reconcile::ReconcileArgs),
    /// Check the whole log (or from a position): positions, versions, every hash, and
    /// that every event decodes to the current schema. Exits non-zero on any problem.
    Verify(verify::VerifyArgs),
}

/// Runs one replay command, printing to standard output.
pub async fn run(command: ReplayCommand) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_with(command, &mut out).await.map_err(CliError::from)
}

/// Runs one replay command, printing to `out` (tests capture it).
pub async fn run_with(command: ReplayCommand, out: &mut impl Write) -> Result<(), ReplayError> {
    match command {
        ReplayCommand::Events(args) => events::run(args, out).await,
        ReplayCommand::History(args) => history::run(args, out).await,
        ReplayCommand::State(args) => state::run_state(args, out).await,
        ReplayCommand::Diff(args) => state::run_diff(args, out).await,
        ReplayCommand::Trace(args) => trace::run(args, out).await,
        ReplayCommand::Export(args) => export::run(args, out).await,
        ReplayCommand::Reconcile(args) => reconcile::run(args, out).await,
        ReplayCommand::Verify(args) => verify::run(args, out).await,
    }
}

/// Why a replay command or route could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("unknown aggregate `{0}`: use one of {list}", list = aggregate::AggregateKind::names())]
    UnknownAggregate(String),
    #[error("`{0}` is neither a position (a whole number) nor an RFC 3339 time such as 2026-12-01T10:00:00Z")]
    InvalidPoint(String),
    #[error("`{0}` is not an RFC 3339 time such as 2026-12-01T10:00:00Z")]
    InvalidTime(String),
    #[error("`{0}` is not a UUID")]
    InvalidUuid(String),
    #[error("`{0}` is not a stream: write AGGREGATE/ID, e.g. order/0193a1c2-…")]
    InvalidStream(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("stream {0} has no events")]
    NoSuchStream(String),
    #[error("empty range: {0}")]
    EmptyRange(String),
    #[error("nothing recorded for correlation id {0}")]
    NoSuchFlow(uuid::Uuid),
    #[error("event at position {position} ({stream} v{version}) does not decode: {reason}")]
    Decode {
        position: i64,
        stream: String,
        version: i64,
        reason: String,
    },
    #[error("cannot read the log: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read a view: {0}")]
    View(#[from] sqlx::Error),
    #[error("{0}")]
    Output(String),
    /// The store could not be opened; `code` is the exit code the CLI chose.
    #[error("{message}")]
    Open { message: String, code: u8 },
    /// A check found problems (already printed); the message sums them up.
    #[error("{0}")]
    Failed(String),
}

impl ReplayError {
    /// Whether the caller asked for something that cannot be (bad input), as opposed to
    /// a failure while answering.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReplayError::UnknownAggregate(_)
                | ReplayError::InvalidPoint(_)
                | ReplayError::InvalidTime(_)
                | ReplayError::InvalidUuid(_)
                | ReplayError::InvalidStream(_)
                | ReplayError::InvalidArgument(_)
        )
    }
}

impl From<std::io::Error> for ReplayError {
    fn from(e: std::io::Error) -> Self {
        ReplayError::Output(format!("cannot write: {e}"))
    }
}

impl From<ReplayError> for CliError {
    fn from(e: ReplayError) -> Self {
        if let ReplayError::Open { message, code } = e {
            return CliError { message, code };
        }
        if e.is_bad_input() {
            CliError::config(e.to_string())
        } else {
            CliError::runtime(e.to_string())
        }
    }
}

/// Opens the store named by `db` for reading, as a one-line error when it cannot.
pub(crate) async fn open(db: &crate::cli::DatabaseArgs) -> Result<infra::Store, ReplayError> {
    crate::cli::open_store(db, infra::StoreConfig::default())
        .await
        .map_err(|e| ReplayError::Open {
            message: e.message,
            code: e.code,
        })
}
