//! Password hashing: bcrypt over `base64(HMAC-SHA256(pepper, password))`
//! (OWASP's pre-hash form: the pepper lives in configuration, not in the
//! database, and the pre-hash lifts bcrypt's 72-byte limit).
//!
//! Verifying against an unknown account still runs one bcrypt of the same
//! cost, so response time does not tell whether a login exists.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Lowest bcrypt cost accepted by configuration.
pub const MIN_COST: u32 = 10;

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    pepper: SecretString,
    cost: u32,
    /// A hash of a random password at `cost`, verified for unknown logins.
    dummy_hash: String,
}

impl PasswordHasher {
    /// Builds the hasher (computes the dummy hash once, so it blocks).
    pub fn new(pepper: SecretString, cost: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(cost >= MIN_COST, "bcrypt cost must be at least {MIN_COST}");
        let random: [u8; 16] = rand::random();
        let dummy_hash = bcrypt::hash(STANDARD.encode(random), cost)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pepper,
                cost,
                dummy_hash,
            }),
        })
    }

    fn prehash(&self, password: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.inner.pepper.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(password.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Hashes a new password (on the blocking pool: bcrypt is slow on purpose).
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let pre = self.prehash(password.expose_secret());
        let cost = self.inner.cost;
        Ok(tokio::task::spawn_blocking(move || bcrypt::hash(pre, cost)).await??)
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when the account does not exist (and then always fails).
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let pre = self.prehash(password);
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.inner.dummy_hash).to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pre, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        known && ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pepper: &str) -> PasswordHasher {
        PasswordHasher::new(SecretString::from(pepper.to_owned()), MIN_COST).unwrap()
    }

    /// The right password verifies; a wrong one or another pepper does not.
    #[tokio::test]
    async fn verifies_only_the_right_password_and_pepper() {
        let h = hasher("pepper-one-0123456789abcdef0123456789");
        let pw = SecretString::from("correct horse battery".to_owned());
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$2b$10$"));
        assert!(h.verify("correct horse battery", Some(&stored)).await);
        assert!(!h.verify("wrong horse battery", Some(&stored)).await);
        let other = hasher("pepper-two-0123456789abcdef0123456789");
        assert!(!other.verify("correct horse battery", Some(&stored)).await);
    }

    /// An unknown account never verifies, even with the dummy's password.
    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let h = hasher("pepper-0123456789abcdef0123456789abc");
        assert!(!h.verify("anything", None).await);
    }

    /// Costs below the minimum are refused.
    #[test]
    fn cost_below_minimum_is_refused() {
        assert!(PasswordHasher::new(SecretString::from("p".to_owned()), 9).is_err());
    }
}
