//! Rows to values, shared by both backends: the tables have the same columns
//! in SQLite and PostgreSQL (JSON stored as text, counts as 64-bit integers,
//! rewards as reals; uuids read as text through [`UuidText`]), so one set of
//! readers serves both row types. Each table's columns are listed once here
//! (`*_COLUMNS`), beside the reader that reads them.

use std::collections::HashMap;

use myna_core::experiment::{is_valid_id, legacy_id};
use myna_core::{Experiment, Variant, Visibility};
use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::sql::UuidText;
use super::{
    Account, ApiKey, Delivery, Experiments, HourTotals, Served, StorageError, Token, TokenHash,
    TokenKind, Unreadable, Webhook,
};

/// The columns of an `accounts` row, as [`account_row`] reads them.
pub const ACCOUNT_COLUMNS: &str = "id, email, password_hash, created_ms";
/// The columns of a `tokens` row, as [`token_row`] reads them.
pub const TOKEN_COLUMNS: &str = "hash, kind, account_id, expires_ms";
/// The columns of an `api_keys` row, as [`api_key_row`] reads them.
pub const API_KEY_COLUMNS: &str = "uuid, account_id, name, created_ms";
/// The columns of an `experiments` row, as [`experiment_row`] reads them.
pub const EXPERIMENT_COLUMNS: &str = "uuid, alias, id, account_id, name, visibility, settings";
/// The columns of a `variants` row, as [`variant_row`] reads them (with
/// `experiment`, which [`experiments_from_rows`] matches them by).
pub const VARIANT_COLUMNS: &str = "experiment, id, name, settings, views, total_reward";
/// The columns of a `variant_hours` row, as [`hour_row`] reads them.
pub const HOUR_COLUMNS: &str = "variant, hour_ms, views, total_reward";
/// The columns of a `served_weights` row, as [`served_row`] reads them.
pub const SERVED_COLUMNS: &str = "experiment, variant, hour_ms, weight_sum, answers";
/// The columns of a `webhooks` row, as [`webhook_row`] reads them.
pub const WEBHOOK_COLUMNS: &str = "uuid, account_id, url, created_ms";
/// The columns of a `webhook_deliveries` row with its webhook's `url`, as
/// [`delivery_row`] reads them.
pub const DELIVERY_COLUMNS: &str = "id, webhook, url, experiment, event, body, created_ms, \
     attempts, next_ms, last_attempt_ms, last_status, last_error, delivered_ms";

/// A row of either backend, read by column name. A missing column or a
/// value of another type is an internal error (schema and code disagree).
pub trait Columns {
    /// A text column.
    fn text(&self, name: &str) -> Result<String, StorageError>;
    /// A nullable text column.
    fn optional_text(&self, name: &str) -> Result<Option<String>, StorageError>;
    /// A 64-bit integer column.
    fn integer(&self, name: &str) -> Result<i64, StorageError>;
    /// A nullable 64-bit integer column.
    fn optional_integer(&self, name: &str) -> Result<Option<i64>, StorageError>;
    /// A real column.
    fn real(&self, name: &str) -> Result<f64, StorageError>;
    /// A uuid column as text (see [`UuidText`]).
    fn uuid_text(&self, name: &str) -> Result<String, StorageError>;
    /// A nullable uuid column as text.
    fn optional_uuid_text(&self, name: &str) -> Result<Option<String>, StorageError>;
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    f64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    UuidText: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String, StorageError> {
        self.try_get(name).map_err(|e| column_error(name, &e))
    }
    fn optional_text(&self, name: &str) -> Result<Option<String>, StorageError> {
        self.try_get(name).map_err(|e| column_error(name, &e))
    }
    fn integer(&self, name: &str) -> Result<i64, StorageError> {
        self.try_get(name).map_err(|e| column_error(name, &e))
    }
    fn optional_integer(&self, name: &str) -> Result<Option<i64>, StorageError> {
        self.try_get(name).map_err(|e| column_error(name, &e))
    }
    fn real(&self, name: &str) -> Result<f64, StorageError> {
        self.try_get(name).map_err(|e| column_error(name, &e))
    }
    fn uuid_text(&self, name: &str) -> Result<String, StorageError> {
        let UuidText(text) = self.try_get(name).map_err(|e| column_error(name, &e))?;
        Ok(text)
    }
    fn optional_uuid_text(&self, name: &str) -> Result<Option<String>, StorageError> {
        let text: Option<UuidText> = self.try_get(name).map_err(|e| column_error(name, &e))?;
        Ok(text.map(|UuidText(text)| text))
    }
}

