//! A fresh database per service per test, owned by a fresh login role that
//! can connect to nothing else.

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
#[derive(Debug, Clone)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub role: String,
}

/// Creates role `t_<svc>_<rand>` and database of the same name.
pub async fn create(service: &str) -> TestDb {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    let name = format!("t_{service}_{}", random(10));
    let password = random(24);
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
    }
}
