//! Session revocation reaching every verifier within seconds.
//!
//! Access tokens are verified statelessly, so on their own they would stay
//! valid for their whole lifetime after `Logout` or after refresh-token reuse
//! revoked their session. auth therefore publishes the sessions revoked
//! within the last access-token lifetime (`GET /internal/revoked-sessions`,
//! [`REVOKED_SESSIONS_PATH`]), and every verifier keeps a copy refreshed on a
//! short interval in the background: a token whose `sid` is in it is
//! refused. The check is a set lookup; no request waits for auth.
//!
//! Worst case, a revoked session's tokens are still accepted for one refresh
//! interval plus one fetch. While auth cannot be reached the last list is
//! kept (and a warning logged): revocation then waits for auth, while
//! verification of valid tokens goes on (docs/security.md).
//!
//! Must not know auth's tables: auth supplies its own [`RevocationSource`].

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where auth serves the revoked sessions (an HTTP path on its listener).
pub const REVOKED_SESSIONS_PATH: &str = "/internal/revoked-sessions";

/// Where a verifier fetches the list when `[jwt]` names no
/// `revoked_sessions_url`: [`REVOKED_SESSIONS_PATH`] on the JWKS URL's
/// origin, so that one setting points a service at auth.
pub fn default_url(jwks_url: &str) -> String {
    // scheme://authority, the URL checked to be http(s) at start.
    let origin_end = jwks_url
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| jwks_url[start..].find('/').map(|j| start + j))
        .unwrap_or(jwks_url.len());
    format!("{}{REVOKED_SESSIONS_PATH}", &jwks_url[..origin_end])
}

/// The document auth serves at [`REVOKED_SESSIONS_PATH`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSessions {
    /// Sessions revoked recently enough that some access token of theirs
    /// may still be unexpired.
    pub revoked: Vec<Uuid>,
}

/// Where the list comes from: HTTP in the services, the database in auth.
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<RevokedSessions, String>;
}

/// auth's list over HTTP (through the egress sidecar in the mesh).
#[async_trait::async_trait]
impl RevocationSource for crate::client::HttpJson {
    async fn fetch(&self) -> Result<RevokedSessions, String> {
        self.get().await
    }
}

/// The revoked sessions a verifier knows of, refreshed in the background.
pub struct Revocations {
    revoked: RwLock<HashSet<Uuid>>,
}

impl Revocations {
    /// Fetches once now (a failure is logged, not fatal: auth may start
    /// later than its peers), then every `every` until the returned value
    /// is dropped. Needs a Tokio runtime.
    pub async fn start(source: Arc<dyn RevocationSource>, every: Duration) -> Arc<Self> {
        let this = Arc::new(Self {
            revoked: RwLock::new(HashSet::new()),
        });
        let mut healthy = this.refresh(source.as_ref(), true).await;
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                healthy = this.refresh(source.as_ref(), healthy).await;
            }
        });
        this
    }

    /// A list that is never refreshed (tests, and services that verify no
    /// user tokens).
    pub fn fixed(revoked: impl IntoIterator<Item = Uuid>) -> Arc<Self> {
        Arc::new(Self {
            revoked: RwLock::new(revoked.into_iter().collect()),
        })
    }

    pub fn is_revoked(&self, session: &Uuid) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(session)
    }

    /// One fetch; returns whether it worked. A failure keeps the last list
    /// and is logged once per outage, not once per interval.
    async fn refresh(&self, source: &dyn RevocationSource, was_healthy: bool) -> bool {
        match source.fetch().await {
            Ok(doc) => {
                let set: HashSet<Uuid> = doc.revoked.into_iter().collect();
                if !was_healthy {
                    tracing::info!(revoked = set.len(), "revoked sessions reachable again");
                }
                *self
                    .revoked
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
                true
            }
            Err(error) => {
                if was_healthy {
                    tracing::warn!(%error, "revoked sessions unavailable; keeping the last list");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers in order, repeating the last answer; counts fetches.
    struct Scripted {
        answers: Mutex<Vec<Result<RevokedSessions, String>>>,
        fetches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl RevocationSource for Scripted {
        async fn fetch(&self) -> Result<RevokedSessions, String> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            }
        }
    }

    /// Without an explicit URL the revoked sessions come from the JWKS
    /// URL's origin, so one setting points a service at auth.
    #[test]
    fn revoked_sessions_default_to_the_jwks_origin() {
        assert_eq!(
            default_url("http://auth/.well-known/jwks.json"),
            "http://auth/internal/revoked-sessions"
        );
        assert_eq!(
            default_url("http://127.0.0.1:7000"),
            "http://127.0.0.1:7000/internal/revoked-sessions"
        );
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A session revoked at the source is refused after a refresh, and
    /// stays refused while the source is unreachable.
    #[tokio::test]
    async fn revocation_reaches_the_verifier_on_a_refresh_and_survives_outages() {
        let sid = Uuid::new_v4();
        let other = Uuid::new_v4();
        let source = Arc::new(Scripted {
            answers: Mutex::new(vec![
                Ok(RevokedSessions::default()),
                Ok(RevokedSessions { revoked: vec![sid] }),
                Err("auth is down".into()),
            ]),
            fetches: AtomicUsize::new(0),
        });
        let list = Revocations::start(source.clone(), Duration::from_millis(20)).await;
        assert!(!list.is_revoked(&sid), "the first fetch lists nothing");
        wait_until("the revocation arrives", || list.is_revoked(&sid)).await;
        assert!(!list.is_revoked(&other));
        wait_until("several failed fetches", || {
            source.fetches.load(Ordering::SeqCst) >= 6
        })
        .await;
        assert!(list.is_revoked(&sid), "kept while the source fails");
    }
}
