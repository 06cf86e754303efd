//! PostgreSQL for the tests: a fresh database per test, created through the
//! server named by `MYNA_TEST_POSTGRES` (default the local one) and dropped
//! when the test ends. An unreachable server fails the test loudly, unless
//! `MYNA_TEST_POSTGRES=skip` (then a loud warning, and the test does nothing).

use std::io::Write;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The environment variable naming the test server.
pub const ENV: &str = "MYNA_TEST_POSTGRES";
/// Its default: this machine's cluster (TOOLCHAIN.md).
pub const DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server URL to create test databases through, or `None` to skip.
pub fn admin_url() -> Option<String> {
    let url = std::env::var(ENV).unwrap_or_else(|_| DEFAULT.to_owned());
    if url.trim() == "skip" {
        // Straight to the terminal, past the test harness's capture.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! WARNING: {ENV}=skip: a PostgreSQL test was SKIPPED (not tested against PostgreSQL) !!!\n"
        );
        return None;
    }
    Some(url)
}

/// The same server URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// Runs `f` on a runtime of its own, on another thread (callable from sync
/// tests, async tests and `Drop` alike).
fn block<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f())
    })
    .join()
    .expect("the PostgreSQL helper thread")
}

/// Runs one statement on the server named by `admin`.
pub fn execute(admin: &str, sql: String) -> Result<(), String> {
    let admin = admin.to_owned();
    block(move || {
        Box::pin(async move {
            let mut connection = PgConnection::connect(&admin)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            let _ = connection.close().await;
            Ok(())
        })
    })
}

/// Runs one query answering one integer (`SELECT count(*) …`) on `url`.
pub fn query_i64(url: &str, sql: String) -> Result<i64, String> {
    let url = url.to_owned();
    block(move || {
        Box::pin(async move {
            let mut connection = PgConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            let value: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            let _ = connection.close().await;
            Ok(value)
        })
    })
}

/// A transaction held open on its own connection (say, one holding a
/// table lock) until this drops, which rolls it back.
pub struct HeldTransaction {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldTransaction {
    /// Begins a transaction on `url`, runs `sql` in it, and holds it.
    pub fn hold(url: &str, sql: &str) -> HeldTransaction {
        let (url, sql) = (url.to_owned(), sql.to_owned());
        let (ready, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let mut connection = PgConnection::connect(&url).await.expect("connect");
                let mut tx = connection.begin().await.expect("begin");
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .expect("the held statement");
                ready.send(()).expect("the test waits");
                let _ = tokio::task::spawn_blocking(move || released.recv()).await;
                let _ = tx.rollback().await;
                let _ = connection.close().await;
            });
        });
        started.recv().expect("the transaction began");
        HeldTransaction {
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for HeldTransaction {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A fresh, empty database, dropped (connections and all) when this drops.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its `postgres://` URL.
    pub url: String,
    admin: String,
    /// Its name.
    pub name: String,
}

impl TestDatabase {
    /// A fresh database; `None` when PostgreSQL tests are skipped.
    pub fn create() -> Option<TestDatabase> {
        let admin = admin_url()?;
        let name = format!("myna_t_{}", uuid::Uuid::new_v4().simple());
        if let Err(error) = execute(&admin, format!("CREATE DATABASE {name}")) {
            panic!(
                "\n\n*** PostgreSQL is not reachable at {admin}: {error}\n\
                 *** Start it (pg_ctlcluster --skip-systemctl-redirect 15 main start), \
                 or set {ENV} to a postgres:// URL of a server where databases can be created,\n\
                 *** or set {ENV}=skip to skip the PostgreSQL tests (never in CI).\n"
            );
        }
        Some(TestDatabase {
            url: with_database(&admin, &name),
            admin,
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = execute(&self.admin, sql) {
            eprintln!("could not drop the test database {}: {error}", self.name);
        }
    }
}
