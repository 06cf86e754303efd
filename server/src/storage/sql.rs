//! SQL written once for both backends. A [`Statement`] is SQL text with
//! numbered parameters (`$1`, which SQLite reads as well as PostgreSQL) and
//! its values as data; each backend runs it on a connection of its choosing
//! ([`Run`]). Uuids are where the dialects differ (text in SQLite, the
//! native `uuid` type in PostgreSQL): every uuid is bound as a [`UuidParam`]
//! and read as a [`UuidText`], the one place that knows it, so no SQL casts
//! a uuid. (PostgreSQL's own statements bind arrays of uuids as `uuid[]`,
//! its native type, directly.)

use std::borrow::Cow;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{AssertSqlSafe, Database, Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::StorageError;
use super::rows::Columns;

/// A value bound to a statement's parameter.
#[derive(Debug, Clone)]
enum Arg<'a> {
    Uuid(Uuid),
    OptionalUuid(Option<Uuid>),
    Text(Cow<'a, str>),
    OptionalText(Option<&'a str>),
    Integer(i64),
    Real(f64),
    OptionalInteger(Option<i64>),
}

/// SQL text with numbered parameters (`$1`, `$2`, ...) and their values, in
/// order.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

impl<'a> Statement<'a> {
    /// A statement with no values bound yet.
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Statement<'a> {
        Statement {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Binds a uuid to the next parameter.
    pub fn uuid(mut self, value: Uuid) -> Self {
        self.args.push(Arg::Uuid(value));
        self
    }

    /// Binds a uuid or NULL to the next parameter.
    pub fn optional_uuid(mut self, value: Option<Uuid>) -> Self {
        self.args.push(Arg::OptionalUuid(value));
        self
    }

    /// Binds text to the next parameter.
    pub fn text(mut self, value: impl Into<Cow<'a, str>>) -> Self {
        self.args.push(Arg::Text(value.into()));
        self
    }

    /// Binds text or NULL to the next parameter.
    pub fn optional_text(mut self, value: Option<&'a str>) -> Self {
        self.args.push(Arg::OptionalText(value));
        self
    }

    /// Binds a 64-bit integer to the next parameter.
    pub fn integer(mut self, value: i64) -> Self {
        self.args.push(Arg::Integer(value));
        self
    }

    /// Binds a count or limit to the next parameter (held to `i64::MAX`).
    pub fn count(self, value: usize) -> Self {
        self.integer(i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// Binds a 64-bit float to the next parameter.
    pub fn real(mut self, value: f64) -> Self {
        self.args.push(Arg::Real(value));
        self
    }

    /// Binds a 64-bit integer or NULL to the next parameter.
    pub fn optional_integer(mut self, value: Option<i64>) -> Self {
        self.args.push(Arg::OptionalInteger(value));
        self
    }

    /// The statement as a query of either backend, its values bound.
    pub fn query<DB>(self) -> Query<'static, DB, DB::Arguments>
    where
        DB: Database,
        UuidParam: for<'t> Encode<'t, DB> + Type<DB>,
        Option<UuidParam>: for<'t> Encode<'t, DB> + Type<DB>,
        for<'t> Cow<'t, str>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        i64: for<'t> Encode<'t, DB> + Type<DB>,
        f64: for<'t> Encode<'t, DB> + Type<DB>,
        Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
    {
        let mut query = sqlx::query(AssertSqlSafe(self.sql));
        for arg in self.args {
            query = match arg {
                Arg::Uuid(value) => query.bind(UuidParam(value)),
                Arg::OptionalUuid(value) => query.bind(value.map(UuidParam)),
                Arg::Text(value) => query.bind(value),
                Arg::OptionalText(value) => query.bind(value),
                Arg::Integer(value) => query.bind(value),
                Arg::Real(value) => query.bind(value),
                Arg::OptionalInteger(value) => query.bind(value),
            };
        }
        query
    }
}

/// How a backend runs a [`Statement`] on a connection of its choosing
/// (SQLite: the writer for [`execute`](Run::execute), a reader for
/// [`fetch`](Run::fetch); PostgreSQL: the pool of the current call's purpose).
pub trait Run: Sync {
    /// A row of this backend.
    type Row: Columns + Send;
    /// Runs a statement that writes; how many rows it changed.
    fn execute<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send + 'a;
    /// Runs a statement that reads; its rows.
    fn fetch<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StorageError>> + Send + 'a;
    /// Runs a statement that reads, each row turned into a `T` by `map` as
    /// it arrives: a large read (a year of hourly totals) holds its values,
    /// never all of the driver's rows at once.
    fn fetch_map<'a, T: Send + 'static>(
        &'a self,
        statement: Statement<'a>,
        map: fn(&Self::Row) -> Result<T, StorageError>,
    ) -> impl Future<Output = Result<Vec<T>, StorageError>> + Send + 'a;
    /// Runs `guard`, then, only if it changed a row, every statement of
    /// `then`, all in ONE transaction on a writing connection: `None` if
    /// `guard` changed no row (a compare-and-set: of several writers racing
    /// with the same guard, one does the rest), else how many rows `then`
    /// changed. A guard that rewrites a row unchanged is a lock: writers
    /// with the same guard run `then` one after another, each seeing what
    /// the one before committed.
    fn guarded<'a>(
        &'a self,
        guard: Statement<'a>,
        then: Vec<Statement<'a>>,
    ) -> impl Future<Output = Result<Option<u64>, StorageError>> + Send + 'a;
}

/// Runs `insert` (one that checks a limit of the account, a count in its
/// own `WHERE`) under a lock of the account's row (rewritten unchanged by
/// [`Run::guarded`]'s guard): inserts racing on PostgreSQL, whose statements
/// each read the database as it was when they started, count one after
/// another, as on SQLite. Whether it stored a row.
pub async fn insert_for_account(
    db: &impl Run,
    account_id: Uuid,
    insert: Statement<'_>,
) -> Result<bool, StorageError> {
    let lock = Statement::new("UPDATE accounts SET created_ms = created_ms WHERE id = $1")
        .uuid(account_id);
    let inserted = db.guarded(lock, vec![insert]).await?;
    Ok(inserted.is_some_and(|rows| rows > 0))
}

/// A uuid bound as either database stores it: hyphenated lower-case text in
/// SQLite, the native `uuid` type in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UuidParam(pub Uuid);

impl Type<Sqlite> for UuidParam {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for UuidParam {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.to_string(), buf)
    }
}

/// The same text for the SQLite group commit's own connection (rusqlite).
impl rusqlite::ToSql for UuidParam {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.0.to_string()))
    }
}

impl Type<Postgres> for UuidParam {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for UuidParam {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// A uuid column read as text: SQLite's text as stored (which may not be a
/// uuid: a corrupt row is reported with it), PostgreSQL's `uuid` formatted
/// the same way (hyphenated, lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UuidText(pub String);

impl Type<Sqlite> for UuidText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for UuidText {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <String as Decode<Sqlite>>::decode(value).map(UuidText)
    }
}

impl Type<Postgres> for UuidText {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for UuidText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<Postgres>>::decode(value).map(|uuid| UuidText(uuid.to_string()))
    }
}

/// Collects `rows` (a driver's stream of rows) through `map`, one row at a
/// time.
pub async fn collect_mapped<R, T>(
    mut rows: std::pin::Pin<
        Box<dyn futures_core::Stream<Item = Result<R, sqlx::Error>> + Send + '_>,
    >,
    map_err: fn(sqlx::Error) -> StorageError,
    map: fn(&R) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let mut out = Vec::new();
    while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
        out.push(map(&row.map_err(map_err)?)?);
    }
    Ok(out)
}
