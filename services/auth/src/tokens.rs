//! Access tokens (ES256 JWTs) and refresh tokens (opaque, stored hashed).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{EncodingKey, Header};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use interlock_common::jwt::{ALGORITHM, AccessClaims};

/// Token lifetimes and the claims every token carries.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// Lifetime of a refresh token and the longest a session can last.
    pub refresh_ttl: Duration,
}

/// A signed access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
}

/// A new refresh token: the value the client gets once, and its hash, the
/// only form that is stored.
pub struct RefreshToken {
    pub token: String,
    pub hash: Vec<u8>,
}

/// Signs an access token for `user_id` in `session_id` with `key` (its
/// `kid` and private key, from [`crate::keys::KeyRing::signing_key`]).
pub fn sign_access(
    key: &(String, EncodingKey),
    settings: &TokenSettings,
    user_id: Uuid,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<AccessToken, jsonwebtoken::errors::Error> {
    let expires_at = now + settings.access_ttl;
    let claims = AccessClaims {
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        sub: user_id.to_string(),
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        jti: Uuid::new_v4().to_string(),
        sid: session_id.to_string(),
    };
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(key.0.clone());
    Ok(AccessToken {
        token: jsonwebtoken::encode(&header, &claims, &key.1)?,
        expires_at,
    })
}

/// A new refresh token (256 random bits).
pub fn new_refresh_token() -> RefreshToken {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    RefreshToken { token, hash }
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refresh tokens are unique and only their hash is derived for storage.
    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 43);
        assert_eq!(a.hash, hash_refresh_token(&a.token));
        assert_ne!(a.hash, a.token.as_bytes());
    }
}
