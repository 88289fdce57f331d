//! Building and running users.

use std::sync::Arc;

use interlock_common::client::{self, Outbound};
use interlock_common::server::{App, Base};
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_server::UsersInternalServer;
use interlock_proto::users::v1::users_service_server::UsersServiceServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Users, UsersState};

/// users as a runnable service.
pub struct Application;

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with(settings, Outbound::default()).await
    }

    /// Builds with a given outbound interceptor (tests stand in for the
    /// sidecar with it).
    pub async fn build_with(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
        settings.validate()?;
        let jwt = settings.jwt.verifier(&outbound).await?;
        let base = Base::prepare(
            &settings.server,
            &settings.database,
            &crate::MIGRATOR,
            &settings.peer,
            Some(jwt),
        )
        .await?;
        let roles = RolesInternalClient::new(
            client::channel(&settings.peers.roles_url, outbound.clone())
                .map_err(anyhow::Error::msg)?,
        );
        let users = Users(Arc::new(UsersState {
            pool: base.pool.clone(),
            roles,
        }));
        let routes = Routes::new(UsersServiceServer::new(users.clone()))
            .add_service(UsersInternalServer::new(users));
        Ok(App::new(
            base,
            routes,
            &[
                "interlock.users.v1.UsersService",
                "interlock.users.v1.UsersInternal",
            ],
        ))
    }
}
