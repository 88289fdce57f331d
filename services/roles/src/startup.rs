//! Building and running roles.

use std::sync::Arc;

use interlock_common::client::Outbound;
use interlock_common::server::{App, Base};
use interlock_proto::roles::v1::roles_admin_server::RolesAdminServer;
use interlock_proto::roles::v1::roles_internal_server::RolesInternalServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Roles, RolesState};

/// roles as a runnable service.
pub struct Application;

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with(settings, Outbound::default()).await
    }

    /// Builds with a given outbound interceptor (tests stand in for the
    /// sidecar with it).
    pub async fn build_with(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
        settings.validate()?;
        let base = Base::prepare(
            &settings.server,
            &settings.database,
            &crate::MIGRATOR,
            &settings.peer,
            Some(settings.jwt.verifier(&outbound).await?),
        )
        .await?;
        let roles = Roles(Arc::new(RolesState {
            pool: base.pool.clone(),
            default_roles: settings.default_roles,
        }));
        let routes = Routes::new(RolesAdminServer::new(roles.clone()))
            .add_service(RolesInternalServer::new(roles));
        Ok(App::new(
            base,
            routes,
            &[
                "interlock.roles.v1.RolesAdmin",
                "interlock.roles.v1.RolesInternal",
            ],
        ))
    }
}