fn column_error(name: &str, error: &sqlx::Error) -> StorageError {
    StorageError::Internal(format!("column {name}: {error}"))
}

/// A uuid column.
pub fn uuid_col(row: &impl Columns, name: &str) -> Result<Uuid, StorageError> {
    let text = row.uuid_text(name)?;
    Uuid::parse_str(&text).map_err(|e| StorageError::Internal(format!("bad uuid in {name}: {e}")))
}

/// A JSON value stored as text.
pub fn json_col(row: &impl Columns, name: &str) -> Result<Value, StorageError> {
    let text = row.text(name)?;
    serde_json::from_str(&text)
        .map_err(|e| StorageError::Internal(format!("bad JSON in {name}: {e}")))
}

/// A count stored as a 64-bit integer (never negative; read as 0 if it were).
pub fn count_col(row: &impl Columns, name: &str) -> Result<u64, StorageError> {
    Ok(u64::try_from(row.integer(name)?).unwrap_or(0))
}

/// A count as the databases store it (saturating).
pub fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An `accounts` row.
pub fn account_row(row: &impl Columns) -> Result<Account, StorageError> {
    Ok(Account {
        id: uuid_col(row, "id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        created_ms: row.integer("created_ms")?,
    })
}

/// A `tokens` row.
pub fn token_row(row: &impl Columns) -> Result<Token, StorageError> {
    let hash = row.text("hash")?;
    let kind = row.text("kind")?;
    Ok(Token {
        hash: TokenHash::from_hex(&hash)
            .ok_or_else(|| StorageError::Internal("bad token hash".into()))?,
        kind: TokenKind::parse(&kind)
            .ok_or_else(|| StorageError::Internal(format!("bad token kind {kind}")))?,
        account_id: uuid_col(row, "account_id")?,
        expires_ms: row.integer("expires_ms")?,
    })
}

/// An `api_keys` row.
pub fn api_key_row(row: &impl Columns) -> Result<ApiKey, StorageError> {
    Ok(ApiKey {
        uuid: uuid_col(row, "uuid")?,
        account_id: uuid_col(row, "account_id")?,
        name: row.optional_text("name")?,
        created_ms: row.integer("created_ms")?,
    })
}

/// An `experiments` row, without its variants. An experiment stored before
/// ids existed (`id` NULL) gets the id its name gave then (`legacy_id`), so its pages keep their class.
pub fn experiment_row(row: &impl Columns) -> Result<Experiment, StorageError> {
    let visibility = row.text("visibility")?;
    let alias = match row.optional_uuid_text("alias")? {
        Some(text) => Some(
            Uuid::parse_str(&text)
                .map_err(|e| StorageError::Internal(format!("bad alias {text}: {e}")))?,
        ),
        None => None,
    };
    let name = row.text("name")?;
    let id = match row.optional_text("id")? {
        Some(id) if is_valid_id(&id) => id,
        Some(id) => return Err(StorageError::Internal(format!("bad experiment id {id:?}"))),
        None => legacy_id(&name),
    };
    Ok(Experiment {
        uuid: uuid_col(row, "uuid")?,
        alias,
        id,
        account_id: uuid_col(row, "account_id")?,
        name,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| StorageError::Internal(format!("bad visibility {visibility}")))?,
        settings: json_col(row, "settings")?,
        variants: Vec::new(),
    })
}

/// A `variants` row.
pub fn variant_row(row: &impl Columns) -> Result<Variant, StorageError> {
    Ok(Variant {
        id: row.text("id")?,
        name: row.text("name")?,
        settings: json_col(row, "settings")?,
        views: count_col(row, "views")?,
        total_reward: row.real("total_reward")?,
    })
}

/// A `variant_hours` row.
pub fn hour_row(row: &impl Columns) -> Result<HourTotals, StorageError> {
    Ok(HourTotals {
        variant: row.text("variant")?,
        hour_ms: row.integer("hour_ms")?,
        views: count_col(row, "views")?,
        total_reward: row.real("total_reward")?,
    })
}

