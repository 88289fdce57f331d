//! users' settings.

use serde::Deserialize;

use interlock_common::settings::{self, Check, CommonSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`, `[peer]`, `[log]`, `[database]`, `[jwt]`.
    #[serde(flatten)]
    pub common: CommonSettings,
    pub peers: PeersConfig,
}

/// `[peers]`: where users reaches roles (its egress sidecar).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    pub roles_url: String,
}

impl Settings {
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut p = Vec::new();
        self.common.check(&mut p);
        settings::check_url("peers.roles_url", &self.peers.roles_url, &mut p);
        settings::problems_to_result(crate::MODULE, p)
    }
}
