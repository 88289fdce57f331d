//! ES256 signing keys and their rotation (docs/security.md, "Users' tokens").
//!
//! Life of a key: created and published in the JWKS `publish_lead` before it
//! starts signing (so every verifier's cache has it first); signs until the
//! next key takes over; stays published until every token it signed has
//! expired (`retire_after` after its successor started), then is deleted.
//! Private keys are sealed with ChaCha20-Poly1305 under a key derived from
//! configuration, so a database dump alone cannot mint tokens.
//! Replicas coordinate through a transaction-scoped advisory lock.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use p256::pkcs8::EncodePrivateKey;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::RwLock;

use interlock_common::jwt::ALGORITHM;

/// Advisory lock id serialising key maintenance across replicas.
const KEY_LOCK: i64 = 0x1a7e_0001;

/// When keys are created and dropped.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// How long a key signs before the next one takes over.
    pub rotation_interval: Duration,
    /// How long a key is published before it signs.
    pub publish_lead: Duration,
    /// How long a key stays published after its successor took over
    /// (access-token lifetime plus clock leeway).
    pub retire_after: Duration,
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    kid: String,
    sealed_private: Vec<u8>,
    nonce: Vec<u8>,
    public_jwk: serde_json::Value,
    signs_from: DateTime<Utc>,
}

struct LoadedKey {
    kid: String,
    signs_from: DateTime<Utc>,
    encoding: EncodingKey,
    jwk: Jwk,
}

/// The signing keys, loaded from the database and kept current.
pub struct KeyRing {
    pool: PgPool,
    cipher: ChaCha20Poly1305,
    policy: KeyPolicy,
    keys: RwLock<Vec<LoadedKey>>,
}

impl KeyRing {
    /// `seal_secret` comes from configuration; it never touches the database.
    pub fn new(pool: PgPool, seal_secret: &SecretString, policy: KeyPolicy) -> Self {
        let digest = Sha256::digest(seal_secret.expose_secret().as_bytes());
        Self {
            pool,
            cipher: ChaCha20Poly1305::new(&digest),
            policy,
            keys: RwLock::new(Vec::new()),
        }
    }

    /// Creates, retires and reloads keys as the policy requires at `now`.
    #[tracing::instrument(skip_all)]
    pub async fn maintain(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY_LOCK)
            .execute(&mut *tx)
            .await?;
        let retired = sqlx::query(
            "DELETE FROM signing_keys k WHERE EXISTS (
                 SELECT 1 FROM signing_keys n
                 WHERE n.signs_from > k.signs_from AND n.signs_from <= $1)",
        )
        .bind(now - self.policy.retire_after)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if retired > 0 {
            tracing::info!(retired, "retired signing keys");
        }
        let newest: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT max(signs_from) FROM signing_keys")
                .fetch_one(&mut *tx)
                .await?;
        let next_start = match newest {
            None => Some(now),
            Some(newest) if newest <= now => {
                let due = newest + self.policy.rotation_interval;
                (due - self.policy.publish_lead <= now)
                    .then(|| due.max(now + self.policy.publish_lead))
            }
            Some(_) => None, // a successor is already published and waiting
        };
        if let Some(signs_from) = next_start {
            let kid = self.create(&mut tx, signs_from).await?;
            tracing::info!(%kid, %signs_from, "published a new signing key");
        }
        tx.commit().await?;
        self.reload().await
    }

    async fn create(
        &self,
        tx: &mut sqlx::PgConnection,
        signs_from: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("encoding key: {e}"))?;
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let jwk = public_jwk(&kid, der.as_bytes())?;
        let nonce_bytes: [u8; 12] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: der.as_bytes(),
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing key failed"))?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, sealed_private, nonce, public_jwk, signs_from)
             VALUES ($1, 'ES256', $2, $3, $4, $5)",
        )
        .bind(&kid)
        .bind(sealed)
        .bind(nonce_bytes.to_vec())
        .bind(serde_json::to_value(&jwk)?)
        .bind(signs_from)
        .execute(&mut *tx)
        .await?;
        Ok(kid)
    }

    async fn reload(&self) -> anyhow::Result<()> {
        let rows: Vec<StoredKey> = sqlx::query_as(
            "SELECT kid, sealed_private, nonce, public_jwk, signs_from
             FROM signing_keys ORDER BY signs_from DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for StoredKey {
            kid,
            sealed_private: sealed,
            nonce,
            public_jwk: jwk,
            signs_from,
        } in rows
        {
            let nonce: [u8; 12] = nonce
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("signing key {kid} has a bad nonce"))?;
            let der = self
                .cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &sealed,
                        aad: kid.as_bytes(),
                    },
                )
                .map_err(|_| {
                    anyhow::anyhow!("signing key {kid} cannot be unsealed: wrong keys.seal_secret?")
                })?;
            keys.push(LoadedKey {
                encoding: EncodingKey::from_ec_der(&der),
                jwk: serde_json::from_value(jwk)?,
                kid,
                signs_from,
            });
        }
        *self.keys.write().await = keys;
        Ok(())
    }

    /// The key that signs at `now`: the newest whose time has come.
    pub async fn signing_key(&self, now: DateTime<Utc>) -> Option<(String, EncodingKey)> {
        self.keys
            .read()
            .await
            .iter()
            .find(|k| k.signs_from <= now)
            .map(|k| (k.kid.clone(), k.encoding.clone()))
    }

    /// Every published public key, newest first.
    pub async fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .read()
                .await
                .iter()
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }
}

fn public_jwk(kid: &str, pkcs8_der: &[u8]) -> anyhow::Result<Jwk> {
    let mut jwk = Jwk::from_encoding_key(&EncodingKey::from_ec_der(pkcs8_der), ALGORITHM)?;
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// auth verifies its own tokens (Logout) from the ring, without HTTP.
#[async_trait::async_trait]
impl interlock_common::jwt::JwksSource for KeyRingSource {
    async fn fetch(&self) -> Result<JwkSet, String> {
        Ok(self.0.jwks().await)
    }
}

/// A [`interlock_common::jwt::JwksSource`] over a shared [`KeyRing`].
pub struct KeyRingSource(pub std::sync::Arc<KeyRing>);
