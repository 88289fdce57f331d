//! A fresh database per service per test, owned by a fresh login role that
//! can connect to nothing else, and gone when the test ends.
//!
//! Dropping the last clone of a [`TestDb`] drops its database (terminating
//! the connections the test's services still hold) and its role. A run
//! that crashed leaves its databases behind; the first database a test
//! process creates starts a sweep of those (see [`sweep_leftovers`]).
//! Set `INTERLOCK_TEST_KEEP_DB=1` to keep them for a post-mortem.

use std::sync::{Arc, Once};

use rand::Rng;
use rand::distributions::Alphanumeric;
use sqlx::{Connection, PgConnection};

/// The superuser URL of the test cluster (set by `scripts/test.sh`).
pub fn admin_url() -> String {
    std::env::var("INTERLOCK_TEST_PG_URL").expect(
        "INTERLOCK_TEST_PG_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL",
    )
}

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A service database: its URL (with the role's password) and names.
/// Clones share the database; it is dropped with the last of them.
#[derive(Debug, Clone)]
#[must_use = "dropping a TestDb drops its database"]
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub role: String,
    _dropper: Arc<Dropper>,
}

/// Creates role `t_<svc>_<rand>` and database of the same name.
pub async fn create(service: &str) -> TestDb {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        std::thread::spawn(|| {
            if let Err(e) = run_blocking(sweep_leftovers(&admin_url())) {
                eprintln!("sweeping leftover test databases: {e}");
            }
        });
    });
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    let name = format!("t_{service}_{}", random(10));
    let password = random(24);
    // From here on, a failing step still removes what was made.
    let dropper = Arc::new(Dropper { name: name.clone() });
    for sql in [
        format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"),
        format!("CREATE DATABASE {name} OWNER {name}"),
        format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("create test database");
    }
    let base = admin
        .rsplit_once('@')
        .map(|(_, hostdb)| hostdb)
        .expect("admin URL has a host");
    let host = base.split_once('/').map(|(h, _)| h).unwrap_or(base);
    TestDb {
        url: format!("postgres://{name}:{password}@{host}/{name}"),
        role: name.clone(),
        name,
        _dropper: dropper,
    }
}

/// Drops the database and role named `name` when the last [`TestDb`]
/// clone goes.
#[derive(Debug)]
struct Dropper {
    name: String,
}

impl Drop for Dropper {
    fn drop(&mut self) {
        if std::env::var_os("INTERLOCK_TEST_KEEP_DB").is_some() {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a thread of our own with its own runtime can. Waiting for it keeps
        // the guarantee: when the test is over, so is its database.
        let name = std::mem::take(&mut self.name);
        let admin = admin_url();
        let done = std::thread::spawn(move || run_blocking(drop_database(&admin, &name)))
            .join()
            .map_err(|_| "the dropping thread panicked".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()));
        // Never panic here: this may run while a failed test unwinds.
        if let Err(e) = done {
            eprintln!("test database not dropped: {e}");
        }
    }
}

/// Runs `work` to completion on a current-thread runtime of its own.
fn run_blocking<F>(work: F) -> Result<(), sqlx::Error>
where
    F: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(sqlx::Error::Io)?
        .block_on(work)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Drops database and role `name`; the services of the test may still be
/// connected, so their connections are terminated (`WITH (FORCE)`).
async fn drop_database(admin: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(admin).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(name)),
        format!("DROP ROLE IF EXISTS {}", quoted(name)),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// Drops the test databases (and their roles) that runs which crashed or
/// were killed left behind: named like ours, nobody connected, and their
/// directory untouched for an hour — no test runs that long, so none of
/// them belongs to a test still running (in this process or another one
/// sharing the cluster). The drop is not forced: a database somebody
/// connects to meanwhile is left alone.
pub async fn sweep_leftovers(admin: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(admin).await?;
    let stale: Vec<String> = sqlx::query_scalar(
        r"SELECT d.datname FROM pg_database d
          WHERE d.datname LIKE 't\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)
            AND (pg_stat_file('base/' || d.oid, true)).modification < now() - interval '1 hour'",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut dropped = 0;
    for name in &stale {
        let db = format!("DROP DATABASE IF EXISTS {}", quoted(name));
        if sqlx::raw_sql(sqlx::AssertSqlSafe(db))
            .execute(&mut conn)
            .await
            .is_ok()
        {
            dropped += 1;
            let role = format!("DROP ROLE IF EXISTS {}", quoted(name));
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(role))
                .execute(&mut conn)
                .await;
        }
    }
    if dropped > 0 {
        eprintln!("dropped {dropped} test databases left by earlier runs");
    }
    Ok(())
}
