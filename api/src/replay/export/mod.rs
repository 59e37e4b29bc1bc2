//! `commerce export`: a range of the log, in global order, to NDJSON, CSV or Parquet for
//! analysts' tools. The log is read one page at a time and each page written before the
//! next is read, so memory stays flat however many events the range holds (Parquet
//! keeps one row group of bounded size).
//!
//! `--resume` continues an export after the last position it recorded in
//! `<output>.checkpoint`: NDJSON and CSV files are cut back to the bytes that checkpoint
//! covers (a crash may have left half a line) and appended to; Parquet files cannot be
//! appended to, so a resumed Parquet export writes the new events to a part file next
//! to the first one (`events.after-1234.parquet`), which analysts read with a glob.

mod checkpoint;
mod csv;
mod ndjson;
mod parquet;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use infra::store::ScanFilter;
use infra::{RecordedEvent, Store};

use super::point::{parse_point, Point};
use super::ReplayError;
use crate::cli::DatabaseArgs;
pub use checkpoint::Checkpoint;
pub use parquet::SCHEMA as PARQUET_SCHEMA;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON envelope per line.
    Ndjson,
    /// The envelope flattened to columns; metadata and payload stay JSON text.
    Csv,
    /// One row per event, columns as in CSV (payload and metadata as JSON strings).
    Parquet,
}

/// Options of `commerce export`.
#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: Format,
    /// First event: a global position (inclusive) or an RFC 3339 time.
    #[arg(long, value_parser = parse_point)]
    pub from: Option<Point>,
    /// Last event: a global position (inclusive) or an RFC 3339 time.
    #[arg(long, value_parser = parse_point)]
    pub to: Option<Point>,
    /// Only these event types (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// The file to write (standard output when left out; Parquet needs a file).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Continue after the position recorded in `<output>.checkpoint`.
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// Events read per page.
    #[arg(long, default_value_t = 5000)]
    pub batch: i64,
    /// Before exporting, time a plain read of the same range, and report both rates,
    /// their ratio and the peak memory of the process.
    #[arg(long)]
    pub measure: bool,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub events: u64,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    /// The file written (a part file when a Parquet export resumed).
    pub path: Option<PathBuf>,
}

/// Where the events go, one page at a time.
trait Sink {
    fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), ReplayError>;
    /// Flushes and returns the bytes written so far, for the checkpoint; `None` when
    /// a partial file is of no use (Parquet before its footer).
    fn flush(&mut self) -> Result<Option<u64>, ReplayError>;
    fn finish(self: Box<Self>) -> Result<(), ReplayError>;
}

/// The scan filter and first position after which the range starts.
fn range(args: &ExportArgs) -> Result<(ScanFilter, i64), ReplayError> {
    let mut filter = ScanFilter {
        event_types: args.types.iter().map(|t| t.trim().to_string()).collect(),
        ..ScanFilter::default()
    };
    let mut after = 0;
    match args.from {
        Some(Point::Position(p)) => after = (p - 1).max(0),
        Some(Point::Time(t)) => filter.since = Some(t),
        None => {}
    }
    match args.to {
        Some(Point::Position(p)) => filter.to_position = Some(p),
        Some(Point::Time(t)) => filter.until = Some(t),
        None => {}
    }
    match (args.from, args.to) {
        (Some(Point::Position(a)), Some(Point::Position(b))) if b < a => {
            return Err(ReplayError::InvalidArgument(format!(
                "--to {b} is before --from {a}"
            )))
        }
        (Some(Point::Time(a)), Some(Point::Time(b))) if b < a => {
            return Err(ReplayError::InvalidArgument("--to is before --from".into()))
        }
        _ => {}
    }
    if args.batch < 1 {
        return Err(ReplayError::InvalidArgument(
            "--batch must be at least 1".into(),
        ));
    }
    if args.format == Format::Parquet && args.output.is_none() {
        return Err(ReplayError::InvalidArgument(
            "--format parquet needs --output FILE".into(),
        ));
    }
    Ok((filter, after))
}

/// `events.parquet` → `events.after-1234.parquet`.
fn part_path(output: &Path, after: i64) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "events".into());
    let ext = output
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.after-{after}{ext}"))
}

