//! Access-token verification (docs/security.md, "Users' tokens"): ES256 only, `kid`
//! required, issuer and audience checked, keys from a JWKS that is cached and
//! refetched only for an unknown `kid` or when stale, at most once per
//! `min_refresh_interval` — never per request. A failed fetch counts too:
//! while auth is down, tokens fail fast until the interval has passed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::client::{HttpJson, Outbound};
use crate::revocation::Revocations;
use crate::settings::JwtSettings;

/// The one algorithm access tokens are signed with.
pub const ALGORITHM: Algorithm = Algorithm::ES256;

/// Claims of an Interlock access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The session the token belongs to.
    pub sid: String,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub token_id: String,
    pub expires_at: i64,
}

/// Why a token was refused. All mean UNAUTHENTICATED; the message is safe
/// to show (it never contains the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    #[error("missing access token")]
    Missing,
    #[error("malformed access token")]
    Malformed,
    #[error("access token algorithm {0:?} is not accepted")]
    WrongAlgorithm(String),
    #[error("access token has no kid")]
    NoKeyId,
    #[error("access token signed by an unknown key")]
    UnknownKey,
    #[error("access token expired")]
    Expired,
    #[error("access token is invalid: {0}")]
    Invalid(&'static str),
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// The session was ended (logout, refresh-token reuse); see
    /// [`crate::revocation`].
    #[error("access token's session has been revoked")]
    Revoked,
}

/// Where the JWKS comes from: HTTP in the services, the key store in auth.
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<JwkSet, String>;
}

/// auth's `/.well-known/jwks.json` over HTTP.
#[async_trait::async_trait]
impl JwksSource for HttpJson {
    async fn fetch(&self) -> Result<JwkSet, String> {
        self.get().await
    }
}

