//! Each service's login role owns its database and cannot reach another's.

use interlock_itest::Stack;
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
