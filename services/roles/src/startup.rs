//! Building and running roles.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use interlock_common::client::Outbound;
use interlock_common::server::{self, Base};
use interlock_proto::roles::v1::roles_admin_server::RolesAdminServer;
use interlock_proto::roles::v1::roles_internal_server::RolesInternalServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Roles, RolesState};

pub struct Application {
    base: Base,
    roles: Roles,
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
        let roles = Roles(Arc::new(RolesState {
            pool: base.pool.clone(),
            default_roles: settings.default_roles,
        }));
        Ok(Self { base, roles })
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
        let routes = Routes::new(RolesAdminServer::new(self.roles.clone()))
            .add_service(RolesInternalServer::new(self.roles));
        server::serve(
            self.base.listener,
            routes,
            self.base.guard,
            &[
                "interlock.roles.v1.RolesAdmin",
                "interlock.roles.v1.RolesInternal",
            ],
            shutdown,
        )
        .await
        .map_err(Into::into)
    }
}
