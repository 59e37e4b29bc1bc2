//! NDJSON: one envelope per line, as `commerce events --json` prints it.

use std::io::{BufWriter, Write};

use infra::RecordedEvent;

use super::Sink;
use crate::replay::format::write_envelope_json;
use crate::replay::ReplayError;

pub(super) struct NdjsonSink<W: Write> {
    out: BufWriter<W>,
    bytes: u64,
}

impl<W: Write> NdjsonSink<W> {
    /// `bytes`: what the file already holds (a resumed export appends).
    pub(super) fn new(out: W, bytes: u64) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 20, out),
            bytes,
        }
    }
}

/// Counts what passes through, so the checkpoint knows the file's length.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    bytes: &'a mut u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Sink for NdjsonSink<W> {
    fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), ReplayError> {
        let mut out = Counting {
            inner: &mut self.out,
            bytes: &mut self.bytes,
        };
        for e in events {
            write_envelope_json(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<u64>, ReplayError> {
        self.out.flush()?;
        Ok(Some(self.bytes))
    }

    fn finish(mut self: Box<Self>) -> Result<(), ReplayError> {
        self.out.flush()?;
        Ok(())
    }
}
