//! Each service's login role owns its database and cannot reach another's;
//! a test's databases last as long as the test.

use interlock_itest::{Stack, pg};
use sqlx::{Connection, PgConnection};

/// users' role connects to its own database and is refused by roles' one.
#[tokio::test]
async fn a_service_role_cannot_open_another_services_database() {
    let s = Stack::with_test_tokens().await;
    PgConnection::connect(&s.users_db.url)
        .await
        .expect("own database");
    let (server, _own) = s.users_db.url.rsplit_once('/').expect("url has a database");
    let foreign = format!("{server}/{}", s.roles_db.name);
    let err = PgConnection::connect(&foreign)
        .await
        .expect_err("another service's database");
    assert!(err.to_string().contains("permission denied"), "{err}");
}

/// Dropping the last handle of a test database drops the database and its
/// role, even while a connection to it is still open (as the services'
/// pools are when a test ends).
#[tokio::test]
async fn a_test_database_and_its_role_are_dropped_with_the_last_handle() {
    let db = pg::create("dropped").await;
    let name = db.name.clone();
    let mut open = PgConnection::connect(&db.url).await.expect("connect");
    let exists = || async {
        let mut admin = PgConnection::connect(&pg::admin_url())
            .await
            .expect("admin");
        sqlx::query_as::<_, (bool, bool)>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1),
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("look up")
    };
    let clone = db.clone();
    drop(db);
    assert_eq!(exists().await, (true, true), "a clone keeps it");
    drop(clone);
    assert_eq!(exists().await, (false, false), "gone with the last clone");
    sqlx::query("SELECT 1")
        .execute(&mut open)
        .await
        .expect_err("the open connection was terminated");
}