/// How a [`JwtVerifier`] checks tokens.
#[derive(Debug, Clone)]
pub struct VerifierOptions {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`/`iat`.
    pub leeway: Duration,
    /// Minimum time between two JWKS fetches.
    pub min_refresh_interval: Duration,
    /// Refetch the JWKS when the cached copy is older than this.
    pub max_age: Duration,
}

impl VerifierOptions {
    /// The checks `[jwt]` asks for.
    pub fn from_settings(settings: &JwtSettings) -> Self {
        Self {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: Duration::from_secs(settings.leeway_secs),
            min_refresh_interval: Duration::from_secs(settings.min_refresh_secs),
            max_age: Duration::from_secs(settings.max_age_secs),
        }
    }
}

/// How long one fetch of the JWKS or the revoked sessions may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When `keys` were fetched (`None`: never, so no key is known).
    fetched_at: Option<Instant>,
    /// When the last fetch ended, whether it worked or not. The next one
    /// waits `min_refresh_interval` from here, so while the source is down
    /// a stream of unknown kids costs one fetch per interval, not one each.
    attempted_at: Option<Instant>,
}

/// Verifies access tokens against a cached JWKS.
pub struct JwtVerifier {
    source: Arc<dyn JwksSource>,
    options: VerifierOptions,
    validation: Validation,
    cache: RwLock<KeyCache>,
    // Serialises fetches so a burst of unknown kids makes one request.
    fetch_lock: Mutex<()>,
    revocations: Option<Arc<Revocations>>,
    verified: VerifiedCache,
}

/// At most this many verified tokens are remembered.
const MAX_VERIFIED: usize = 10_000;

/// Tokens whose signature and claims were verified, by the token itself,
/// until they expire. An ES256 verification was the largest CPU cost of a
/// call (40% of users' CPU in a GetMe profile, docs/benchmarks.md), and a
/// client sends the same token for many calls. A hit is still refused once
/// the token expires, once its key is no longer published, and once its
/// session is revoked.
#[derive(Default)]
struct VerifiedCache(std::sync::Mutex<HashMap<String, (VerifiedToken, String)>>);

impl VerifiedCache {
    fn get(&self, token: &str) -> Option<(VerifiedToken, String)> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(token).cloned()
    }

    fn insert(&self, token: &str, verified: &VerifiedToken, kid: &str, now: i64) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_VERIFIED {
            cache.retain(|_, (t, _)| t.expires_at >= now);
            if cache.len() >= MAX_VERIFIED {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), (verified.clone(), kid.to_owned()));
    }

    fn remove(&self, token: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl JwtVerifier {
    pub fn new(source: Arc<dyn JwksSource>, options: VerifierOptions) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&options.issuer]);
        validation.set_audience(&[&options.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = options.leeway.as_secs();
        Self {
            source,
            options,
            validation,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
                attempted_at: None,
            }),
            fetch_lock: Mutex::new(()),
            revocations: None,
            verified: VerifiedCache::default(),
        }
    }

    /// The verifier `[jwt]` describes: the JWKS and the revoked sessions
    /// fetched from auth over HTTP (with `outbound`'s headers, over
    /// `jwks_socket` when set). The revoked sessions are fetched once now
    /// and refreshed in the background from then on (see
    /// [`crate::revocation`]).
    pub async fn from_settings(
        settings: &JwtSettings,
        outbound: &Outbound,
    ) -> anyhow::Result<Arc<Self>> {
        let socket = settings.jwks_socket.as_deref();
        let jwks = HttpJson::new(&settings.jwks_url, socket, FETCH_TIMEOUT, outbound)
            .map_err(anyhow::Error::msg)?;
        let revoked_url = settings
            .revoked_sessions_url
            .clone()
            .unwrap_or_else(|| crate::revocation::default_url(&settings.jwks_url));
        let revoked = HttpJson::new(revoked_url, socket, FETCH_TIMEOUT, outbound)
            .map_err(anyhow::Error::msg)?;
        let revocations = Revocations::start(
            Arc::new(revoked),
            Duration::from_millis(settings.revocation_refresh_ms),
        )
        .await;
        Ok(Arc::new(
            Self::new(Arc::new(jwks), VerifierOptions::from_settings(settings))
                .with_revocations(revocations),
        ))
    }

    /// Also refuses tokens of the sessions `revocations` lists.
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Verifies an `authorization` header value (`Bearer <jwt>`).
    pub async fn verify_bearer(&self, header: Option<&str>) -> Result<VerifiedToken, JwtError> {
        let header = header.ok_or(JwtError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(JwtError::Malformed)?;
        self.verify(token.trim()).await
    }

    /// Verifies a compact JWT: from the cache of verified tokens when it
    /// was verified before (expiry, key and revocation checked again).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        let now = unix_now();
        if let Some((verified, kid)) = self.verified.get(token) {
            if verified.expires_at + (self.options.leeway.as_secs() as i64) < now {
                self.verified.remove(token);
                return Err(JwtError::Expired);
            }
            // The key is still published (and the JWKS refreshed if stale).
            if let Err(e) = self.key(&kid).await {
                self.verified.remove(token);
                return Err(e);
            }
            self.check_session(&verified)?;
            return Ok(verified);
        }
        let (verified, kid) = self.verify_signed(token).await?;
        self.verified.insert(token, &verified, &kid, now);
        self.check_session(&verified)?;
        Ok(verified)
    }

    /// Refuses a token whose session was revoked.
    fn check_session(&self, token: &VerifiedToken) -> Result<(), JwtError> {
        if self
            .revocations
            .as_ref()
            .is_some_and(|r| r.is_revoked(&token.session_id))
        {
            return Err(JwtError::Revoked);
        }
        Ok(())
    }

    /// The signature and claims checks; the token and its key id.
    async fn verify_signed(&self, token: &str) -> Result<(VerifiedToken, String), JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(JwtError::WrongAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(JwtError::NoKeyId)?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    JwtError::Invalid("bad signature")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => JwtError::Invalid("wrong issuer"),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    JwtError::Invalid("wrong audience")
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    JwtError::Invalid("not yet valid")
                }
                _ => JwtError::Invalid("claims"),
            },
        )?;
        let claims = data.claims;
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| JwtError::Invalid("sub"))?;
        let session_id = Uuid::parse_str(&claims.sid).map_err(|_| JwtError::Invalid("sid"))?;
        let verified = VerifiedToken {
            user_id,
            session_id,
            token_id: claims.jti,
            expires_at: claims.exp,
        };
        Ok((verified, kid))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, JwtError> {
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|t| t.elapsed() < self.options.max_age);
            if let Some(key) = cache.keys.get(kid)
                && fresh
            {
                return Ok(key.clone());
            }
        }
        self.refresh().await;
        let cache = self.cache.read().await;
        match cache.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if cache.fetched_at.is_none() => Err(JwtError::KeysUnavailable),
            None => Err(JwtError::UnknownKey),
        }
    }

    /// Refetches the JWKS unless another fetch, successful or failed, ended
    /// less than `min_refresh_interval` ago. Callers that queued behind a
    /// fetch take its outcome instead of fetching again.
    async fn refresh(&self) {
        let _one_at_a_time = self.fetch_lock.lock().await;
        if let Some(at) = self.cache.read().await.attempted_at
            && at.elapsed() < self.options.min_refresh_interval
        {
            return;
        }
        let fetched = self.source.fetch().await;
        let mut cache = self.cache.write().await;
        let now = Instant::now();
        cache.attempted_at = Some(now);
        match fetched {
            Ok(set) => {
                cache.keys = decoding_keys(&set);
                cache.fetched_at = Some(now);
                tracing::debug!(keys = cache.keys.len(), "JWKS refreshed");
            }
            Err(error) => tracing::warn!(
                %error,
                retry_after = ?self.options.min_refresh_interval,
                "JWKS fetch failed; keeping cached keys"
            ),
        }
    }
}

/// The P-256 keys of a set, by kid. Anything else is ignored, so a key of
/// another type can never be used to verify.
fn decoding_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter(|jwk| {
            matches!(&jwk.algorithm, AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256)
        })
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|k| (kid, k))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// Counts fetches; the first `good` return an empty set, the rest fail.
    struct CountingSource {
        fetches: AtomicUsize,
        good: usize,
    }

    impl CountingSource {
        fn new(good: usize) -> Arc<Self> {
            Arc::new(Self {
                fetches: AtomicUsize::new(0),
                good,
            })
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl JwksSource for CountingSource {
        async fn fetch(&self) -> Result<JwkSet, String> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst);
            // Let the other verifies pile up behind this fetch.
            tokio::task::yield_now().await;
            if n < self.good {
                Ok(JwkSet { keys: Vec::new() })
            } else {
                Err("connection refused".into())
            }
        }
    }

    fn verifier(source: Arc<CountingSource>, min_refresh_interval: Duration) -> Arc<JwtVerifier> {
        Arc::new(JwtVerifier::new(
            source,
            VerifierOptions {
                issuer: "interlock-auth".into(),
                audience: "interlock".into(),
                leeway: Duration::from_secs(30),
                min_refresh_interval,
                max_age: Duration::from_secs(300),
            },
        ))
    }

    /// An ES256 token shape with a fresh random `kid`; the key lookup
    /// happens before the signature is looked at.
    fn token_with_random_kid() -> String {
        let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": Uuid::new_v4() });
        let part = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            part(header.to_string().as_bytes()),
            part(b"{}"),
            part(b"sig")
        )
    }

    async fn verify_concurrently(verifier: &Arc<JwtVerifier>, n: usize) -> Vec<JwtError> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let verifier = Arc::clone(verifier);
            tasks.spawn(async move { verifier.verify(&token_with_random_kid()).await });
        }
        let mut errors = Vec::new();
        while let Some(result) = tasks.join_next().await {
            errors.push(result.expect("verify task").expect_err("no key can match"));
        }
        errors
    }

    /// During an auth outage, 20 concurrent tokens with unknown kids make one
    /// JWKS fetch, not 20, and all fail as "keys unavailable".
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failed_jwks_fetch_is_not_repeated_within_the_refresh_interval() {
        let source = CountingSource::new(0);
        let verifier = verifier(Arc::clone(&source), Duration::from_secs(60));
        let errors = verify_concurrently(&verifier, 20).await;
        assert_eq!(source.fetches(), 1);
        assert!(
            errors.iter().all(|e| *e == JwtError::KeysUnavailable),
            "{errors:?}"
        );
        verifier.verify(&token_with_random_kid()).await.unwrap_err();
        assert_eq!(source.fetches(), 1, "still inside the interval");
    }

    /// Moves the last fetch `by` into the past, as if that much time had
    /// gone by.
    async fn let_time_pass(verifier: &JwtVerifier, by: Duration) {
        let mut cache = verifier.cache.write().await;
        let back = |t: Instant| {
            t.checked_sub(by)
                .expect("the clock started long enough ago")
        };
        cache.attempted_at = cache.attempted_at.map(back);
        cache.fetched_at = cache.fetched_at.map(back);
    }

    /// With keys from an earlier fetch, a failed refresh leaves unknown kids
    /// refused as unknown, again after a single fetch per interval.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failed_refresh_after_a_good_fetch_refuses_unknown_kids_with_one_fetch() {
        let interval = Duration::from_secs(60);
        let source = CountingSource::new(1);
        let verifier = verifier(Arc::clone(&source), interval);
        assert_eq!(
            verifier.verify(&token_with_random_kid()).await,
            Err(JwtError::UnknownKey)
        );
        assert_eq!(source.fetches(), 1);
        let_time_pass(&verifier, interval).await;
        let errors = verify_concurrently(&verifier, 20).await;
        assert_eq!(source.fetches(), 2, "one failed refresh");
        assert!(
            errors.iter().all(|e| *e == JwtError::UnknownKey),
            "{errors:?}"
        );
    }

    /// The backoff ends: once the interval has passed since a failed fetch,
    /// the next unknown kid fetches again.
    #[tokio::test]
    async fn failed_jwks_fetch_is_retried_after_the_interval() {
        let interval = Duration::from_secs(60);
        let source = CountingSource::new(0);
        let verifier = verifier(Arc::clone(&source), interval);
        for _ in 0..3 {
            verifier.verify(&token_with_random_kid()).await.unwrap_err();
        }
        assert_eq!(source.fetches(), 1);
        let_time_pass(&verifier, interval).await;
        assert_eq!(
            verifier.verify(&token_with_random_kid()).await,
            Err(JwtError::KeysUnavailable)
        );
        assert_eq!(source.fetches(), 2);
    }

    /// A JWKS that can be emptied, as when auth withdraws a key.
    struct Swappable(std::sync::Mutex<JwkSet>);

    #[async_trait::async_trait]
    impl JwksSource for Swappable {
        async fn fetch(&self) -> Result<JwkSet, String> {
            Ok(self.0.lock().expect("set").clone())
        }
    }

    /// A key, its JWKS and a token it signed for a fresh session.
    fn signed_token() -> (String, JwkSet) {
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let key = jsonwebtoken::EncodingKey::from_ec_der(
            secret.to_pkcs8_der().expect("pkcs8").as_bytes(),
        );
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, ALGORITHM).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        let now = unix_now();
        let claims = AccessClaims {
            iss: "interlock-auth".into(),
            aud: "interlock".into(),
            sub: Uuid::new_v4().to_string(),
            iat: now,
            exp: now + 600,
            jti: Uuid::new_v4().to_string(),
            sid: Uuid::new_v4().to_string(),
        };
        let mut header = jsonwebtoken::Header::new(ALGORITHM);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
        (token, JwkSet { keys: vec![jwk] })
    }

    fn swappable_verifier(set: JwkSet) -> (Arc<Swappable>, JwtVerifier) {
        let source = Arc::new(Swappable(std::sync::Mutex::new(set)));
        let verifier = JwtVerifier::new(
            source.clone(),
            VerifierOptions {
                issuer: "interlock-auth".into(),
                audience: "interlock".into(),
                leeway: Duration::from_secs(0),
                min_refresh_interval: Duration::from_secs(0),
                max_age: Duration::from_secs(300),
            },
        );
        (source, verifier)
    }

    /// A token verified once is accepted again from the cache, and refused
    /// as soon as its key is no longer published.
    #[tokio::test]
    async fn a_cached_token_is_refused_once_its_key_is_withdrawn() {
        let (token, set) = signed_token();
        let (source, verifier) = swappable_verifier(set);
        let first = verifier.verify(&token).await.expect("verified");
        assert_eq!(verifier.verify(&token).await, Ok(first), "from the cache");
        *source.0.lock().expect("set") = JwkSet { keys: Vec::new() };
        let_time_pass(&verifier, Duration::from_secs(300)).await;
        assert_eq!(verifier.verify(&token).await, Err(JwtError::UnknownKey));
    }

    /// A cached token is refused once it expires.
    #[tokio::test]
    async fn a_cached_token_is_refused_once_expired() {
        let (token, set) = signed_token();
        let (_, verifier) = swappable_verifier(set);
        verifier.verify(&token).await.expect("verified");
        if let Some((t, _)) = verifier.verified.0.lock().expect("cache").get_mut(&token) {
            t.expires_at = unix_now() - 1;
        }
        assert_eq!(verifier.verify(&token).await, Err(JwtError::Expired));
    }
}
