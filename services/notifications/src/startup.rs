//! Building and running notifications.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use interlock_common::client::Outbound;
use interlock_common::server::{self, Base};
use interlock_proto::notifications::v1::notifications_internal_server::NotificationsInternalServer;
use interlock_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Notifications, NotificationsState};

pub struct Application {
    base: Base,
    notifications: Notifications,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Outbound::default()).await
    }

    /// Builds with a given outbound interceptor (tests stand in for the
    /// sidecar with it).
    pub async fn build_with(settings: Settings, outbound: Outbound) -> anyhow::Result<Self> {
        settings.validate()?;
        let base = Base::prepare(
            &settings.server,
            &settings.database,
            &crate::MIGRATOR,
            &settings.peer,
            Some(settings.jwt.verifier(&outbound)?),
        )
        .await?;
        let notifications = Notifications(Arc::new(NotificationsState {
            pool: base.pool.clone(),
        }));
        Ok(Self {
            base,
            notifications,
        })
    }

    /// The TCP address (the real port when configured with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.base.listener.tcp_addr()
    }

    /// Where it listens, for logs.
    pub fn describe_listener(&self) -> String {
        self.base.listener.describe()
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let routes = Routes::new(NotificationsServiceServer::new(self.notifications.clone()))
            .add_service(NotificationsInternalServer::new(self.notifications));
        server::serve(
            self.base.listener,
            routes,
            self.base.guard,
            &[
                "interlock.notifications.v1.NotificationsService",
                "interlock.notifications.v1.NotificationsInternal",
            ],
            shutdown,
        )
        .await
        .map_err(Into::into)
    }
}
