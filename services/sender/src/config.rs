//! sender's settings.

use std::path::PathBuf;

use serde::Deserialize;

use interlock_common::settings::{self, Absent, Check, CommonSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]` (where health is served), `[peer]` and `[log]`; the
    /// sender is stateless and serves no user, so it has neither a
    /// `[database]` nor a `[jwt]`.
    #[serde(flatten)]
    pub common: CommonSettings<Absent, Absent>,
    pub peers: PeersConfig,
    #[serde(default)]
    pub sender: SenderConfig,
    pub fcm: FcmConfig,
}

/// `[peers]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    /// notifications' internal API (the egress sidecar in the mesh).
    pub notifications_url: String,
}

/// `[sender]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderConfig {
    /// This replica's name in leases; default `<hostname>-<pid>`.
    pub worker_id: String,
    pub poll_interval_ms: u64,
    pub batch_size: u32,
    /// How long a claim lasts; pushes are not started in its last quarter.
    pub lease_secs: u32,
    /// Pushes in flight at once.
    pub max_concurrency: usize,
    /// Attempts per delivery per claim for retryable FCM errors.
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for SenderConfig {
    fn default() -> Self {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "sender".into());
        Self {
            worker_id: format!("{}-{}", host.trim(), std::process::id()),
            poll_interval_ms: 1000,
            batch_size: 50,
            lease_secs: 60,
            max_concurrency: 16,
            max_attempts: 5,
            backoff_base_ms: 200,
            backoff_max_ms: 10_000,
        }
    }
}

/// `[fcm]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// A Google service-account JSON file (its private key signs the grant).
    pub service_account_file: PathBuf,
    /// `https://fcm.googleapis.com` in production.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Overrides the file's `token_uri` (tests, the local FCM server).
    #[serde(default)]
    pub token_uri: Option<String>,
    /// Title of every push; the notification text is the body.
    #[serde(default = "default_title")]
    pub title: String,
}

fn default_base_url() -> String {
    "https://fcm.googleapis.com".into()
}

fn default_title() -> String {
    "Interlock".into()
}

impl Settings {
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut p = Vec::new();
        self.common.check(&mut p);
        settings::check_url(
            "peers.notifications_url",
            &self.peers.notifications_url,
            &mut p,
        );
        settings::check_url("fcm.base_url", &self.fcm.base_url, &mut p);
        let s = &self.sender;
        if s.worker_id.is_empty() || s.worker_id.len() > 128 {
            p.push("sender.worker_id: must be 1 to 128 characters".into());
        }
        if !(5..=600).contains(&s.lease_secs) {
            p.push("sender.lease_secs: must be 5 to 600".into());
        }
        if s.batch_size == 0 || s.batch_size > 1000 {
            p.push("sender.batch_size: must be 1 to 1000".into());
        }
        if s.max_concurrency == 0 || s.max_attempts == 0 {
            p.push("sender: max_concurrency and max_attempts must be at least 1".into());
        }
        if !self.fcm.service_account_file.is_file() {
            p.push(format!(
                "fcm.service_account_file: {} is not a file",
                self.fcm.service_account_file.display()
            ));
        }
        settings::problems_to_result(crate::MODULE, p)
    }
}