/// Exports the range `args` selects from `store`. Progress goes to `progress` (hidden
/// unless standard error is a terminal).
pub async fn export(
    store: &Store,
    args: &ExportArgs,
    stdout: &mut dyn Write,
    progress: &ProgressBar,
) -> Result<Exported, ReplayError> {
    let (filter, mut after) = range(args)?;
    let checkpoint_path = args.output.as_deref().map(Checkpoint::path_for);
    let resumed = match (&checkpoint_path, args.resume) {
        (Some(path), true) => Checkpoint::read(path)?,
        _ => None,
    };
    if let Some(cp) = &resumed {
        after = after.max(cp.position);
    }
    let mut path = args.output.clone();
    let mut sink: Box<dyn Sink + '_> = match (args.format, &args.output) {
        (Format::Parquet, Some(output)) => {
            if resumed.is_some() {
                path = Some(part_path(output, after));
            }
            let file = create(path.as_deref().unwrap_or(output), None)?;
            Box::new(parquet::ParquetSink::new(file)?)
        }
        (Format::Parquet, None) => unreachable!("checked by range()"),
        (format, Some(output)) => {
            let kept = resumed.as_ref().map(|c| c.bytes);
            let file = create(output, kept)?;
            // The checkpoint counts the whole file, the kept part included.
            let kept = kept.unwrap_or(0);
            match format {
                Format::Ndjson => Box::new(ndjson::NdjsonSink::new(file, kept)),
                _ => Box::new(csv::CsvSink::new(file, resumed.is_none(), kept)?),
            }
        }
        (format, None) => {
            let out = Box::new(&mut *stdout) as Box<dyn Write + '_>;
            match format {
                Format::Ndjson => Box::new(ndjson::NdjsonSink::new(out, 0)),
                _ => Box::new(csv::CsvSink::new(out, true, 0)?),
            }
        }
    };
    let head = store.head_position().await?;
    let end = filter.to_position.map_or(head, |t| t.min(head));
    progress.set_length(end.saturating_sub(after).max(0) as u64);
    let start = after;
    let mut exported = Exported {
        events: 0,
        first_position: None,
        last_position: None,
        path: path.clone(),
    };
    loop {
        let page = store.scan(&filter, after, args.batch).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        exported.first_position.get_or_insert(page[0].position);
        exported.last_position = Some(after);
        exported.events += page.len() as u64;
        sink.write_page(&page)?;
        if let (Some(bytes), Some(path)) = (sink.flush()?, &checkpoint_path) {
            Checkpoint {
                position: after,
                bytes,
            }
            .write(path)?;
        }
        progress.set_position((after - start).max(0) as u64);
    }
    sink.finish()?;
    progress.finish_and_clear();
    if exported.events == 0 && resumed.is_none() {
        return Err(ReplayError::EmptyRange(
            "no events in the range selected".into(),
        ));
    }
    if args.format == Format::Parquet {
        if let (Some(cp_path), Some(last)) = (&checkpoint_path, exported.last_position) {
            Checkpoint {
                position: last,
                bytes: 0,
            }
            .write(cp_path)?;
        }
    }
    Ok(exported)
}

/// Creates `path`, or with `keep` opens it cut back to `keep` bytes for appending.
fn create(path: &Path, keep: Option<u64>) -> Result<std::fs::File, ReplayError> {
    let fail =
        |e: std::io::Error| ReplayError::Output(format!("cannot write {}: {e}", path.display()));
    match keep {
        None => std::fs::File::create(path).map_err(fail),
        Some(bytes) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(fail)?;
            file.set_len(bytes).map_err(fail)?;
            let mut file = file;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(fail)?;
            Ok(file)
        }
    }
}

/// Reads the range without writing anything: the baseline of `--measure`.
async fn read_only(store: &Store, args: &ExportArgs) -> Result<u64, ReplayError> {
    let (filter, mut after) = range(args)?;
    let mut events = 0u64;
    loop {
        let page = store.scan(&filter, after, args.batch).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len() as u64;
    }
    Ok(events)
}

/// Peak resident memory of this process in KiB (Linux), for `--measure`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub async fn run(args: ExportArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    range(&args)?;
    let store = super::open(&args.db).await?;
    let baseline = if args.measure {
        let started = Instant::now();
        let events = read_only(&store, &args).await?;
        Some((events, started.elapsed()))
    } else {
        None
    };
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {percent}% {per_sec} positions, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let exported = export(&store, &args, out, &progress).await?;
    let elapsed = started.elapsed();
    let rate = |n: u64, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let range = match (exported.first_position, exported.last_position) {
        (Some(a), Some(b)) => format!("positions {a}..={b}"),
        _ => "nothing new".into(),
    };
    eprintln!(
        "exported {} events ({range}) in {:.2} s: {:.0} events/s{}",
        exported.events,
        elapsed.as_secs_f64(),
        rate(exported.events, elapsed),
        exported
            .path
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    if let Some((events, took)) = baseline {
        let read = rate(events, took);
        let write = rate(exported.events, elapsed);
        eprintln!(
            "baseline: read the same range alone at {read:.0} events/s; export/read = {:.2}; peak RSS {} MiB",
            write / read.max(1e-9),
            peak_rss_kib().map_or_else(|| "?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
        );
    }
    Ok(())
}
