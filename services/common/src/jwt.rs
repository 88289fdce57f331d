//! Access-token verification (ARCHITECTURE.md section 4): ES256 only, `kid`
//! required, issuer and audience checked, keys from a JWKS that is cached and
//! refetched only for an unknown `kid` or when stale, at most once per
//! `min_refresh_interval` — never per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

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
}

/// Where the JWKS comes from: HTTP in the services, the key store in auth.
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<JwkSet, String>;
}

/// A JWKS served over HTTP (auth's `/.well-known/jwks.json`).
pub struct HttpJwks {
    client: reqwest::Client,
    url: String,
}

impl HttpJwks {
    pub fn new(
        url: impl Into<String>,
        socket: Option<&std::path::Path>,
        timeout: Duration,
        outbound: &crate::client::Outbound,
    ) -> Result<Self, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in outbound.headers() {
            let name =
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            let value = reqwest::header::HeaderValue::from_str(v).map_err(|e| e.to_string())?;
            headers.insert(name, value);
        }
        crate::client::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .default_headers(headers);
        if let Some(path) = socket {
            builder = builder.unix_socket(path.to_owned());
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url: url.into(),
        })
    }
}

#[async_trait::async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<JwkSet, String> {
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if !resp.status().is_success() {
            return Err(format!("GET {}: HTTP {}", self.url, resp.status()));
        }
        resp.json()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))
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

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// Verifies access tokens against a cached JWKS.
pub struct JwtVerifier {
    source: Arc<dyn JwksSource>,
    options: VerifierOptions,
    validation: Validation,
    cache: RwLock<KeyCache>,
    // Serialises fetches so a burst of unknown kids makes one request.
    fetch_lock: Mutex<()>,
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
            }),
            fetch_lock: Mutex::new(()),
        }
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

    /// Verifies a compact JWT.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtError> {
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
        Ok(VerifiedToken {
            user_id,
            session_id,
            token_id: claims.jti,
            expires_at: claims.exp,
        })
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

    /// Refetches the JWKS unless another fetch happened too recently.
    async fn refresh(&self) {
        let _one_at_a_time = self.fetch_lock.lock().await;
        if let Some(at) = self.cache.read().await.fetched_at
            && at.elapsed() < self.options.min_refresh_interval
        {
            return;
        }
        match self.source.fetch().await {
            Ok(set) => {
                let keys = decoding_keys(&set);
                tracing::debug!(keys = keys.len(), "JWKS refreshed");
                let mut cache = self.cache.write().await;
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Err(error) => tracing::warn!(%error, "JWKS fetch failed; keeping cached keys"),
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
