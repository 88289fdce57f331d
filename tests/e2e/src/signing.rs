//! Access tokens signed with auth's real, current key — for the cases only
//! a genuine signature can prove. A token forged with a random key is
//! refused for its signature whatever else is wrong with it, so it cannot
//! show that, say, expiry is enforced; one auth really signed can.
//!
//! How the key is obtained: the tests run as root on the mesh's machine,
//! so they read auth's own configuration file (the generated
//! `workloads/auth/config.toml`: its database URL and seal secret) and
//! open the key ring with auth's own code ([`KeyRing`]), which unseals the
//! private keys exactly as auth does. Tokens are then made by auth's own
//! [`sign_access`]; only the issue time is the test's choice. Nothing is
//! written: see [`AuthSigner::open`].

use chrono::{DateTime, Utc};
use interlock_auth::config::{KeysConfig, TokensConfig};
use interlock_auth::keys::{KeyPolicy, KeyRing};
use interlock_auth::tokens::{TokenSettings, sign_access};
use interlock_common::db::DatabaseSettings;
use interlock_mesh::Mesh;
use jsonwebtoken::EncodingKey;
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

/// The sections of auth's configuration the signer needs (the rest of
/// the file is auth's business).
#[derive(Deserialize)]
struct AuthFile {
    database: DatabaseSettings,
    keys: KeysConfig,
    #[serde(default)]
    tokens: TokensConfig,
}

/// Signs access tokens as auth does, with the key auth signs with now.
pub struct AuthSigner {
    key: (String, EncodingKey),
    tokens: TokenSettings,
}

impl AuthSigner {
    /// Loads auth's current signing key.
    pub async fn open(mesh: &Mesh) -> Self {
        let path = mesh.workload_dir("auth").join("config.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (the tests run as root)", path.display()));
        let file: AuthFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let pool = sqlx::PgPool::connect(file.database.url.expose_secret())
            .await
            .expect("connect to auth's database as auth");
        // `maintain` is the ring's only loader. With a policy under which
        // no key is ever due for rotation or retirement it only loads: auth
        // published its first key before it served, so none is created.
        let never = chrono::Duration::days(365 * 100);
        let ring = KeyRing::new(
            pool,
            &file.keys.seal_secret,
            KeyPolicy {
                rotation_interval: never,
                publish_lead: chrono::Duration::zero(),
                retire_after: never,
            },
        );
        ring.maintain(Utc::now()).await.expect("load auth's keys");
        let key = ring
            .signing_key(Utc::now())
            .await
            .expect("auth has a signing key");
        let t = file.tokens;
        Self {
            key,
            tokens: TokenSettings {
                issuer: t.issuer,
                audience: t.audience,
                access_ttl: chrono::Duration::seconds(t.access_ttl_secs),
                refresh_ttl: chrono::Duration::seconds(t.refresh_ttl_secs),
            },
        }
    }

    /// How long auth's access tokens live.
    pub fn access_ttl(&self) -> chrono::Duration {
        self.tokens.access_ttl
    }

    /// An access token for `user_id` in a new session, issued at
    /// `issued_at` (so it expires `access_ttl` later).
    pub fn sign(&self, user_id: Uuid, issued_at: DateTime<Utc>) -> String {
        sign_access(&self.key, &self.tokens, user_id, Uuid::new_v4(), issued_at)
            .expect("sign")
            .token
    }
}
