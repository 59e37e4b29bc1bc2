//! How the replay tools print: money in major units, event envelopes as JSON lines, and
//! aligned tables for people at a terminal.

use std::io::Write;

use aggregates::{Currency, Money};
use chrono::{DateTime, SecondsFormat, Utc};
use infra::RecordedEvent;

/// Digits after the decimal point of a currency (ISO 4217); 2 for all but these.
fn minor_digits(currency: Currency) -> u32 {
    match currency.as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `12.50 EUR`, `-3.00 USD`, `500 JPY`: exact, from integer minor units.
pub fn money(m: &Money) -> String {
    let digits = minor_digits(m.currency);
    let sign = if m.amount < 0 { "-" } else { "" };
    let abs = m.amount.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {}", m.currency);
    }
    let scale = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$} {}",
        abs / scale,
        abs % scale,
        m.currency,
        width = digits as usize
    )
}

/// A stored time as RFC 3339 with microseconds and `Z`.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A time for a table: to the second.
pub fn short_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Writes one event's envelope as a JSON object on one line. The payload and metadata
/// are the stored JSON text as it is (both databases only hold valid JSON), so nothing
/// is parsed and re-serialized on the export path.
pub fn write_envelope_json(out: &mut impl Write, e: &RecordedEvent) -> std::io::Result<()> {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let opt = |v: Option<String>| v.map_or_else(|| "null".to_string(), |v| s(&v));
    write!(
        out,
        "{{\"position\":{},\"event_id\":\"{}\",\"stream_type\":{},\"stream_id\":{},\"version\":{},\
         \"event_type\":{},\"schema_version\":{},\"recorded_at\":\"{}\",\"correlation_id\":{},\
         \"causation_id\":{},\"actor\":{},\"metadata\":{},\"payload\":{}}}",
        e.position,
        e.event_id,
        s(&e.stream_type),
        s(&e.stream_id),
        e.version,
        s(&e.event_type),
        e.schema_version,
        time(&e.recorded_at),
        opt(e.correlation_id.map(|u| u.to_string())),
        opt(e.causation_id.map(|u| u.to_string())),
        opt(e.actor.clone()),
        e.metadata_text.trim(),
        e.payload_text.trim(),
    )
}

/// A table whose columns are as wide as their widest cell; the last column is left
/// unpadded (summaries run long).
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `-` for a missing value in a table.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_in_major_units_exactly() {
        assert_eq!(money(&Money::new(1250, Currency::EUR)), "12.50 EUR");
        assert_eq!(money(&Money::new(-5, Currency::USD)), "-0.05 USD");
        assert_eq!(money(&Money::new(0, Currency::GBP)), "0.00 GBP");
        assert_eq!(money(&Money::new(500, "JPY".parse().unwrap())), "500 JPY");
        assert_eq!(
            money(&Money::new(1234, "KWD".parse().unwrap())),
            "1.234 KWD"
        );
        assert_eq!(
            money(&Money::new(i64::MIN, Currency::EUR)),
            "-92233720368547758.08 EUR"
        );
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let mut t = Table::new(&["A", "LONGER", "LAST"]);
        t.row(vec!["x".into(), "y".into(), "z z z".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A  LONGER  LAST\nx  y       z z z\n"
        );
    }
}
