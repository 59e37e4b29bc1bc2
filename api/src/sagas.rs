//! `commerce sagas`: the operators' view of sagas, like the staff routes under
//! `/admin/sagas` (docs/sagas.md, "See and steer").
//!
//! * `list`: sagas by state and age, oldest in their phase first, with the stuck ones
//!   marked (`--stuck` keeps only those; `--saga-stuck-after` sets the threshold);
//! * `show`: one saga's status, state, timers and logged steps with their commands and
//!   outcomes;
//! * `retry`: re-run its failed or stuck step (dead letters retried, due timers released,
//!   `--timer NAME` brought forward); the running workers carry it out;
//! * `cancel`: cancel its order through `CancelOrder` (reason `merchant_requested`); the
//!   saga compensates as for any cancellation.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use infra::command::{CommandContext, Commands};
use infra::saga::admin;
use infra::saga::status::{self, Cursor, SagaStatus, StatusFilter};
use infra::saga::steps::{self, CommandOutcome, StepRow};
use infra::saga::store as saga_store;
use infra::{Store, StoreConfig};
use serde_json::json;

use crate::cli::{open_store, CliError, DatabaseArgs};

/// The saga type of the checkout (its ids are order ids), the only one so far.
const CHECKOUT: &str = "checkout";

#[derive(Debug, Subcommand)]
pub enum SagasCommand {
    /// Sagas by state and age, oldest in their phase first.
    List(ListArgs),
    /// One saga: status, state, timers, and its steps with their commands.
    Show(OneArgs),
    /// Re-run a saga's failed or stuck step.
    Retry(RetryArgs),
    /// Cancel a saga's order; the saga compensates as usual.
    Cancel(OneArgs),
}

/// Which sagas `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Active,
    Finished,
    All,
}

#[derive(Debug, Args)]
pub struct StuckArgs {
    /// How long in one phase makes a saga stuck (when it waits for no timer), e.g.
    /// `15m`, `1h`.
    #[arg(long, env = "COMMERCE_SAGA_STUCK_AFTER", default_value = "15m", value_parser = crate::token::parse_ttl)]
    pub saga_stuck_after: Duration,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long, value_enum, default_value_t = StatusArg::Active)]
    pub status: StatusArg,
    /// Only this phase, e.g. `Paying`.
    #[arg(long)]
    pub phase: Option<String>,
    /// Only stuck sagas.
    #[arg(long)]
    pub stuck: bool,
    #[command(flatten)]
    pub stuck_after: StuckArgs,
    /// At most this many (1-500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=500))]
    pub limit: i64,
    /// Continue after this cursor (printed after a full page).
    #[arg(long)]
    pub after: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OneArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The saga id: for the checkout saga, the order id.
    pub saga_id: String,
    /// The saga type.
    #[arg(long = "type", default_value = CHECKOUT)]
    pub saga_type: String,
    #[command(flatten)]
    pub stuck_after: StuckArgs,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub one: OneArgs,
    /// Also bring this timer of the saga forward to now, e.g. `payment-status`.
    #[arg(long)]
    pub timer: Option<String>,
}

/// Runs one `sagas` command, writing its report to `out`.
pub async fn run(command: SagasCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        SagasCommand::List(args) => list(args, out).await,
        SagasCommand::Show(args) => show(args, out).await,
        SagasCommand::Retry(args) => retry(args, out).await,
        SagasCommand::Cancel(args) => cancel(args, out).await,
    }
}

async fn store(db: &DatabaseArgs) -> Result<Store, CliError> {
    open_store(db, StoreConfig::default()).await
}

fn threshold(args: &StuckArgs) -> Result<chrono::Duration, CliError> {
    chrono::Duration::from_std(args.saga_stuck_after)
        .map_err(|e| CliError::config(format!("--saga-stuck-after: {e}")))
}

fn failed(err: impl std::fmt::Display) -> CliError {
    CliError::runtime(format!("sagas: {err}"))
}