/// A `served_weights` row.
pub fn served_row(row: &impl Columns) -> Result<Served, StorageError> {
    let experiment = row.uuid_text("experiment")?;
    Ok(Served {
        experiment: Uuid::parse_str(&experiment)
            .map_err(|e| StorageError::Internal(format!("served weights of {experiment}: {e}")))?,
        variant: row.text("variant")?,
        hour_ms: row.integer("hour_ms")?,
        weight_sum: row.real("weight_sum")?,
        answers: count_col(row, "answers")?,
    })
}

/// A `webhooks` row.
pub fn webhook_row(row: &impl Columns) -> Result<Webhook, StorageError> {
    Ok(Webhook {
        uuid: uuid_col(row, "uuid")?,
        account_id: uuid_col(row, "account_id")?,
        url: row.text("url")?,
        created_ms: row.integer("created_ms")?,
    })
}

/// A `webhook_deliveries` row with its webhook's `url`.
pub fn delivery_row(row: &impl Columns) -> Result<Delivery, StorageError> {
    Ok(Delivery {
        id: row.integer("id")?,
        webhook: uuid_col(row, "webhook")?,
        url: row.text("url")?,
        experiment: uuid_col(row, "experiment")?,
        event: row.text("event")?,
        body: row.text("body")?,
        created_ms: row.integer("created_ms")?,
        attempts: count_col(row, "attempts")?,
        next_ms: row.optional_integer("next_ms")?,
        last_attempt_ms: row.optional_integer("last_attempt_ms")?,
        last_status: row
            .optional_integer("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.optional_text("last_error")?,
        delivered_ms: row.optional_integer("delivered_ms")?,
    })
}

/// An `experiments` row as read, whatever it holds: its stored uuid text
/// and the experiment, or why it cannot be read and what could be.
pub struct ExperimentRecord {
    key: Result<String, String>,
    read: Result<Experiment, Unreadable>,
}

/// A `variants` row as read: its experiment's stored uuid text, and the
/// variant or why it cannot be read (naming its id).
pub struct VariantRecord {
    key: Option<String>,
    read: Result<Variant, String>,
}

/// An `experiments` row as an [`ExperimentRecord`] (never an error: a row
/// that cannot be read is a record of that). Rows read one at a time
/// ([`crate::storage::sql::Run::fetch_map`]) never sit in memory together.
pub fn experiment_record(row: &impl Columns) -> Result<ExperimentRecord, StorageError> {
    let key = row.uuid_text("uuid").map_err(|e| e.to_string());
    let read = experiment_row(row).map_err(|error| Unreadable {
        uuid: key.clone().unwrap_or_else(|e| format!("({e})")),
        account_id: uuid_col(row, "account_id").ok(),
        visibility: row
            .text("visibility")
            .ok()
            .as_deref()
            .and_then(Visibility::parse),
        reason: error.to_string(),
    });
    Ok(ExperimentRecord { key, read })
}

/// A `variants` row as a [`VariantRecord`] (never an error).
pub fn variant_record(row: &impl Columns) -> Result<VariantRecord, StorageError> {
    Ok(VariantRecord {
        key: row.uuid_text("experiment").ok(),
        read: variant_row(row).map_err(|error| {
            let id = row.text("id").unwrap_or_default();
            format!("variant {id:?}: {error}")
        }),
    })
}

/// The experiments of `experiments` rows with their `variants` rows (in
/// creation order), matched by the stored uuid text. A row that cannot be
/// read makes its experiment [`Unreadable`] (what could be read of it, and
/// why); the others are read as usual.
pub fn experiments_from_rows(
    experiments: &[impl Columns],
    variants: &[impl Columns],
) -> Experiments {
    let experiments = experiments.iter().filter_map(|r| experiment_record(r).ok());
    let variants = variants.iter().filter_map(|r| variant_record(r).ok());
    experiments_from_records(experiments.collect(), variants.collect())
}

/// [`experiments_from_rows`] of rows already read as records.
pub fn experiments_from_records(
    experiments: Vec<ExperimentRecord>,
    variants: Vec<VariantRecord>,
) -> Experiments {
    // Each experiment as read from its rows so far.
    let mut slots: Vec<Result<Experiment, Unreadable>> = Vec::with_capacity(experiments.len());
    let mut index = HashMap::with_capacity(experiments.len());
    for record in experiments {
        if let Ok(key) = record.key {
            index.insert(key, slots.len());
        }
        slots.push(record.read);
    }
    for record in variants {
        let Some(key) = record.key else {
            continue;
        };
        let Some(&i) = index.get(&key) else {
            continue;
        };
        let Ok(experiment) = &mut slots[i] else {
            continue;
        };
        match record.read {
            Ok(variant) => experiment.variants.push(variant),
            Err(reason) => {
                slots[i] = Err(Unreadable {
                    uuid: key,
                    account_id: Some(experiment.account_id),
                    visibility: Some(experiment.visibility),
                    reason,
                });
            }
        }
    }
    let mut out = Experiments::default();
    for slot in slots {
        match slot {
            Ok(experiment) => out.readable.push(experiment),
            Err(unreadable) => out.unreadable.push(unreadable),
        }
    }
    out
}

/// The one experiment of a read filtered by uuid, read or not.
pub fn only(mut experiments: Experiments) -> Option<Result<Experiment, Unreadable>> {
    match experiments.readable.pop() {
        Some(experiment) => Some(Ok(experiment)),
        None => experiments.unreadable.pop().map(Err),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    /// A row holding a readable value in every column a reader asks for,
    /// remembering which it was asked for.
    #[derive(Default)]
    struct Recorder(RefCell<BTreeSet<String>>);

    impl Recorder {
        fn read(&self, name: &str) {
            self.0.borrow_mut().insert(name.to_owned());
        }
    }

    impl Columns for Recorder {
        fn text(&self, name: &str) -> Result<String, StorageError> {
            self.read(name);
            Ok(match name {
                "hash" => "ab".repeat(32),
                "kind" => TokenKind::Api.as_str().to_owned(),
                "visibility" => Visibility::Draft.as_str().to_owned(),
                "settings" => "{}".to_owned(),
                _ => name.to_owned(),
            })
        }
        fn optional_text(&self, name: &str) -> Result<Option<String>, StorageError> {
            self.text(name).map(Some)
        }
        fn integer(&self, name: &str) -> Result<i64, StorageError> {
            self.read(name);
            Ok(1)
        }
        fn optional_integer(&self, name: &str) -> Result<Option<i64>, StorageError> {
            self.integer(name).map(Some)
        }
        fn real(&self, name: &str) -> Result<f64, StorageError> {
            self.read(name);
            Ok(1.0)
        }
        fn uuid_text(&self, name: &str) -> Result<String, StorageError> {
            self.read(name);
            Ok(Uuid::from_u128(7).to_string())
        }
        fn optional_uuid_text(&self, name: &str) -> Result<Option<String>, StorageError> {
            self.uuid_text(name).map(Some)
        }
    }

    fn listed(columns: &str) -> BTreeSet<String> {
        columns.split(", ").map(str::to_owned).collect()
    }

    /// Each table's column list is exactly what its reader reads: a column
    /// read but not listed would be missing from every SELECT built on it.
    #[test]
    fn readers_read_exactly_the_listed_columns() {
        type Reads = fn(&Recorder) -> bool;
        let readers: [(&str, Reads); 7] = [
            (ACCOUNT_COLUMNS, |row| account_row(row).is_ok()),
            (TOKEN_COLUMNS, |row| token_row(row).is_ok()),
            (API_KEY_COLUMNS, |row| api_key_row(row).is_ok()),
            (HOUR_COLUMNS, |row| hour_row(row).is_ok()),
            (SERVED_COLUMNS, |row| served_row(row).is_ok()),
            (WEBHOOK_COLUMNS, |row| webhook_row(row).is_ok()),
            (DELIVERY_COLUMNS, |row| delivery_row(row).is_ok()),
        ];
        for (columns, read) in readers {
            let row = Recorder::default();
            assert!(read(&row), "{columns}");
            assert_eq!(row.0.into_inner(), listed(columns));
        }
        let (experiment, variant) = ([Recorder::default()], [Recorder::default()]);
        let read = experiments_from_rows(&experiment, &variant);
        assert_eq!(read.readable.len(), 1);
        assert_eq!(read.readable[0].variants.len(), 1);
        let [experiment] = experiment;
        let [variant] = variant;
        assert_eq!(experiment.0.into_inner(), listed(EXPERIMENT_COLUMNS));
        assert_eq!(variant.0.into_inner(), listed(VARIANT_COLUMNS));
    }
}
