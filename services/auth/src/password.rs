//! Password hashing: bcrypt over `base64(HMAC-SHA256(pepper, password))`
//! (OWASP's pre-hash form: the pepper lives in configuration, not in the
//! database, and the pre-hash lifts bcrypt's 72-byte limit).
//!
//! Verifying against an unknown account still runs one bcrypt of the same
//! cost, so response time does not tell whether a login exists.
//!
//! bcrypt runs on the blocking pool, at most [`HashLimits::concurrency`]
//! at once (registrations at most half of them); a request that waits for a
//! turn longer than the queue timeout is refused as [`Busy`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Lowest bcrypt cost accepted by configuration.
pub const MIN_COST: u32 = 10;

/// Bounds on bcrypt work, so that a flood of public requests queues (and is
/// turned away) instead of pinning every core.
#[derive(Debug, Clone, Copy)]
pub struct HashLimits {
    /// bcrypt runs at once.
    pub concurrency: usize,
    /// The longest wait for a turn; longer is [`Busy`].
    pub queue_timeout: Duration,
}

impl HashLimits {
    /// From `[throttle]`: one run per core unless configured.
    pub fn from_config(c: &crate::config::ThrottleConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            concurrency: if c.max_concurrent_hashes == 0 {
                cores
            } else {
                c.max_concurrent_hashes
            },
            queue_timeout: Duration::from_millis(c.hash_queue_timeout_ms),
        }
    }
}

/// Which request the bcrypt work is for. Registrations may hold at most
/// half of the slots (at least one), so a registration flood leaves logins
/// a share of the CPU instead of queueing them behind itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Login,
    Registration,
}

/// No bcrypt slot came free within the queue timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server busy, retry later")]
pub struct Busy;

/// Why a new password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    #[error(transparent)]
    Busy(#[from] Busy),
    /// bcrypt itself failed or its task panicked: a bug.
    #[error("bcrypt: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    pepper: SecretString,
    cost: u32,
    /// A hash of a random password at `cost`, verified for unknown logins.
    dummy_hash: String,
    /// One permit per concurrent bcrypt run.
    slots: Arc<Semaphore>,
    /// Taken by registrations before a slot.
    registration_slots: Arc<Semaphore>,
    queue_timeout: Duration,
}

/// A turn at bcrypt; moved into the blocking task, so the slot stays taken
/// until bcrypt has finished even if the request is abandoned meanwhile.
struct Turn {
    _lane: Option<OwnedSemaphorePermit>,
    _slot: OwnedSemaphorePermit,
}

