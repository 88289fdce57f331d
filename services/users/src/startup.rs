//! Building and running users.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use interlock_common::client::{self, Outbound};
use interlock_common::server::{self, Base};
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_server::UsersInternalServer;
use interlock_proto::users::v1::users_service_server::UsersServiceServer;
use tonic::service::Routes;

use crate::config::Settings;
use crate::service::{Users, UsersState};

pub struct Application {
    base: Base,
    users: Users,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Outbound::default()).await
    }

    /// Builds with a given outbound interceptor (tests stand in for the
    /// sidecar with it).
    pub async fn build_with(settings: Settings, outbound: Outbound) -> anyhow::Result<Self> {
        settings.validate()?;
        let jwt = settings.jwt.verifier(&outbound)?;
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
        Ok(Self { base, users })
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
        let routes = Routes::new(UsersServiceServer::new(self.users.clone()))
            .add_service(UsersInternalServer::new(self.users));
        server::serve(
            self.base.listener,
            routes,
            self.base.guard,
            &[
                "interlock.users.v1.UsersService",
                "interlock.users.v1.UsersInternal",
            ],
            shutdown,
        )
        .await
        .map_err(Into::into)
    }
}
