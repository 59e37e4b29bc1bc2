//! CSV: the envelope flattened to one column per field; metadata and payload stay JSON
//! text in their cells (quoted by the `csv` crate as RFC 4180 asks).

use std::io::Write;

use infra::RecordedEvent;

use super::Sink;
use crate::replay::format::time;
use crate::replay::ReplayError;

/// The columns, in order (also the Parquet columns).
pub const COLUMNS: [&str; 13] = [
    "position",
    "event_id",
    "stream_type",
    "stream_id",
    "version",
    "event_type",
    "schema_version",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "actor",
    "metadata",
    "payload",
];

pub(super) struct CsvSink<W: Write> {
    out: csv::Writer<Counted<W>>,
}

/// A writer that counts the bytes it passed on.
struct Counted<W: Write> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn csv_error(e: csv::Error) -> ReplayError {
    ReplayError::Output(format!("cannot write CSV: {e}"))
}

impl<W: Write> CsvSink<W> {
    /// `bytes`: what the file already holds (a resumed export appends, without header).
    pub(super) fn new(out: W, header: bool, bytes: u64) -> Result<Self, ReplayError> {
        let mut out = csv::WriterBuilder::new()
            .buffer_capacity(1 << 20)
            .from_writer(Counted { inner: out, bytes });
        if header {
            out.write_record(COLUMNS).map_err(csv_error)?;
        }
        Ok(Self { out })
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), ReplayError> {
        for e in events {
            let position = e.position.to_string();
            let version = e.version.to_string();
            let schema = e.schema_version.to_string();
            let id = e.event_id.to_string();
            let correlation = e.correlation_id.map(|u| u.to_string()).unwrap_or_default();
            let causation = e.causation_id.map(|u| u.to_string()).unwrap_or_default();
            let recorded = time(&e.recorded_at);
            self.out
                .write_record([
                    position.as_str(),
                    id.as_str(),
                    e.stream_type.as_str(),
                    e.stream_id.as_str(),
                    version.as_str(),
                    e.event_type.as_str(),
                    schema.as_str(),
                    recorded.as_str(),
                    correlation.as_str(),
                    causation.as_str(),
                    e.actor.as_deref().unwrap_or(""),
                    e.metadata_text.as_str(),
                    e.payload_text.as_str(),
                ])
                .map_err(csv_error)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<u64>, ReplayError> {
        self.out.flush()?;
        Ok(Some(self.out.get_ref().bytes))
    }

    fn finish(mut self: Box<Self>) -> Result<(), ReplayError> {
        self.out.flush()?;
        Ok(())
    }
}
