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
    #[serde(default)]
    pub accounts: AccountsConfig,
    /// How auth sends email. Required while `accounts.require_email_verification`
    /// is on; without it, resend and reset requests are refused.
    #[serde(default)]
    pub email: Option<EmailConfig>,
}

/// `[accounts]`: email verification, password reset, their limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// A new account logs in only once its email address is confirmed; on.
    pub require_email_verification: bool,
    /// How long a confirmation code works; 30 minutes.
    pub verification_code_ttl_secs: i64,
    /// How long a password-reset code works; 15 minutes.
    pub reset_code_ttl_secs: i64,
    /// Wrong codes accepted before a code is burnt; 5.
    pub max_code_attempts: i32,
    /// Emails (resends, resets) asked for per typed login or email within
    /// the throttle window; 3.
    pub emails_per_account: i64,
    /// Emails asked for per client address within the window; 20.
    pub emails_per_address: i64,
    /// Codes presented (ConfirmEmail, ResetPassword) per client address
    /// within the window; 30.
    pub code_checks_per_address: i64,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            require_email_verification: true,
            verification_code_ttl_secs: 30 * 60,
            reset_code_ttl_secs: 15 * 60,
            max_code_attempts: 5,
            emails_per_account: 3,
            emails_per_address: 20,
            code_checks_per_address: 30,
        }
    }
}

/// How auth reaches its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// STARTTLS when the server offers it, else plain text: only for a
    /// server on a trusted network.
    Opportunistic,
}

/// `[email]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// A PEM file of CA certificates to trust besides the system's (the
    /// local SMTP server's own CA).
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry; `smtp_host` if unset.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// SMTP AUTH, when the server asks for it.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// `From:` of every message, e.g. `Interlock <no-reply@example.com>`.
    pub from: String,
    /// The product's name in subjects and bodies; "Interlock".
    #[serde(default = "default_product_name")]
    pub product_name: String,
    /// Delivery attempts per message (transient failures are retried with
    /// exponential backoff); 5.
    #[serde(default = "default_send_attempts")]
    pub max_attempts: u32,
    /// Per SMTP command; 10 s.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_product_name() -> String {
    "Interlock".into()
}

fn default_send_attempts() -> u32 {
    5
}

fn default_smtp_timeout() -> u64 {
    10
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
    /// The edge as clients reach it (`https://host:port`): the discovery
    /// document's `jwks_uri` is under it. The local mesh's edge by default.
    pub public_url: String,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            issuer: settings::default_issuer(),
            audience: settings::default_audience(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            public_url: "https://localhost:17443".into(),
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
        if !(self.tokens.public_url.starts_with("https://")
            || self.tokens.public_url.starts_with("http://"))
        {
            p.push("tokens.public_url: must be an http(s) URL like https://localhost:17443".into());
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
        self.check_accounts(&mut p);
        settings::problems_to_result(crate::MODULE, p)
    }

    fn check_accounts(&self, p: &mut Vec<String>) {
        let a = &self.accounts;
        if a.require_email_verification && self.email.is_none() {
            p.push(
                "accounts.require_email_verification: needs an [email] section to send codes"
                    .into(),
            );
        }
        for (name, secs) in [
            ("verification_code_ttl_secs", a.verification_code_ttl_secs),
            ("reset_code_ttl_secs", a.reset_code_ttl_secs),
        ] {
            if !(60..=7 * 24 * 3600).contains(&secs) {
                p.push(format!("accounts.{name}: must be 60 to 604800"));
            }
        }
        if !(1..=20).contains(&a.max_code_attempts) {
            p.push("accounts.max_code_attempts: must be 1 to 20".into());
        }
        if a.emails_per_account < 1 || a.emails_per_address < 1 || a.code_checks_per_address < 1 {
            p.push("accounts: email and code limits must be positive".into());
        }
        if let Some(e) = &self.email {
            e.check(p);
        }
    }
}

impl EmailConfig {
    /// Every problem with `[email]`.
    fn check(&self, p: &mut Vec<String>) {
        let e = self;
        if e.smtp_host.trim().is_empty() {
            p.push("email.smtp_host: is required".into());
        }
        if e.smtp_port == 0 {
            p.push("email.smtp_port: must be 1 to 65535".into());
        }
        if e.from.parse::<lettre::message::Mailbox>().is_err() {
            p.push("email.from: must be an address like Interlock <no-reply@example.com>".into());
        }
        if e.product_name.trim().is_empty() || e.product_name.len() > 100 {
            p.push("email.product_name: must be 1 to 100 characters".into());
        }
        if !(1..=20).contains(&e.max_attempts) {
            p.push("email.max_attempts: must be 1 to 20".into());
        }
        if !(1..=300).contains(&e.timeout_secs) {
            p.push("email.timeout_secs: must be 1 to 300".into());
        }
        if e.username.is_some() != e.password.is_some() {
            p.push("email: give both username and password, or neither".into());
        }
        // Opportunistic TLS can be stripped by anyone on the path, and
        // the login would then cross it in clear text.
        if e.username.is_some() && e.tls == SmtpTls::Opportunistic {
            p.push(
                "email: credentials need tls = \"starttls\" or \"implicit\", not \"opportunistic\""
                    .into(),
            );
        }
        if let Some(ca) = &e.tls_ca_file
            && !ca.is_file()
        {
            p.push(format!("email.tls_ca_file: {} is not a file", ca.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(tls: &str, login: bool) -> EmailConfig {
        let mut v = serde_json::json!({
            "smtp_host": "mail.example.com",
            "smtp_port": 587,
            "from": "Interlock <no-reply@example.com>",
            "tls": tls,
        });
        if login {
            v["username"] = "interlock".into();
            v["password"] = "s3cret".into();
        }
        serde_json::from_value(v).expect("email config")
    }

    fn problems(e: &EmailConfig) -> Vec<String> {
        let mut p = Vec::new();
        e.check(&mut p);
        p
    }

    /// SMTP credentials only travel over TLS that cannot be stripped.
    #[test]
    fn smtp_credentials_are_refused_with_opportunistic_tls() {
        assert_eq!(
            problems(&email("opportunistic", true)),
            vec![
                "email: credentials need tls = \"starttls\" or \"implicit\", not \"opportunistic\""
            ]
        );
        assert!(problems(&email("starttls", true)).is_empty());
        assert!(problems(&email("implicit", true)).is_empty());
        assert!(problems(&email("opportunistic", false)).is_empty());
    }
}
