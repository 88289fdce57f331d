//! Codes sent by email: address confirmation and password reset.
//!
//! A code is 8 random digits, given to the user only in the email. The
//! database keeps `HMAC-SHA256(pepper-derived key, purpose, user, code)`,
//! never the code, so a dump of it cannot be turned into working codes
//! (8 digits are too few to protect an unkeyed hash). At most one code per
//! account and purpose lives: a new one replaces it. A code works once,
//! until it expires, and is burnt after `max_attempts` wrong tries.
//!
//! This module must not hold a transaction across anything but its own
//! statements.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Digits in a code.
pub const CODE_DIGITS: usize = 8;

/// What a code is for (the `purpose` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

/// A new code in clear: goes into one email and nowhere else.
pub struct Code(SecretString);

impl Code {
    pub fn random() -> Self {
        let mut rng = rand::rngs::OsRng;
        let digits: String = (0..CODE_DIGITS)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        Self(SecretString::from(digits))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Keys the code hashes. Derived from the pepper, so it is as secret as
/// the pepper and as absent from the database.
#[derive(Clone)]
pub struct CodeHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(<redacted>)")
    }
}

impl CodeHasher {
    pub fn new(pepper: &SecretString) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(pepper.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"interlock.auth.email-codes.v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, purpose: Purpose, user_id: Uuid, code: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("32-byte key");
        mac.update(purpose.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(user_id.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        mac
    }

    /// The stored form of `code`.
    pub fn hash(&self, purpose: Purpose, user_id: Uuid, code: &str) -> Vec<u8> {
        self.mac(purpose, user_id, code)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `code` is the one stored as `stored` (constant time).
    pub fn matches(&self, purpose: Purpose, user_id: Uuid, code: &str, stored: &[u8]) -> bool {
        self.mac(purpose, user_id, code)
            .verify_slice(stored)
            .is_ok()
    }
}

/// Stores a new code for `user_id` and `purpose`, replacing any earlier
/// one, inside the caller's transaction (registration activates the
/// account and stores its first code together).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn replace(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    hash: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO email_codes (user_id, purpose, code_hash, expires_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, purpose) DO UPDATE
         SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at,
             created_at = now(), attempts = 0",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(hash)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What presenting a code found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The code is right and unexpired. In [`consume`] it is now deleted.
    Valid,
    /// No live code, or a wrong one (counted; burnt at the limit).
    Invalid,
}

/// Checks `code` without using it up: a wrong one is counted (and burns
/// the code at `max_attempts`), a right one stays for [`consume`]. Lets a
/// caller do slow work (hashing a new password) only for a right code.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn check(
    pool: &PgPool,
    hasher: &CodeHasher,
    user_id: Uuid,
    purpose: Purpose,
    code: &str,
    max_attempts: i32,
) -> sqlx::Result<Check> {
    let mut tx = pool.begin().await?;
    let outcome = check_in(&mut tx, hasher, user_id, purpose, code, max_attempts, false).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Checks `code` inside the caller's transaction and, if right, deletes it
/// (single use); a wrong one is counted as in [`check`]. The row is locked
/// until the transaction ends, so two requests cannot both use one code.
pub async fn consume(
    conn: &mut PgConnection,
    hasher: &CodeHasher,
    user_id: Uuid,
    purpose: Purpose,
    code: &str,
    max_attempts: i32,
) -> sqlx::Result<Check> {
    check_in(conn, hasher, user_id, purpose, code, max_attempts, true).await
}

#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
async fn check_in(
    conn: &mut PgConnection,
    hasher: &CodeHasher,
    user_id: Uuid,
    purpose: Purpose,
    code: &str,
    max_attempts: i32,
    use_up: bool,
) -> sqlx::Result<Check> {
    let row: Option<(Vec<u8>, i32)> = sqlx::query_as(
        "SELECT code_hash, attempts FROM email_codes
         WHERE user_id = $1 AND purpose = $2 AND expires_at > now()
         FOR UPDATE",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((stored, attempts)) = row else {
        return Ok(Check::Invalid);
    };
    if hasher.matches(purpose, user_id, code, &stored) {
        if use_up {
            delete(conn, user_id, purpose).await?;
        }
        return Ok(Check::Valid);
    }
    if attempts + 1 >= max_attempts {
        delete(conn, user_id, purpose).await?;
    } else {
        sqlx::query(
            "UPDATE email_codes SET attempts = attempts + 1 WHERE user_id = $1 AND purpose = $2",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(conn)
        .await?;
    }
    Ok(Check::Invalid)
}

async fn delete(conn: &mut PgConnection, user_id: Uuid, purpose: Purpose) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM email_codes WHERE user_id = $1 AND purpose = $2")
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes expired codes.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM email_codes WHERE expires_at <= now()")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pepper: &str) -> CodeHasher {
        CodeHasher::new(&SecretString::from(pepper.to_owned()))
    }

    /// Codes are 8 digits and differ from one draw to the next.
    #[test]
    fn codes_are_eight_random_digits() {
        let codes: Vec<String> = (0..20)
            .map(|_| Code::random().expose().to_owned())
            .collect();
        for c in &codes {
            assert_eq!(c.len(), CODE_DIGITS);
            assert!(c.chars().all(|d| d.is_ascii_digit()), "{c}");
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert!(unique.len() > 15, "{codes:?}");
    }

    /// A stored hash matches only its own code, purpose, account and
    /// pepper, and is not the code.
    #[test]
    fn hashes_bind_code_purpose_account_and_pepper() {
        let h = hasher("pepper-0123456789abcdef0123456789abc");
        let user = Uuid::now_v7();
        let stored = h.hash(Purpose::VerifyEmail, user, "12345678");
        assert!(h.matches(Purpose::VerifyEmail, user, "12345678", &stored));
        assert!(!h.matches(Purpose::VerifyEmail, user, "12345679", &stored));
        assert!(!h.matches(Purpose::ResetPassword, user, "12345678", &stored));
        assert!(!h.matches(Purpose::VerifyEmail, Uuid::now_v7(), "12345678", &stored));
        let other = hasher("pepper-9876543210abcdef0123456789abc");
        assert!(!other.matches(Purpose::VerifyEmail, user, "12345678", &stored));
        assert_ne!(stored, b"12345678");
        assert!(!format!("{h:?}").contains("pepper"));
    }
}
