//! Building the sender: its FCM client and notifications client, the
//! delivery loop as a background task, and health as its only API.

use std::sync::Arc;

use interlock_common::client::{self, Outbound};
use interlock_common::guard::Guard;
use interlock_common::server::App;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use tonic::service::Routes;

use crate::config::Settings;
use crate::fcm::FcmClient;
use crate::worker::Worker;

/// The sender, ready to run on a listener (health only). At shutdown the
/// notification in progress is finished and unstarted claims are released
/// before [`App::run`] returns. Calls to notifications carry `outbound`'s
/// headers (tests stand in for the sidecar with it).
pub async fn build(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
    settings.validate()?;
    let account = std::fs::read_to_string(&settings.fcm.service_account_file)?;
    let fcm = FcmClient::new(
        &account,
        &settings.fcm.base_url,
        settings.fcm.token_uri.as_deref(),
    )?;
    let notifications = NotificationsInternalClient::new(
        client::channel(&settings.peers.notifications_url, outbound).map_err(anyhow::Error::msg)?,
    );
    // No user tokens: nothing but health is served.
    let guard = Guard::from_settings(&settings.common.peer, None).await?;
    let worker = Arc::new(Worker {
        notifications,
        fcm: Arc::new(fcm),
        config: settings.sender,
        title: settings.fcm.title,
        pause: Default::default(),
    });
    Ok(App::new(crate::MODULE, guard, Routes::default())
        .with_task("delivery", move |stop| worker.run(stop)))
}