fn write_failed(err: std::io::Error) -> CliError {
    CliError::runtime(format!("cannot write the report: {err}"))
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value, CliError> {
    serde_json::to_value(value).map_err(|e| CliError::runtime(format!("cannot encode: {e}")))
}

async fn list(args: ListArgs, out: &mut impl Write) -> Result<(), CliError> {
    let store = store(&args.db).await?;
    let after = args
        .after
        .as_deref()
        .map(|c| Cursor::decode(c).ok_or_else(|| CliError::config("--after is not a cursor")))
        .transpose()?;
    let filter = StatusFilter {
        saga_type: None,
        status: match args.status {
            StatusArg::Active => Some("active".into()),
            StatusArg::Finished => Some("finished".into()),
            StatusArg::All => None,
        },
        phase: args.phase.clone(),
        stuck_only: args.stuck,
        stuck_after: threshold(&args.stuck_after)?,
        now: store.clock().now(),
        after,
        limit: args.limit,
    };
    let sagas = status::list(store.db(), &filter).await.map_err(failed)?;
    if args.json {
        for saga in &sagas {
            writeln!(out, "{}", to_json(saga)?).map_err(write_failed)?;
        }
    } else {
        write_table(out, &sagas).map_err(write_failed)?;
        if sagas.len() as i64 == args.limit {
            if let Some(last) = sagas.last() {
                let cursor = Cursor {
                    phase_since: last.phase_since,
                    saga_type: last.saga_type.clone(),
                    saga_id: last.saga_id.clone(),
                };
                writeln!(out, "more: --after {}", cursor.encode()).map_err(write_failed)?;
            }
        }
    }
    Ok(())
}

/// `3d4h`, `12m`, `40s`: how long, compactly.
fn age(seconds: i64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn write_table(out: &mut impl Write, sagas: &[SagaStatus]) -> std::io::Result<()> {
    if sagas.is_empty() {
        return writeln!(out, "no sagas");
    }
    writeln!(
        out,
        "{:<10} {:<36} {:<9} {:<11} {:>9} {:<5} {:<28} last error",
        "type", "id", "status", "phase", "in phase", "stuck", "last trigger"
    )?;
    for s in sagas {
        let trigger = match (&s.last_trigger_kind, &s.last_trigger_name) {
            (Some(kind), Some(name)) => format!("{kind} {name}"),
            _ => String::new(),
        };
        let error: String = s
            .last_error
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        writeln!(
            out,
            "{:<10} {:<36} {:<9} {:<11} {:>9} {:<5} {:<28} {}",
            s.saga_type,
            s.saga_id,
            s.status,
            s.phase.as_deref().unwrap_or("-"),
            age(s.seconds_in_phase),
            if s.stuck { "yes" } else { "" },
            trigger,
            error.replace('\n', " ")
        )?;
    }
    Ok(())
}

fn outcome_text(outcome: &CommandOutcome) -> String {
    match outcome {
        CommandOutcome::Appended { version, position } => {
            format!("appended v{version} @{position}")
        }
        CommandOutcome::AlreadyDone { version, position } => {
            format!("already done v{version} @{position}")
        }
        CommandOutcome::Refused {
            code,
            message,
            then,
        } => format!("refused {code} ({message}), then {then}"),
        CommandOutcome::Failed { error } => format!("failed: {error}"),
    }
}

fn write_steps(out: &mut impl Write, steps: &[StepRow]) -> std::io::Result<()> {
    for s in steps {
        let at = s
            .trigger
            .position
            .map(|p| format!(" @{p}"))
            .unwrap_or_default();
        writeln!(
            out,
            "#{} {} {} {}{at}: {} → {} [{}]{}",
            s.id,
            s.recorded_at.format("%Y-%m-%d %H:%M:%S"),
            s.trigger.kind,
            s.trigger.name,
            s.phase_before.as_deref().unwrap_or("-"),
            s.phase_after.as_deref().unwrap_or("-"),
            s.outcome,
            s.error
                .as_deref()
                .map(|e| format!(" {}", e.replace('\n', " ")))
                .unwrap_or_default()
        )?;
        for c in &s.commands {
            writeln!(
                out,
                "    {} {} {}/{} ({}): {}",
                c.step,
                c.command,
                c.stream_type,
                c.stream_id,
                c.command_id,
                outcome_text(&c.outcome)
            )?;
        }
        for c in &s.calls {
            let answer = match (&c.reply, &c.error) {
                (Some(reply), _) => reply.clone(),
                (None, Some(error)) => format!("no answer: {error}"),
                (None, None) => "-".into(),
            };
            writeln!(out, "    call {} {} → {answer}", c.party, c.request)?;
        }
    }
    Ok(())
}

async fn show(args: OneArgs, out: &mut impl Write) -> Result<(), CliError> {
    let store = store(&args.db).await?;
    let (db, now) = (store.db(), store.clock().now());
    let line = status::get(
        db,
        &args.saga_type,
        &args.saga_id,
        now,
        threshold(&args.stuck_after)?,
    )
    .await
    .map_err(failed)?
    .ok_or_else(|| unknown(&args))?;
    let row = saga_store::load(db, &args.saga_type, &args.saga_id)
        .await
        .map_err(failed)?
        .ok_or_else(|| unknown(&args))?;
    let timers = saga_store::timers_of(db, &args.saga_type, &args.saga_id)
        .await
        .map_err(failed)?;
    let steps = steps::steps_of(db, &args.saga_type, &args.saga_id, steps::KEEP_PER_SAGA)
        .await
        .map_err(failed)?;
    if args.json {
        let mut value = to_json(&line)?;
        value["state"] = row.state;
        value["timers"] = to_json(&timers)?;
        value["steps"] = to_json(&steps)?;
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| CliError::runtime(format!("cannot encode the saga: {e}")))?;
        return writeln!(out, "{text}").map_err(write_failed);
    }
    let mut report = || -> std::io::Result<()> {
        writeln!(
            out,
            "saga {}/{}: {}",
            line.saga_type, line.saga_id, line.status
        )?;
        writeln!(
            out,
            "phase {} for {}{}",
            line.phase.as_deref().unwrap_or("-"),
            age(line.seconds_in_phase),
            if line.stuck { " (stuck)" } else { "" }
        )?;
        if let Some(error) = &line.last_error {
            writeln!(out, "last error: {}", error.replace('\n', " "))?;
        }
        for t in &timers {
            writeln!(
                out,
                "timer {} due {}",
                t.name,
                t.due.format("%Y-%m-%d %H:%M:%S")
            )?;
        }
        writeln!(out, "steps (oldest first):")?;
        write_steps(out, &steps)
    };
    report().map_err(write_failed)
}

fn unknown(args: &OneArgs) -> CliError {
    CliError::runtime(format!("no saga {}/{}", args.saga_type, args.saga_id))
}

async fn exists(store: &Store, args: &OneArgs) -> Result<(), CliError> {
    saga_store::load(store.db(), &args.saga_type, &args.saga_id)
        .await
        .map_err(failed)?
        .map(drop)
        .ok_or_else(|| unknown(args))
}

async fn retry(args: RetryArgs, out: &mut impl Write) -> Result<(), CliError> {
    let store = store(&args.one.db).await?;
    exists(&store, &args.one).await?;
    let retried = admin::retry(
        &store,
        &args.one.saga_type,
        &args.one.saga_id,
        args.timer.as_deref(),
    )
    .await
    .map_err(failed)?;
    if args.one.json {
        let value = json!({
            "retried": !retried.is_empty(),
            "dead_letters": retried.dead_letters,
            "timers": retried.timers,
        });
        return writeln!(out, "{value}").map_err(write_failed);
    }
    if retried.is_empty() {
        return writeln!(out, "nothing to retry: no dead letter and no due timer")
            .map_err(write_failed);
    }
    for id in &retried.dead_letters {
        writeln!(out, "dead letter {id}: retry requested").map_err(write_failed)?;
    }
    for name in &retried.timers {
        writeln!(out, "timer {name}: fires at the timer worker's next round")
            .map_err(write_failed)?;
    }
    Ok(())
}

async fn cancel(args: OneArgs, out: &mut impl Write) -> Result<(), CliError> {
    use aggregates::order::{CancelOrder, CancellationReason, Order, OrderCommand};
    if args.saga_type != CHECKOUT {
        return Err(CliError::config(format!(
            "only `{CHECKOUT}` sagas have an order to cancel"
        )));
    }
    let store = store(&args.db).await?;
    exists(&store, &args).await?;
    let command = OrderCommand::CancelOrder(CancelOrder {
        reason: CancellationReason::MerchantRequested,
        at: store.clock().now(),
    });
    let done = Commands::new(store.clone())
        .execute::<Order>(
            &CommandContext::new("staff:commerce-cli"),
            &args.saga_id,
            command,
        )
        .await
        .map_err(failed)?;
    if args.json {
        let value = json!({
            "stream": format!("order/{}", args.saga_id),
            "version": done.version,
            "position": done.position,
        });
        return writeln!(out, "{value}").map_err(write_failed);
    }
    writeln!(
        out,
        "order {} cancelled (version {}, position {}); the saga compensates",
        args.saga_id, done.version, done.position
    )
    .map_err(write_failed)
}
