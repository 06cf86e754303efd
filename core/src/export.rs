//! The export form: an experiment's hourly views and rewards per variant
//! (`GET /v2/experiment/{uuid}/export?format=csv|json`), one row per variant
//! and hour that has any, hours oldest first, variants in creation order.
//!
//! Written row by row into a buffer the caller flushes as it likes, so an
//! answer can be streamed. CSV follows RFC 4180 (CRLF lines, fields quoted
//! where needed); a variant id that a spreadsheet would run as a formula
//! (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is written
//! with a leading `'`, as OWASP advises for CSV files opened in spreadsheets.

use serde_json::json;
use uuid::Uuid;

use crate::model::shown_reward;
use crate::problem::{Code, Problem};
use crate::timestamp::format_iso;

/// The format an export is asked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// `text/csv`, with a header line.
    Csv,
    /// One JSON object: `{"typename":"export","uuid":…,"rows":[…]}`.
    Json,
}

/// One row: a variant's totals over one hour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportRow<'a> {
    /// Start of the hour, epoch milliseconds.
    pub hour_ms: i64,
    /// The variant's id.
    pub variant: &'a str,
    /// Views recorded in the hour.
    pub views: u64,
    /// Sum of the rewards recorded in the hour.
    pub total_reward: f64,
}

/// The CSV header line.
pub const CSV_HEADER: &str = "hour,variant,views,totalReward\r\n";

impl ExportFormat {
    /// Reads the `format` parameter (absent: JSON, as every other answer).
    pub fn parse(param: Option<&str>) -> Result<ExportFormat, Problem> {
        match param.map(str::trim) {
            None | Some("json") => Ok(ExportFormat::Json),
            Some("csv") => Ok(ExportFormat::Csv),
            Some(_) => Err(Problem::at(
                Code::InvalidValue,
                "format",
                "`format` must be csv or json.",
            )),
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }

    /// What comes before the first row.
    pub fn start(self, experiment: Uuid) -> String {
        match self {
            ExportFormat::Csv => CSV_HEADER.to_owned(),
            ExportFormat::Json => {
                format!(r#"{{"typename":"export","uuid":"{experiment}","rows":["#)
            }
        }
    }

    /// Appends row number `index` (0 for the first) to `out`.
    pub fn write_row(self, out: &mut String, index: usize, row: &ExportRow<'_>) {
        let reward = json!(shown_reward(row.total_reward)).to_string();
        let hour = format_iso(row.hour_ms);
        match self {
            ExportFormat::Csv => {
                out.push_str(&hour);
                out.push(',');
                push_csv_field(out, row.variant);
                out.push(',');
                out.push_str(&row.views.to_string());
                out.push(',');
                out.push_str(&reward);
                out.push_str("\r\n");
            }
            ExportFormat::Json => {
                if index > 0 {
                    out.push(',');
                }
                let object = json!({
                    "hour": hour,
                    "variant": row.variant,
                    "views": row.views,
                    "totalReward": shown_reward(row.total_reward),
                });
                out.push_str(&object.to_string());
            }
        }
    }

    /// What comes after the last row.
    pub fn end(self) -> &'static str {
        match self {
            ExportFormat::Csv => "",
            ExportFormat::Json => "]}",
        }
    }
}

/// Appends `text` as one CSV field: quoted when it holds a comma, a quote
/// or a line break (quotes doubled), and defused when a spreadsheet would
/// read it as a formula.
fn push_csv_field(out: &mut String, text: &str) {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || text.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}
