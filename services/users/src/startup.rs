//! Building users: its database and guard, its roles client, its handlers.

use std::sync::Arc;

use interlock_common::client::{self, Outbound};
use interlock_common::server::{App, Base};
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_server::UsersInternalServer;
use interlock_proto::users::v1::users_service_server::UsersServiceServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Users, UsersState};

/// users, ready to run on a listener. Outbound calls carry `outbound`'s
/// headers (none in production; tests stand in for the sidecar with it).
pub async fn build(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
    settings.validate()?;
    let base = Base::prepare(&settings.common, &crate::MIGRATOR, &outbound).await?;
    let roles = RolesInternalClient::new(
        client::channel(&settings.peers.roles_url, outbound).map_err(anyhow::Error::msg)?,
    );
    let users = Users(Arc::new(UsersState {
        pool: base.pool.clone(),
        roles,
    }));
    let routes = Routes::new(UsersServiceServer::new(users.clone()))
        .add_service(UsersInternalServer::new(users));
    Ok(App::new(crate::MODULE, base.guard, routes).with_database(base.pool))
}
