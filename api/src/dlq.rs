//! `commerce dlq`: operators' view of the consumers' dead letters.
//!
//! A retry is carried out by the running consumer that owns the dead letter (it has the
//! handler); this command only records the request. A discard takes effect at once: the
//! event counts as settled and the stream's parked events follow.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use infra::consumer::{DeadLetter, DeadLetterError, DeadLetterQueue, DeadLetterStatus};
use infra::StoreConfig;
use serde_json::json;

use crate::cli::{open_store, CliError, DatabaseArgs};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters (and the events parked behind them), oldest first.
    List(ListArgs),
    /// One dead letter with its whole event.
    Show(ShowArgs),
    /// Ask the running consumer for another attempt at dead letters.
    Retry(ChangeArgs),
    /// Drop dead letters: their streams move on without them.
    Discard(ChangeArgs),
}

/// Which dead letters `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    /// dead, retry, retrying and parked.
    Open,
    Dead,
    Retry,
    Retrying,
    Parked,
    Resolved,
    Discarded,
    All,
}

impl StatusFilter {
    fn statuses(self) -> Vec<DeadLetterStatus> {
        match self {
            Self::Open => DeadLetterStatus::OPEN.to_vec(),
            Self::All => DeadLetterStatus::ALL.to_vec(),
            Self::Dead => vec![DeadLetterStatus::Dead],
            Self::Retry => vec![DeadLetterStatus::Retry],
            Self::Retrying => vec![DeadLetterStatus::Retrying],
            Self::Parked => vec![DeadLetterStatus::Parked],
            Self::Resolved => vec![DeadLetterStatus::Resolved],
            Self::Discarded => vec![DeadLetterStatus::Discarded],
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Only this consumer's.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Which statuses.
    #[arg(long, value_enum, default_value_t = StatusFilter::Open)]
    pub status: StatusFilter,
    /// Start after this id (for paging).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// At most this many (1-1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub limit: i64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Dead letter ids.
    #[arg(required_unless_present = "all")]
    pub ids: Vec<i64>,
    /// Every dead letter of `--consumer` instead of listed ids.
    #[arg(long, requires = "consumer", conflicts_with = "ids")]
    pub all: bool,
    /// The consumer whose dead letters `--all` takes.
    #[arg(long)]
    pub consumer: Option<String>,
}

/// Runs one `dlq` command, writing its report to `out`.
pub async fn run(command: DlqCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        DlqCommand::List(args) => {
            let dlq = queue(&args.db).await?;
            let letters = dlq
                .list(
                    args.consumer.as_deref(),
                    &args.status.statuses(),
                    args.after,
                    args.limit,
                )
                .await
                .map_err(failed)?;
            if args.json {
                for letter in &letters {
                    writeln!(out, "{}", summary_json(letter)).map_err(write_failed)?;
                }
            } else {
                write_table(out, &letters).map_err(write_failed)?;
            }
            Ok(())
        }
        DlqCommand::Show(args) => {
            let letter = queue(&args.db).await?.get(args.id).await.map_err(failed)?;
            let mut value = summary_json(&letter);
            value["envelope"] = serde_json::to_value(&letter.envelope)
                .map_err(|e| CliError::runtime(format!("cannot encode the envelope: {e}")))?;
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| CliError::runtime(format!("cannot encode the dead letter: {e}")))?;
            writeln!(out, "{text}").map_err(write_failed)
        }
        DlqCommand::Retry(args) => change(args, out, Change::Retry).await,
        DlqCommand::Discard(args) => change(args, out, Change::Discard).await,
    }
}

#[derive(Clone, Copy)]
enum Change {
    Retry,
    Discard,
}

async fn change(args: ChangeArgs, out: &mut impl Write, change: Change) -> Result<(), CliError> {
    let dlq = queue(&args.db).await?;
    let ids = if args.all {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = dlq
                .list(
                    args.consumer.as_deref(),
                    &[DeadLetterStatus::Dead],
                    after,
                    1000,
                )
                .await
                .map_err(failed)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            ids.extend(page.iter().map(|l| l.id));
        }
        ids
    } else {
        args.ids
    };
    let mut refused = 0;
    for id in ids {
        let result = match change {
            Change::Retry => dlq.retry(id).await,
            Change::Discard => dlq.discard(id).await,
        };
        let line = match (&result, change) {
            (Ok(()), Change::Retry) => format!("{id}: retry requested"),
            (Ok(()), Change::Discard) => format!("{id}: discarded"),
            (Err(DeadLetterError::Consumer(e)), _) => return Err(failed(e)),
            (Err(e), _) => {
                refused += 1;
                format!("{id}: refused: {e}")
            }
        };
        writeln!(out, "{line}").map_err(write_failed)?;
    }
    if refused > 0 {
        return Err(CliError::runtime(format!(
            "{refused} dead letters were left as they were"
        )));
    }
    Ok(())
}

async fn queue(db: &DatabaseArgs) -> Result<DeadLetterQueue, CliError> {
    Ok(DeadLetterQueue::new(
        open_store(db, StoreConfig::default()).await?,
    ))
}

fn failed(err: impl std::fmt::Display) -> CliError {
    CliError::runtime(format!("dead letters: {err}"))
}

fn write_failed(err: std::io::Error) -> CliError {
    CliError::runtime(format!("cannot write the report: {err}"))
}

fn summary_json(letter: &DeadLetter) -> serde_json::Value {
    json!({
        "id": letter.id,
        "consumer": letter.consumer,
        "status": letter.status.as_str(),
        "event_id": letter.event_id,
        "position": letter.position,
        "stream_type": letter.stream.stream_type,
        "stream_id": letter.stream.stream_id,
        "version": letter.version,
        "event_type": letter.event_type,
        "attempts": letter.attempts,
        "error": letter.error,
        "created_at": letter.created_at,
        "updated_at": letter.updated_at,
    })
}

fn write_table(out: &mut impl Write, letters: &[DeadLetter]) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:>6}  {:<20} {:<9} {:>9}  {:<32} {:<24} {:>4}  error",
        "id", "consumer", "status", "position", "stream@version", "event", "try"
    )?;
    for l in letters {
        let error: String = l.error.as_deref().unwrap_or("").chars().take(60).collect();
        writeln!(
            out,
            "{:>6}  {:<20} {:<9} {:>9}  {:<32} {:<24} {:>4}  {}",
            l.id,
            l.consumer,
            l.status.as_str(),
            l.position,
            format!("{}@{}", l.stream, l.version),
            l.event_type,
            l.attempts,
            error.replace('\n', " ")
        )?;
    }
    Ok(())
}
