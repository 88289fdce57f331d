//! auth's SQL: credentials, sessions and refresh-token families.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A stored account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credential {
    pub user_id: Uuid,
    pub login: String,
    pub email: String,
    pub password_hash: String,
    pub status: String,
    pub first_name: String,
    pub last_name: String,
    /// When the address was confirmed (ConfirmEmail or a password reset);
    /// set at activation when the server does not require confirmation.
    pub email_verified_at: Option<DateTime<Utc>>,
}

impl Credential {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

const CREDENTIAL_COLUMNS: &str =
    "user_id, login, email, password_hash, status, first_name, last_name, email_verified_at";

/// The account whose login or email is `key` (already lowercased).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn find_by_login_or_email(pool: &PgPool, key: &str) -> sqlx::Result<Option<Credential>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE login = $1 OR email = $1 LIMIT 1"
    )))
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Accounts that hold `login` or `email`.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn find_conflicts(
    pool: &PgPool,
    login: &str,
    email: &str,
) -> sqlx::Result<Vec<Credential>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE login = $1 OR email = $2"
    )))
    .bind(login)
    .bind(email)
    .fetch_all(pool)
    .await
}

/// Inserts a pending account, claimed by `claim` for `lease`. A unique
/// violation means someone else took the login or email meanwhile.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", user_id = %c.user_id))]
pub async fn insert_pending(
    pool: &PgPool,
    c: &Credential,
    claim: Uuid,
    lease: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO credentials (user_id, login, email, password_hash, status, first_name, last_name,
                                  claim_token, claimed_until)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, now() + $8)",
    )
    .bind(c.user_id)
    .bind(&c.login)
    .bind(&c.email)
    .bind(&c.password_hash)
    .bind(&c.first_name)
    .bind(&c.last_name)
    .bind(claim)
    .bind(lease)
    .execute(pool)
    .await?;
    Ok(())
}

/// What claiming a pending account found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The claim is ours until the lease ends.
    Held,
    /// Someone else's unexpired claim holds it.
    Taken,
    /// It is active: registration finished.
    Active,
    /// It no longer exists: registration was compensated.
    Gone,
}

/// Claims a pending account for `lease`, or renews our own claim. Another
/// party's claim is only taken over once its lease has run out.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn claim_pending(
    pool: &PgPool,
    user_id: Uuid,
    claim: Uuid,
    lease: Duration,
) -> sqlx::Result<Claim> {
    let held = sqlx::query(
        "UPDATE credentials SET claim_token = $2, claimed_until = now() + $3
         WHERE user_id = $1 AND status = 'pending'
           AND (claim_token IS NULL OR claim_token = $2 OR claimed_until < now())",
    )
    .bind(user_id)
    .bind(claim)
    .bind(lease)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if held {
        return Ok(Claim::Held);
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(match status.as_deref() {
        None => Claim::Gone,
        Some("active") => Claim::Active,
        Some(_) => Claim::Taken,
    })
}

/// Gives up our claim so that a retry need not wait for the lease.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn release_claim(pool: &PgPool, user_id: Uuid, claim: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE credentials SET claim_token = NULL, claimed_until = NULL
         WHERE user_id = $1 AND claim_token = $2",
    )
    .bind(user_id)
    .bind(claim)
    .execute(pool)
    .await?;
    Ok(())
}

/// The account `user_id`.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn find_by_id(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Option<Credential>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1"
    )))
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// How an account starts once registration is done.
pub enum Activation<'a> {
    /// Its address counts as confirmed (the server does not ask).
    Verified,
    /// It must confirm its address with this code (hash, expiry), stored
    /// in the same transaction as the activation: an active account always
    /// has had a code sent, and a code never exists for a pending one.
    AwaitingCode {
        hash: &'a [u8],
        expires_at: DateTime<Utc>,
    },
}