impl PasswordHasher {
    /// Builds the hasher (computes the dummy hash once, so it blocks).
    pub fn new(pepper: SecretString, cost: u32, limits: HashLimits) -> anyhow::Result<Self> {
        anyhow::ensure!(cost >= MIN_COST, "bcrypt cost must be at least {MIN_COST}");
        anyhow::ensure!(
            limits.concurrency >= 1,
            "bcrypt concurrency must be at least 1"
        );
        let random: [u8; 16] = rand::random();
        let dummy_hash = bcrypt::hash(STANDARD.encode(random), cost)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pepper,
                cost,
                dummy_hash,
                slots: Arc::new(Semaphore::new(limits.concurrency)),
                registration_slots: Arc::new(Semaphore::new((limits.concurrency / 2).max(1))),
                queue_timeout: limits.queue_timeout,
            }),
        })
    }

    fn prehash(&self, password: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.inner.pepper.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(password.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Waits (at most the queue timeout) for a turn in `lane`.
    async fn turn(&self, lane: Lane) -> Result<Turn, Busy> {
        let wait = async {
            let lane = match lane {
                Lane::Login => None,
                Lane::Registration => {
                    Some(self.inner.registration_slots.clone().acquire_owned().await)
                }
            };
            let slot = self.inner.slots.clone().acquire_owned().await;
            (lane.transpose(), slot)
        };
        match tokio::time::timeout(self.inner.queue_timeout, wait).await {
            // The semaphores are never closed.
            Ok((Ok(lane), Ok(slot))) => Ok(Turn {
                _lane: lane,
                _slot: slot,
            }),
            _ => Err(Busy),
        }
    }

    /// Hashes a new password (for a registration; on the blocking pool:
    /// bcrypt is slow on purpose).
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let turn = self.turn(Lane::Registration).await?;
        let pre = self.prehash(password.expose_secret());
        let cost = self.inner.cost;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            bcrypt::hash(pre, cost)
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when the account does not exist (and then always fails).
    pub async fn verify(
        &self,
        lane: Lane,
        password: &str,
        stored: Option<&str>,
    ) -> Result<bool, Busy> {
        let turn = self.turn(lane).await?;
        let pre = self.prehash(password);
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.inner.dummy_hash).to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            bcrypt::verify(pre, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        Ok(known && ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HashLimits = HashLimits {
        concurrency: 2,
        queue_timeout: Duration::from_secs(30),
    };

    fn hasher(pepper: &str) -> PasswordHasher {
        with_limits(pepper, LIMITS)
    }

    fn with_limits(pepper: &str, limits: HashLimits) -> PasswordHasher {
        PasswordHasher::new(SecretString::from(pepper.to_owned()), MIN_COST, limits).unwrap()
    }

    /// The right password verifies; a wrong one or another pepper does not.
    #[tokio::test]
    async fn verifies_only_the_right_password_and_pepper() {
        let h = hasher("pepper-one-0123456789abcdef0123456789");
        let pw = SecretString::from("correct horse battery".to_owned());
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$2b$10$"));
        let verify = |h: &PasswordHasher, pw: &'static str, stored: String| {
            let h = h.clone();
            async move { h.verify(Lane::Login, pw, Some(&stored)).await.unwrap() }
        };
        assert!(verify(&h, "correct horse battery", stored.clone()).await);
        assert!(!verify(&h, "wrong horse battery", stored.clone()).await);
        let other = hasher("pepper-two-0123456789abcdef0123456789");
        assert!(!verify(&other, "correct horse battery", stored).await);
    }

    /// An unknown account never verifies, even with the dummy's password.
    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let h = hasher("pepper-0123456789abcdef0123456789abc");
        assert!(!h.verify(Lane::Login, "anything", None).await.unwrap());
    }

    /// Costs below the minimum are refused.
    #[test]
    fn cost_below_minimum_is_refused() {
        assert!(PasswordHasher::new(SecretString::from("p".to_owned()), 9, LIMITS).is_err());
    }

    /// With every slot taken, a request waits at most the queue timeout and
    /// is then refused as busy; once a slot is free it runs.
    #[tokio::test]
    async fn waiting_longer_than_the_queue_timeout_is_busy() {
        let h = with_limits(
            "pepper-0123456789abcdef0123456789abc",
            HashLimits {
                concurrency: 1,
                queue_timeout: Duration::from_millis(50),
            },
        );
        let held = h.turn(Lane::Login).await.expect("the only slot");
        let pw = SecretString::from("correct horse battery".to_owned());
        assert!(matches!(h.hash(&pw).await, Err(HashError::Busy(Busy))));
        assert_eq!(h.verify(Lane::Login, "x", None).await, Err(Busy));
        assert_eq!(
            Busy.to_string(),
            "server busy, retry later",
            "the message clients see"
        );
        drop(held);
        assert_eq!(h.verify(Lane::Login, "x", None).await, Ok(false));
    }

    /// Registrations cannot take every slot: with registrations holding
    /// their share, another registration is busy but a login still runs.
    #[tokio::test]
    async fn registrations_leave_slots_for_logins() {
        let h = with_limits(
            "pepper-0123456789abcdef0123456789abc",
            HashLimits {
                concurrency: 2,
                queue_timeout: Duration::from_millis(50),
            },
        );
        let _registering = h.turn(Lane::Registration).await.expect("its share");
        assert!(h.turn(Lane::Registration).await.is_err(), "share used up");
        let login = h.turn(Lane::Login).await;
        assert!(login.is_ok(), "a login gets the remaining slot");
    }
}
