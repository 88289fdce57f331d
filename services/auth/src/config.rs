//! auth's settings (see `interlock_common::settings` for how they load).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use interlock_common::db::DatabaseSettings;
use interlock_common::settings::{self, Absent, Check, CommonSettings};

use crate::password::MIN_COST;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`, `[peer]`, `[log]` and `[database]`; no `[jwt]`: auth
    /// verifies tokens with its own key ring, not a fetched JWKS.
    #[serde(flatten)]
    pub common: CommonSettings<DatabaseSettings, Absent>,
    #[serde(default)]
    pub tokens: TokensConfig,
    pub keys: KeysConfig,
    pub passwords: PasswordsConfig,
    #[serde(default)]
    pub throttle: ThrottleConfig,
    pub peers: PeersConfig,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    pub issuer: String,
    pub audience: String,
    /// Access-token lifetime; 15 minutes.
    pub access_ttl_secs: i64,
    /// Refresh-token and session lifetime; 30 days.
    pub refresh_ttl_secs: i64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            issuer: settings::default_issuer(),
            audience: settings::default_audience(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
        }
    }
}

/// `[keys]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Seals private signing keys at rest; at least 32 characters.
    pub seal_secret: SecretString,
    /// How long a key signs; 7 days.
    #[serde(default = "default_rotation")]
    pub rotation_interval_secs: i64,
    /// How long a key is published before it signs; 10 minutes (longer than
    /// any verifier's JWKS cache).
    #[serde(default = "default_publish_lead")]
    pub publish_lead_secs: i64,
}

fn default_rotation() -> i64 {
    7 * 24 * 3600
}

fn default_publish_lead() -> i64 {
    600
}

/// `[passwords]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordsConfig {
    /// HMAC key of the pre-hash; at least 32 characters; not in the database.
    pub pepper: SecretString,
    /// bcrypt cost, at least 10; 12 by default.
    #[serde(default = "default_cost")]
    pub bcrypt_cost: u32,
}

/// The bcrypt cost when the configuration names none.
pub const DEFAULT_BCRYPT_COST: u32 = 12;

fn default_cost() -> u32 {
    DEFAULT_BCRYPT_COST
}

/// `[throttle]`: limits on the public paths that run bcrypt.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// The sliding window of every per-account and per-address limit.
    pub window_secs: i64,
    /// Login attempts (failed or in flight) per account; 5.
    pub max_failures_per_account: i64,
    /// Login attempts (failed or in flight) per client address; 50.
    pub max_failures_per_address: i64,
    /// Registrations per client address; 30.
    pub max_registrations_per_address: i64,
    /// Concurrent bcrypt runs; 0 (the default) means one per core.
    pub max_concurrent_hashes: usize,
    /// How long a request may wait for a bcrypt slot before it is refused
    /// with RESOURCE_EXHAUSTED "server busy"; 2 s.
    pub hash_queue_timeout_ms: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window_secs: 15 * 60,
            max_failures_per_account: 5,
            max_failures_per_address: 50,
            max_registrations_per_address: 30,
            max_concurrent_hashes: 0,
            hash_queue_timeout_ms: 2000,
        }
    }
}

/// `[peers]`: where auth reaches the other modules (its egress sidecar).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    pub users_url: String,
    pub roles_url: String,
}

impl Settings {
    /// Every problem with the settings, reported at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut p = Vec::new();
        self.common.check(&mut p);
        settings::check_url("peers.users_url", &self.peers.users_url, &mut p);
        settings::check_url("peers.roles_url", &self.peers.roles_url, &mut p);
        if self.passwords.pepper.expose_secret().len() < 32 {
            p.push("passwords.pepper: must be at least 32 characters".into());
        }
        if self.passwords.bcrypt_cost < MIN_COST || self.passwords.bcrypt_cost > 31 {
            p.push(format!("passwords.bcrypt_cost: must be {MIN_COST} to 31"));
        }
        if self.keys.seal_secret.expose_secret().len() < 32 {
            p.push("keys.seal_secret: must be at least 32 characters".into());
        }
        if self.keys.publish_lead_secs < 0
            || self.keys.rotation_interval_secs <= self.keys.publish_lead_secs
        {
            p.push("keys: rotation_interval_secs must exceed publish_lead_secs >= 0".into());
        }
        if !(60..=3600).contains(&self.tokens.access_ttl_secs) {
            p.push("tokens.access_ttl_secs: must be 60 to 3600".into());
        }
        if self.tokens.refresh_ttl_secs <= self.tokens.access_ttl_secs {
            p.push("tokens.refresh_ttl_secs: must exceed access_ttl_secs".into());
        }
        if self.throttle.window_secs <= 0
            || self.throttle.max_failures_per_account < 1
            || self.throttle.max_failures_per_address < 1
            || self.throttle.max_registrations_per_address < 1
        {
            p.push("throttle: window and limits must be positive".into());
        }
        if !(1..=60_000).contains(&self.throttle.hash_queue_timeout_ms) {
            p.push("throttle.hash_queue_timeout_ms: must be 1 to 60000".into());
        }
        settings::problems_to_result(crate::MODULE, p)
    }
}
