//! The service's PostgreSQL pool: connect with the service's own login role
//! and apply its migrations (under sqlx's advisory lock, so replicas starting
//! together do not race).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// `[database]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db`; secret (it holds a password).
    pub url: SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_acquire_timeout_secs")]
    pub acquire_timeout_secs: u64,
}

fn default_max_connections() -> u32 {
    10
}

fn default_acquire_timeout_secs() -> u64 {
    5
}

impl DatabaseSettings {
    /// Settings for a URL with default pool limits.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: default_max_connections(),
            acquire_timeout_secs: default_acquire_timeout_secs(),
        }
    }

    /// Adds every problem with these settings to `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problems.push("database.url: must start with postgres://".into());
        }
        if self.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".into());
        }
    }
}

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
