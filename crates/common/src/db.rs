//! The service's PostgreSQL pool: connect with the service's own login role
//! and apply its migrations (under sqlx's advisory lock, so replicas starting
//! together do not race).

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// `[database]`, defined with the other sections in [`crate::settings`].
pub use crate::settings::DatabaseSettings;

/// Connects and migrates.
pub async fn connect(settings: &DatabaseSettings, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .connect(settings.url.expose_secret())
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the database: {e}"))?;
    migrator
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?;
    Ok(pool)
}
