//! Building notifications: its database and guard, its handlers.

use std::sync::Arc;

use interlock_common::client::Outbound;
use interlock_common::server::{App, Base};
use interlock_proto::notifications::v1::notifications_internal_server::NotificationsInternalServer;
use interlock_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Notifications, NotificationsState};

/// notifications, ready to run on a listener. `outbound`'s headers go on
/// its JWKS fetches (tests stand in for the sidecar with it).
pub async fn build(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
    settings.validate()?;
    let base = Base::prepare(&settings.common, &crate::MIGRATOR, &outbound).await?;
    let notifications = Notifications(Arc::new(NotificationsState {
        pool: base.pool.clone(),
    }));
    let routes = Routes::new(NotificationsServiceServer::new(notifications.clone()))
        .add_service(NotificationsInternalServer::new(notifications));
    Ok(App::new(crate::MODULE, base.guard, routes).with_database(base.pool))
}
