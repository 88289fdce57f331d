//! Throttling of the public bcrypt paths, kept in the database so that
//! every auth replica sees the same counts: logins per account and per
//! client address, registrations per client address.
//!
//! An attempt is *reserved* before the password is checked: one short
//! transaction serialises the attempts on the same buckets (an advisory
//! lock per bucket), counts the earlier ones in the window and records the
//! new one only if every bucket is under its limit. So N concurrent guesses
//! can never run more than the limit's worth of bcrypt. A failed login keeps
//! its reservation as the failure record; a successful one deletes it (and
//! the account's earlier failures); work that never ran (the server was
//! busy) gives it back.
//!
//! This module must not hold a transaction beyond the one that reserves.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Limits within a sliding window.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    pub window: Duration,
    /// Login attempts per account (failed or in flight).
    pub per_account: i64,
    /// Login attempts per client address (failed or in flight).
    pub per_address: i64,
    /// Registrations per client address (every one that reached bcrypt).
    pub registrations_per_address: i64,
    /// Emails asked for per typed login or email, and per client address.
    pub emails_per_account: i64,
    pub emails_per_address: i64,
    /// Codes presented per client address.
    pub code_checks_per_address: i64,
}

impl ThrottleLimits {
    pub fn from_config(
        c: &crate::config::ThrottleConfig,
        a: &crate::config::AccountsConfig,
    ) -> Self {
        Self {
            window: Duration::seconds(c.window_secs),
            per_account: c.max_failures_per_account,
            per_address: c.max_failures_per_address,
            registrations_per_address: c.max_registrations_per_address,
            emails_per_account: a.emails_per_account,
            emails_per_address: a.emails_per_address,
            code_checks_per_address: a.code_checks_per_address,
        }
    }
}

/// Whose account bucket a login attempt counts against.
///
/// A known account is keyed by its user id, so its login and its email
/// share one bucket. An unknown (or not yet active) one is keyed by what was
/// typed, normalised, so guesses at it are throttled exactly like guesses at
/// a real account and the answer does not reveal which it is. The prefixes
/// keep a typed string from ever landing in a user's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKey {
    User(Uuid),
    Unknown(String),
}

impl AccountKey {
    /// `typed` must already be trimmed and lowercased.
    pub fn unknown(typed: &str) -> Self {
        Self::Unknown(typed.to_owned())
    }

    /// Its bucket key in `throttle_attempts`.
    pub fn key(&self) -> String {
        match self {
            Self::User(id) => format!("user:{id}"),
            Self::Unknown(typed) => format!("typed:{typed}"),
        }
    }
}

/// Attempts recorded by [`reserve_login`] or [`reserve_registration`];
/// they count until they expire or are released.
#[derive(Debug)]
pub struct Reservation {
    ids: Vec<i64>,
}

/// What asking for an attempt got.
#[derive(Debug)]
#[must_use]
pub enum Attempt {
    /// Under every limit: the attempt is recorded and may run.
    Reserved(Reservation),
    /// A bucket is at its limit (nothing was recorded); the earliest time a
    /// new attempt can succeed is `retry_after` from now.
    Throttled { retry_after: std::time::Duration },
}

/// One counter an attempt is checked against and recorded in.
struct Bucket<'a> {
    /// What is counted: `account`, `address` or `register`.
    scope: &'static str,
    /// Whose attempts: an [`AccountKey`] or a client address.
    key: &'a str,
    /// Attempts allowed within the window.
    limit: i64,
}

/// Reserves one login attempt against the account and the client address.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn reserve_login(
    pool: &PgPool,
    limits: &ThrottleLimits,
    account: &AccountKey,
    address: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Attempt> {
    let account = account.key();
    reserve(
        pool,
        limits.window,
        &[
            Bucket {
                scope: "account",
                key: &account,
                limit: limits.per_account,
            },
            Bucket {
                scope: "address",
                key: address,
                limit: limits.per_address,
            },
        ],
        now,
    )
    .await
}

/// Reserves one registration for the client address.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn reserve_registration(
    pool: &PgPool,
    limits: &ThrottleLimits,
    address: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Attempt> {
    reserve(
        pool,
        limits.window,
        &[Bucket {
            scope: "register",
            key: address,
            limit: limits.registrations_per_address,
        }],
        now,
    )
    .await
}

