//! roles' settings.

use serde::Deserialize;

use interlock_common::db::DatabaseSettings;
use interlock_common::settings::{self, JwtSettings, PeerSettings, ServerSettings};
use interlock_common::telemetry::LogSettings;

use crate::domain::RoleName;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub peer: PeerSettings,
    pub jwt: JwtSettings,
    #[serde(default)]
    pub log: LogSettings,
    /// Roles every new user gets; `["user"]` by default.
    #[serde(default = "default_roles")]
    pub default_roles: Vec<String>,
}

fn default_roles() -> Vec<String> {
    vec!["user".into()]
}

impl Settings {
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut p = Vec::new();
        self.database.check(&mut p);
        self.peer.check(&mut p);
        self.jwt.check(&mut p);
        for (i, r) in self.default_roles.iter().enumerate() {
            if let Err(e) = RoleName::parse(&format!("default_roles[{i}]"), r) {
                p.push(e.to_string());
            }
            if r == crate::ADMIN {
                p.push("default_roles: must not contain admin".into());
            }
        }
        settings::problems_to_result("roles", p)
    }
}
