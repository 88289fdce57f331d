//! What a local run needs before it starts: private files and one
//! PostgreSQL role and database per service. (Secrets and the edge's TLS
//! are made in [`crate::secrets`].)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sqlx::{Connection, PgConnection};

use crate::mesh::{Mesh, database_name};
use crate::secrets::{Secrets, db_password};

/// Writes `contents` to `path` with `mode`.
pub fn write_private(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// One login role and database per service, each closed to the others.
/// Idempotent: passwords are (re)set to the run's secrets.
pub async fn databases(mesh: &Mesh, admin_url: &str, secrets: &Secrets) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    for w in mesh.workloads().filter(|w| mesh.has_database(w)) {
        let name = database_name(w);
        let password = secrets.get(&db_password(w));
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        // Names are ours and passwords alphanumeric, so formatting is safe.
        let role_sql = if exists {
            format!("ALTER ROLE {name} LOGIN PASSWORD '{password}'")
        } else {
            format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(role_sql))
            .execute(&mut conn)
            .await?;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        if !db_exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name} OWNER {name}"
            )))
            .execute(&mut conn)
            .await?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REVOKE ALL ON DATABASE {name} FROM PUBLIC"
        )))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}
