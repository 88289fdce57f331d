//! Login throttling per account and per client address, kept in the
//! database so that every auth replica sees the same counts.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

/// Limits on failed logins within a sliding window.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    pub window: Duration,
    pub per_account: i64,
    pub per_address: i64,
}

/// `Err(retry_after)` when either the account or the address is over its
/// limit at `now`.
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
pub async fn check(
    pool: &PgPool,
    limits: &ThrottleLimits,
    account: &str,
    address: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Result<(), std::time::Duration>> {
    let since = now - limits.window;
    for (scope, key, max) in [
        ("account", account, limits.per_account),
        ("address", address, limits.per_address),
    ] {
        // The failure whose expiry brings the count back under the limit.
        let unlock_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT at FROM login_failures WHERE scope = $1 AND key = $2 AND at > $3
             ORDER BY at DESC OFFSET $4 - 1 LIMIT 1",
        )
        .bind(scope)
        .bind(key)
        .bind(since)
        .bind(max)
        .fetch_optional(pool)
        .await?;
        if let Some(at) = unlock_at {
            let wait = (at + limits.window - now).to_std().unwrap_or_default();
            return Ok(Err(wait.max(std::time::Duration::from_secs(1))));
        }
    }
    Ok(Ok(()))
}

/// Records one failed login against both the account and the address.
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
pub async fn record_failure(pool: &PgPool, account: &str, address: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO login_failures (scope, key) VALUES ('account', $1), ('address', $2)")
        .bind(account)
        .bind(address)
        .execute(pool)
        .await?;
    Ok(())
}

/// Forgets an account's failures after a successful login.
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
pub async fn clear_account(pool: &PgPool, account: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE scope = 'account' AND key = $1")
        .bind(account)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes failures older than the window.
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
pub async fn prune(
    pool: &PgPool,
    limits: &ThrottleLimits,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(now - limits.window)
        .execute(pool)
        .await?
        .rows_affected())
}
