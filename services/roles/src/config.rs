//! roles' settings.

use serde::Deserialize;

use interlock_common::settings::{self, Check, CommonSettings};

use crate::domain::RoleName;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`, `[peer]`, `[log]`, `[database]`, `[jwt]`.
    #[serde(flatten)]
    pub common: CommonSettings,
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
        self.common.check(&mut p);
        for (i, r) in self.default_roles.iter().enumerate() {
            if let Err(e) = RoleName::parse(&format!("default_roles[{i}]"), r) {
                p.push(e.to_string());
            }
            if r == crate::ADMIN {
                p.push("default_roles: must not contain admin".into());
            }
        }
        settings::problems_to_result(crate::MODULE, p)
    }
}
