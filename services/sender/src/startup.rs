//! Building and running the sender: the worker loop plus a health server.

use std::future::Future;
use std::sync::Arc;

use interlock_common::client::{self, Outbound};
use interlock_common::server::{self, Listener};
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use tonic::service::Routes;

use crate::config::Settings;
use crate::fcm::FcmClient;
use crate::worker::Worker;

pub struct Application {
    worker: Worker,
    listener: Listener,
    guard: interlock_common::guard::Guard,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Outbound::default()).await
    }

    /// Builds with a given outbound interceptor (tests stand in for the
    /// sidecar with it).
    pub async fn build_with(settings: Settings, outbound: Outbound) -> anyhow::Result<Self> {
        settings.validate()?;
        let account = std::fs::read_to_string(&settings.fcm.service_account_file)?;
        let fcm = FcmClient::new(
            &account,
            &settings.fcm.base_url,
            settings.fcm.token_uri.as_deref(),
        )?;
        let notifications = NotificationsInternalClient::new(
            client::channel(&settings.peers.notifications_url, outbound)
                .map_err(anyhow::Error::msg)?,
        );
        let guard = interlock_common::guard::from_settings(&settings.peer, None).await?;
        let listener = Listener::bind(&settings.server).await?;
        Ok(Self {
            worker: Worker {
                notifications,
                fcm: Arc::new(fcm),
                config: settings.sender,
                title: settings.fcm.title,
            },
            listener,
            guard,
        })
    }

    pub fn describe_listener(&self) -> String {
        self.listener.describe()
    }

    /// Delivers until `shutdown`; the notification in progress is finished
    /// and unstarted claims are released before returning.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (health_stop_tx, health_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let health = tokio::spawn(server::serve(
            self.listener,
            Routes::default(),
            self.guard,
            &[],
            async move {
                let _ = health_stop_rx.await;
            },
        ));
        let worker = tokio::spawn(Arc::new(self.worker).run(stop_rx));
        shutdown.await;
        let _ = stop_tx.send(true);
        worker.await?;
        let _ = health_stop_tx.send(());
        health.await??;
        Ok(())
    }
}
