//! Building and running notifications.

use std::sync::Arc;

use interlock_common::client::Outbound;
use interlock_common::server::{App, Base};
use interlock_proto::notifications::v1::notifications_internal_server::NotificationsInternalServer;
use interlock_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Notifications, NotificationsState};

/// notifications as a runnable service.
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
        let notifications = Notifications(Arc::new(NotificationsState {
            pool: base.pool.clone(),
        }));
        let routes = Routes::new(NotificationsServiceServer::new(notifications.clone()))
            .add_service(NotificationsInternalServer::new(notifications));
        Ok(App::new(
            base,
            routes,
            &[
                "interlock.notifications.v1.NotificationsService",
                "interlock.notifications.v1.NotificationsInternal",
            ],
        ))
    }
}