/// Reserves one email (a resend or a reset) for what was typed (already
/// normalised; never the account's id, so the bucket cannot tell whether
/// the account exists) and for the client address.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn reserve_email(
    pool: &PgPool,
    limits: &ThrottleLimits,
    typed: &str,
    address: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Attempt> {
    reserve(
        pool,
        limits.window,
        &[
            Bucket {
                scope: "email_account",
                key: typed,
                limit: limits.emails_per_account,
            },
            Bucket {
                scope: "email_address",
                key: address,
                limit: limits.emails_per_address,
            },
        ],
        now,
    )
    .await
}

/// Reserves one code check (ConfirmEmail, ResetPassword) for the client
/// address: bounds guessing across many accounts (each code also burns
/// after a few wrong tries).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn reserve_code_check(
    pool: &PgPool,
    limits: &ThrottleLimits,
    address: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Attempt> {
    reserve(
        pool,
        limits.window,
        &[Bucket {
            scope: "code_address",
            key: address,
            limit: limits.code_checks_per_address,
        }],
        now,
    )
    .await
}

/// Atomically: if every bucket holds fewer than its limit of attempts in
/// the window, records one attempt in each.
async fn reserve(
    pool: &PgPool,
    window: Duration,
    buckets: &[Bucket<'_>],
    now: DateTime<Utc>,
) -> sqlx::Result<Attempt> {
    let since = now - window;
    let mut tx = pool.begin().await?;
    // Held until commit; taken in one global order so that two attempts
    // sharing buckets cannot deadlock. Each statement below gets a fresh
    // snapshot (READ COMMITTED), so it sees every attempt committed before
    // the lock was granted.
    let mut locks: Vec<i64> = buckets.iter().map(|b| lock_id(b.scope, b.key)).collect();
    locks.sort_unstable();
    locks.dedup();
    for id in locks {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let mut wait = std::time::Duration::ZERO;
    for bucket in buckets {
        // The attempt whose expiry brings the bucket back under its limit.
        let unlock_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT at FROM throttle_attempts WHERE scope = $1 AND key = $2 AND at > $3
             ORDER BY at DESC OFFSET $4 - 1 LIMIT 1",
        )
        .bind(bucket.scope)
        .bind(bucket.key)
        .bind(since)
        .bind(bucket.limit)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(at) = unlock_at {
            let until = (at + window - now).to_std().unwrap_or_default();
            wait = wait.max(until.max(std::time::Duration::from_secs(1)));
        }
    }
    if !wait.is_zero() {
        return Ok(Attempt::Throttled { retry_after: wait });
    }
    let scopes: Vec<&str> = buckets.iter().map(|b| b.scope).collect();
    let keys: Vec<&str> = buckets.iter().map(|b| b.key).collect();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO throttle_attempts (scope, key, at)
         SELECT s, k, $3 FROM unnest($1::text[], $2::text[]) AS t(s, k)
         RETURNING id",
    )
    .bind(&scopes)
    .bind(&keys)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Attempt::Reserved(Reservation { ids }))
}

/// The advisory-lock id of a bucket: stable across replicas and releases.
fn lock_id(scope: &str, key: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"interlock.auth.throttle\0")
        .chain_update(scope.as_bytes())
        .chain_update(b"\0")
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Gives an attempt back: the work it was reserved for never ran.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn release(pool: &PgPool, reservation: Reservation) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM throttle_attempts WHERE id = ANY($1)")
        .bind(&reservation.ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// After a successful login: the attempt was no failure, and the account's
/// earlier failures are forgiven.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn login_succeeded(
    pool: &PgPool,
    reservation: Reservation,
    account: &AccountKey,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM throttle_attempts
         WHERE id = ANY($1) OR (scope = 'account' AND key = $2)",
    )
    .bind(&reservation.ids)
    .bind(account.key())
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes attempts older than the window.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn prune(
    pool: &PgPool,
    limits: &ThrottleLimits,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM throttle_attempts WHERE at <= $1")
        .bind(now - limits.window)
        .execute(pool)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed login can never fall into a user's bucket, even when it
    /// spells that user's id.
    #[test]
    fn typed_strings_and_user_ids_are_separate_buckets() {
        let id = Uuid::now_v7();
        assert_ne!(
            AccountKey::User(id).key(),
            AccountKey::unknown(&id.to_string()).key()
        );
        assert_ne!(
            lock_id("account", &AccountKey::User(id).key()),
            lock_id("address", &AccountKey::User(id).key())
        );
    }
}
