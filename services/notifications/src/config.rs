//! notifications' settings.

use serde::Deserialize;

use interlock_common::settings::{self, Check, CommonSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`, `[peer]`, `[log]`, `[database]`, `[jwt]`: notifications
    /// has nothing else to configure.
    #[serde(flatten)]
    pub common: CommonSettings,
}

impl Settings {
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut p = Vec::new();
        self.common.check(&mut p);
        settings::problems_to_result(crate::MODULE, p)
    }
}
