//! Parquet through the crate's low-level column writers (no Arrow: a much smaller build
//! for the same file). One row per event, the columns of the CSV export; the recorded
//! time is a UTC timestamp in microseconds, payload and metadata JSON strings. Rows are
//! buffered per column up to [`ROW_GROUP_ROWS`] and written as one row group, which
//! bounds memory.

use std::fs::File;
use std::sync::Arc;

use infra::RecordedEvent;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::Sink;
use crate::replay::ReplayError;

/// The file's schema.
pub const SCHEMA: &str = "
message event {
    REQUIRED INT64 position;
    REQUIRED BYTE_ARRAY event_id (UTF8);
    REQUIRED BYTE_ARRAY stream_type (UTF8);
    REQUIRED BYTE_ARRAY stream_id (UTF8);
    REQUIRED INT64 version;
    REQUIRED BYTE_ARRAY event_type (UTF8);
    REQUIRED INT32 schema_version;
    REQUIRED INT64 recorded_at (TIMESTAMP(MICROS,true));
    OPTIONAL BYTE_ARRAY correlation_id (UTF8);
    OPTIONAL BYTE_ARRAY causation_id (UTF8);
    OPTIONAL BYTE_ARRAY actor (UTF8);
    REQUIRED BYTE_ARRAY metadata (JSON);
    REQUIRED BYTE_ARRAY payload (JSON);
}
";

/// Rows per row group: large enough for good column chunks, small enough that a
/// buffered group of big payloads stays well under 100 MB.
pub const ROW_GROUP_ROWS: usize = 20_000;

fn parquet_error(e: parquet::errors::ParquetError) -> ReplayError {
    ReplayError::Output(format!("cannot write Parquet: {e}"))
}

/// Column buffers of one row group.
#[derive(Default)]
struct Columns {
    position: Vec<i64>,
    event_id: Vec<ByteArray>,
    stream_type: Vec<ByteArray>,
    stream_id: Vec<ByteArray>,
    version: Vec<i64>,
    event_type: Vec<ByteArray>,
    schema_version: Vec<i32>,
    recorded_at: Vec<i64>,
    /// Optional columns: the present values, and a definition level per row.
    correlation_id: (Vec<ByteArray>, Vec<i16>),
    causation_id: (Vec<ByteArray>, Vec<i16>),
    actor: (Vec<ByteArray>, Vec<i16>),
    metadata: Vec<ByteArray>,
    payload: Vec<ByteArray>,
}

fn bytes(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

fn optional(column: &mut (Vec<ByteArray>, Vec<i16>), value: Option<String>) {
    match value {
        Some(v) => {
            column.0.push(ByteArray::from(v.into_bytes()));
            column.1.push(1);
        }
        None => column.1.push(0),
    }
}

impl Columns {
    fn push(&mut self, e: &RecordedEvent) {
        self.position.push(e.position);
        self.event_id.push(bytes(&e.event_id.to_string()));
        self.stream_type.push(bytes(&e.stream_type));
        self.stream_id.push(bytes(&e.stream_id));
        self.version.push(e.version);
        self.event_type.push(bytes(&e.event_type));
        self.schema_version.push(e.schema_version);
        self.recorded_at.push(e.recorded_at.timestamp_micros());
        optional(
            &mut self.correlation_id,
            e.correlation_id.map(|u| u.to_string()),
        );
        optional(
            &mut self.causation_id,
            e.causation_id.map(|u| u.to_string()),
        );
        optional(&mut self.actor, e.actor.clone());
        self.metadata.push(bytes(&e.metadata_text));
        self.payload.push(bytes(&e.payload_text));
    }

    fn len(&self) -> usize {
        self.position.len()
    }
}

pub(super) struct ParquetSink {
    writer: SerializedFileWriter<File>,
    rows: Columns,
}

impl ParquetSink {
    pub(super) fn new(file: File) -> Result<Self, ReplayError> {
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(parquet_error)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::UNCOMPRESSED)
                .build(),
        );
        let writer = SerializedFileWriter::new(file, schema, props).map_err(parquet_error)?;
        Ok(Self {
            writer,
            rows: Columns::default(),
        })
    }

    /// Writes the buffered rows as one row group, columns in schema order.
    fn write_group(&mut self) -> Result<(), ReplayError> {
        if self.rows.len() == 0 {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let mut group = self.writer.next_row_group().map_err(parquet_error)?;
        let mut index = 0;
        while let Some(mut column) = group.next_column().map_err(parquet_error)? {
            let written = match index {
                0 => column
                    .typed::<Int64Type>()
                    .write_batch(&rows.position, None, None),
                1 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&rows.event_id, None, None),
                2 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&rows.stream_type, None, None),
                3 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&rows.stream_id, None, None),
                4 => column
                    .typed::<Int64Type>()
                    .write_batch(&rows.version, None, None),
                5 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&rows.event_type, None, None),
                6 => column
                    .typed::<Int32Type>()
                    .write_batch(&rows.schema_version, None, None),
                7 => column
                    .typed::<Int64Type>()
                    .write_batch(&rows.recorded_at, None, None),
                8 => column.typed::<ByteArrayType>().write_batch(
                    &rows.correlation_id.0,
                    Some(&rows.correlation_id.1),
                    None,
                ),
                9 => column.typed::<ByteArrayType>().write_batch(
                    &rows.causation_id.0,
                    Some(&rows.causation_id.1),
                    None,
                ),
                10 => column.typed::<ByteArrayType>().write_batch(
                    &rows.actor.0,
                    Some(&rows.actor.1),
                    None,
                ),
                11 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&rows.metadata, None, None),
                12 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&rows.payload, None, None),
                other => {
                    return Err(ReplayError::Output(format!(
                        "the Parquet schema has an unexpected column {other}"
                    )))
                }
            };
            written.map_err(parquet_error)?;
            column.close().map_err(parquet_error)?;
            index += 1;
        }
        group.close().map_err(parquet_error)?;
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), ReplayError> {
        for e in events {
            self.rows.push(e);
            if self.rows.len() >= ROW_GROUP_ROWS {
                self.write_group()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<u64>, ReplayError> {
        Ok(None)
    }

    fn finish(mut self: Box<Self>) -> Result<(), ReplayError> {
        self.write_group()?;
        self.writer.close().map_err(parquet_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parses_with_thirteen_columns() {
        let schema = parse_message_type(SCHEMA).unwrap();
        assert_eq!(schema.get_fields().len(), 13);
        let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, super::super::csv::COLUMNS);
    }
}
