//! Building roles: its database and guard, its handlers.

use std::sync::Arc;

use interlock_common::client::Outbound;
use interlock_common::server::{App, Base};
use interlock_proto::roles::v1::roles_admin_server::RolesAdminServer;
use interlock_proto::roles::v1::roles_internal_server::RolesInternalServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Roles, RolesState};

/// roles, ready to run on a listener. `outbound`'s headers go on its JWKS
/// fetches (tests stand in for the sidecar with it).
pub async fn build(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
    settings.validate()?;
    let base = Base::prepare(&settings.common, &crate::MIGRATOR, &outbound).await?;
    let roles = Roles(Arc::new(RolesState {
        pool: base.pool.clone(),
        default_roles: settings.default_roles,
    }));
    let routes = Routes::new(RolesAdminServer::new(roles.clone()))
        .add_service(RolesInternalServer::new(roles));
    Ok(App::new(crate::MODULE, base.guard, routes).with_database(base.pool))
}
