//! users' settings.

use serde::Deserialize;

use interlock_common::db::DatabaseSettings;
use interlock_common::settings::{self, JwtSettings, PeerSettings, ServerSettings};
use interlock_common::telemetry::LogSettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub peer: PeerSettings,
    pub jwt: JwtSettings,
    #[serde(default)]
    pub log: LogSettings,
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
        self.database.check(&mut p);
        self.peer.check(&mut p);
        self.jwt.check(&mut p);
        settings::check_url("peers.roles_url", &self.peers.roles_url, &mut p);
        settings::problems_to_result("users", p)
    }
}
