//! The export form: CSV a spreadsheet reads back as written (quoting,
//! formula-like ids defused), JSON that parses, the `format` parameter.
#![allow(clippy::unwrap_used, missing_docs)]

use myna_core::export::{CSV_HEADER, ExportFormat, ExportRow};
use serde_json::{Value, json};
use uuid::Uuid;

const HOUR: i64 = 1_764_669_600_000; // 2025-12-02T10:00:00Z

fn rows() -> Vec<ExportRow<'static>> {
    vec![
        ExportRow {
            hour_ms: HOUR,
            variant: "plain",
            views: 12,
            total_reward: 3.5,
        },
        ExportRow {
            hour_ms: HOUR,
            variant: "a,b \"c\"",
            views: 1,
            total_reward: 0.0,
        },
        ExportRow {
            hour_ms: HOUR + 3_600_000,
            variant: "=HYPERLINK(1)",
            views: 2,
            total_reward: 1.0,
        },
    ]
}

fn export(format: ExportFormat) -> String {
    let mut out = format.start(Uuid::nil());
    for (index, row) in rows().iter().enumerate() {
        format.write_row(&mut out, index, row);
    }
    out.push_str(format.end());
    out
}

#[test]
fn csv_quotes_what_needs_it_and_defuses_formulas() {
    let csv = export(ExportFormat::Csv);
    assert_eq!(
        csv,
        format!(
            "{CSV_HEADER}\
             2025-12-02T10:00:00.000Z,plain,12,3.5\r\n\
             2025-12-02T10:00:00.000Z,\"a,b \"\"c\"\"\",1,0.0\r\n\
             2025-12-02T11:00:00.000Z,\"'=HYPERLINK(1)\",2,1.0\r\n"
        )
    );
}

#[test]
fn json_parses_to_the_rows() {
    let value: Value = serde_json::from_str(&export(ExportFormat::Json)).unwrap();
    assert_eq!(value["typename"], "export");
    assert_eq!(value["uuid"], Uuid::nil().to_string());
    assert_eq!(
        value["rows"][1],
        json!({"hour": "2025-12-02T10:00:00.000Z", "variant": "a,b \"c\"", "views": 1, "totalReward": 0.0})
    );
    assert_eq!(
        value["rows"][2]["variant"], "=HYPERLINK(1)",
        "JSON keeps ids as they are"
    );
    let empty = format!(
        "{}{}",
        ExportFormat::Json.start(Uuid::nil()),
        ExportFormat::Json.end()
    );
    let empty: Value = serde_json::from_str(&empty).unwrap();
    assert_eq!(empty["rows"], json!([]));
}

#[test]
fn the_format_parameter() {
    assert_eq!(ExportFormat::parse(None), Ok(ExportFormat::Json));
    assert_eq!(ExportFormat::parse(Some("csv")), Ok(ExportFormat::Csv));
    assert_eq!(ExportFormat::parse(Some("json")), Ok(ExportFormat::Json));
    let problem = ExportFormat::parse(Some("xlsx")).unwrap_err();
    assert_eq!(problem.to_json(0)["messages"][0]["path"], "format");
    assert_eq!(ExportFormat::Csv.content_type(), "text/csv; charset=utf-8");
}