/// Activates a pending account if our claim still holds it. False when the
/// claim was lost (it expired and someone else took over).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn activate(
    pool: &PgPool,
    user_id: Uuid,
    claim: Uuid,
    activation: Activation<'_>,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let verified = matches!(activation, Activation::Verified);
    let done = sqlx::query(
        "UPDATE credentials
         SET status = 'active', activated_at = now(), claim_token = NULL, claimed_until = NULL,
             email_verified_at = CASE WHEN $3 THEN now() END
         WHERE user_id = $1 AND status = 'pending' AND claim_token = $2",
    )
    .bind(user_id)
    .bind(claim)
    .bind(verified)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !done {
        return Ok(false);
    }
    if let Activation::AwaitingCode { hash, expires_at } = activation {
        crate::codes::replace(
            &mut tx,
            user_id,
            crate::codes::Purpose::VerifyEmail,
            hash,
            expires_at,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Marks the address of `user_id` confirmed (inside the transaction that
/// used the code).
pub async fn confirm_email(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE credentials SET email_verified_at = now()
         WHERE user_id = $1 AND email_verified_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inside the caller's transaction: sets the account's password hash, ends
/// its sessions but `keep` (refresh tokens at once; access tokens through
/// the revocation list), forgives its login failures, drops any reset code,
/// and with `confirm_email` marks the address confirmed. Returns how many
/// sessions ended.
pub async fn set_password(
    conn: &mut PgConnection,
    user_id: Uuid,
    password_hash: &str,
    keep: Option<Uuid>,
    reason: &str,
    confirm_email: bool,
) -> sqlx::Result<u64> {
    sqlx::query(
        "UPDATE credentials
         SET password_hash = $2,
             email_verified_at = CASE WHEN $3 THEN COALESCE(email_verified_at, now())
                                      ELSE email_verified_at END
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(password_hash)
    .bind(confirm_email)
    .execute(&mut *conn)
    .await?;
    let ended = sqlx::query(
        // Expired sessions too: a refresh just before a session's end
        // issued an access token that outlives it, and only a revoked
        // session puts that token on the revocation list.
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL
           AND ($3::uuid IS NULL OR id <> $3)",
    )
    .bind(user_id)
    .bind(reason)
    .bind(keep)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM email_codes WHERE user_id = $1 AND purpose = 'reset_password'")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM throttle_attempts WHERE scope = 'account' AND key = $1")
        .bind(crate::throttle::AccountKey::User(user_id).key())
        .execute(&mut *conn)
        .await?;
    Ok(ended)
}

/// Deletes a pending account if our claim still holds it.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn delete_pending(pool: &PgPool, user_id: Uuid, claim: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "DELETE FROM credentials WHERE user_id = $1 AND status = 'pending' AND claim_token = $2",
    )
    .bind(user_id)
    .bind(claim)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Pending accounts older than `before` that nobody is working on
/// (abandoned registrations).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn stale_pending(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT user_id FROM credentials
         WHERE status = 'pending' AND created_at < $1
           AND (claimed_until IS NULL OR claimed_until < now())
         LIMIT 100",
    )
    .bind(before)
    .fetch_all(pool)
    .await
}

/// Starts a session with its first refresh token, if the account is still
/// active with the password hash the login verified; `None` when it is not
/// (a reset or change committed while bcrypt ran). The account's row is
/// share-locked until the session exists, so a concurrent password update
/// either waits and then revokes this session with the others, or commits
/// first and this login is refused.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn create_session(
    pool: &PgPool,
    user_id: Uuid,
    verified_hash: &str,
    refresh_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    let session_id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let current = sqlx::query_scalar::<_, i32>(
        "SELECT 1 FROM credentials
         WHERE user_id = $1 AND password_hash = $2 AND status = 'active'
         FOR SHARE",
    )
    .bind(user_id)
    .bind(verified_hash)
    .fetch_optional(&mut *tx)
    .await?;
    if current.is_none() {
        return Ok(None);
    }
    sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(session_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    insert_refresh(&mut tx, refresh_hash, session_id, expires_at).await?;
    tx.commit().await?;
    Ok(Some(session_id))
}

async fn insert_refresh(
    conn: &mut PgConnection,
    hash: &[u8],
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(hash)
    .bind(session_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What presenting a refresh token did.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Used up; `new_hash` now belongs to the session.
    Rotated {
        user_id: Uuid,
        session_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    /// It had been used before: the session is now revoked.
    Reused { session_id: Uuid },
    /// Unknown, expired, or its session ended.
    Invalid,
}

#[derive(sqlx::FromRow)]
struct PresentedToken {
    session_id: Uuid,
    token_expires: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    user_id: Uuid,
    revoked_at: Option<DateTime<Utc>>,
    session_expires: DateTime<Utc>,
}

/// Uses `old_hash` once and issues `new_hash` in its place, atomically.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn rotate_refresh(
    pool: &PgPool,
    old_hash: &[u8],
    new_hash: &[u8],
    now: DateTime<Utc>,
) -> sqlx::Result<RefreshOutcome> {
    let mut tx = pool.begin().await?;
    let row: Option<PresentedToken> = sqlx::query_as(
        "SELECT r.session_id, r.expires_at AS token_expires, r.used_at, s.user_id,
                s.revoked_at, s.expires_at AS session_expires
         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
         WHERE r.token_hash = $1
         FOR UPDATE OF r, s",
    )
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(PresentedToken {
        session_id,
        token_expires,
        used_at,
        user_id,
        revoked_at,
        session_expires,
    }) = row
    else {
        return Ok(RefreshOutcome::Invalid);
    };
    if used_at.is_some() {
        revoke(&mut tx, session_id, "refresh token reuse", now).await?;
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused { session_id });
    }
    if revoked_at.is_some() || token_expires <= now || session_expires <= now {
        return Ok(RefreshOutcome::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
        .bind(old_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_refresh(&mut tx, new_hash, session_id, session_expires).await?;
    tx.commit().await?;
    Ok(RefreshOutcome::Rotated {
        user_id,
        session_id,
        expires_at: session_expires,
    })
}

async fn revoke(
    conn: &mut PgConnection,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3, revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a session (logout). Idempotent.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn revoke_session(pool: &PgPool, session_id: Uuid, reason: &str) -> sqlx::Result<bool> {
    let mut conn = pool.acquire().await?;
    revoke(&mut conn, session_id, reason, Utc::now()).await
}
