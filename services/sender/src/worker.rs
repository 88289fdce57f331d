//! The delivery loop: claim -> push -> report -> mark processed.
//!
//! A notification is claimed with a lease; no push starts in the last
//! quarter of the lease, so a replica that lost its claim never races the
//! next owner. Devices with a final outcome are never offered again, so a
//! retried notification reaches only the devices that still need it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use interlock_common::client::PeerChannel;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::{
    Delivery, DeliveryResult, DeliveryStatus, ListPendingRequest, MarkProcessedRequest,
    PendingNotification, ReleaseClaimsRequest, ReportDeliveriesRequest,
};
use tokio::sync::watch;

use crate::config::SenderConfig;
use crate::fcm::{FcmClient, SendOutcome};

pub struct Worker {
    pub notifications: NotificationsInternalClient<PeerChannel>,
    pub fcm: Arc<FcmClient>,
    pub config: SenderConfig,
    pub title: String,
}

/// The last characters of a device token: enough to recognise it in logs.
pub fn token_hint(token: &str) -> &str {
    &token[token.len().saturating_sub(6)..]
}

fn is_final(status: i32) -> bool {
    status != DeliveryStatus::FailedTransient as i32
}

fn to_utc(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    t.as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or_else(Utc::now)
}

impl Worker {
    /// Polls until `shutdown` turns true; then releases what it has not
    /// started.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.poll_interval_ms);
        tracing::info!(worker = %self.config.worker_id, "sender polling");
        while !*shutdown.borrow() {
            match self.poll_once(&shutdown).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "poll failed"),
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
        tracing::info!("sender stopped");
    }

    /// One claim and its processing; returns how many notifications were
    /// handled.
    pub async fn poll_once(
        self: &Arc<Self>,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<usize> {
        let batch = self
            .notifications
            .clone()
            .list_pending(ListPendingRequest {
                limit: self.config.batch_size,
                worker_id: self.config.worker_id.clone(),
                lease_seconds: self.config.lease_secs,
            })
            .await?
            .into_inner()
            .notifications;
        let margin = chrono::Duration::seconds(i64::from(self.config.lease_secs) / 4);
        let mut handled = 0;
        let mut rest = batch.into_iter();
        while let Some(n) = rest.next() {
            let lease_end = to_utc(&n.lease_expires_at);
            if *shutdown.borrow() || Utc::now() + margin >= lease_end {
                let ids: Vec<String> = std::iter::once(n.id).chain(rest.map(|n| n.id)).collect();
                tracing::info!(released = ids.len(), "releasing unstarted claims");
                self.release(ids).await?;
                break;
            }
            self.process(n, lease_end - margin).await?;
            handled += 1;
        }
        Ok(handled)
    }

    async fn release(&self, ids: Vec<String>) -> anyhow::Result<()> {
        self.notifications
            .clone()
            .release_claims(ReleaseClaimsRequest {
                worker_id: self.config.worker_id.clone(),
                ids,
            })
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(notification_id = %n.id, devices = n.deliveries.len()))]
    async fn process(
        self: &Arc<Self>,
        n: PendingNotification,
        deadline: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let n = Arc::new(n);
        let limit = Arc::new(tokio::sync::Semaphore::new(self.config.max_concurrency));
        let mut pushes = tokio::task::JoinSet::new();
        for i in 0..n.deliveries.len() {
            let permit = limit.clone().acquire_owned().await?;
            let (me, n) = (self.clone(), n.clone());
            pushes.spawn(async move {
                let _permit = permit;
                me.deliver(&n, &n.deliveries[i], deadline).await
            });
        }
        let mut results: Vec<DeliveryResult> = Vec::with_capacity(n.deliveries.len());
        while let Some(r) = pushes.join_next().await {
            results.push(r?);
        }
        if !results.is_empty() {
            self.notifications
                .clone()
                .report_deliveries(ReportDeliveriesRequest {
                    worker_id: self.config.worker_id.clone(),
                    results: results.clone(),
                })
                .await?;
        }
        if results.iter().all(|r| is_final(r.status)) {
            self.notifications
                .clone()
                .mark_processed(MarkProcessedRequest {
                    ids: vec![n.id.clone()],
                    worker_id: self.config.worker_id.clone(),
                })
                .await?;
            let delivered = results
                .iter()
                .filter(|r| r.status == DeliveryStatus::Delivered as i32)
                .count();
            tracing::info!(delivered, of = results.len(), "notification processed");
        } else {
            tracing::info!("some deliveries must be retried; releasing the claim");
            self.release(vec![n.id.clone()]).await?;
        }
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base_ms
            .saturating_mul(1 << attempt.min(16));
        let capped = exp.min(self.config.backoff_max_ms);
        // Jitter in [50%, 100%] so replicas do not retry in lockstep.
        let jittered = capped / 2 + rand::random::<u64>() % (capped / 2 + 1);
        Duration::from_millis(jittered)
    }

    async fn deliver(
        &self,
        n: &PendingNotification,
        d: &Delivery,
        deadline: DateTime<Utc>,
    ) -> DeliveryResult {
        let hint = token_hint(&d.fcm_token);
        let mut attempts = 0;
        let (status, error_code) = loop {
            attempts += 1;
            let sent = self
                .fcm
                .send(
                    &d.fcm_token,
                    &self.title,
                    &n.text,
                    &[("notification_id", n.id.as_str())],
                )
                .await;
            match sent {
                Ok(SendOutcome::Delivered) => break (DeliveryStatus::Delivered, String::new()),
                Ok(SendOutcome::Unregistered) => {
                    break (DeliveryStatus::Unregistered, "UNREGISTERED".to_owned());
                }
                Ok(SendOutcome::Permanent(code)) => break (DeliveryStatus::FailedPermanent, code),
                Ok(SendOutcome::Retry { code, retry_after }) => {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempts - 1));
                    let too_late = Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or_default()
                        >= deadline;
                    if attempts >= self.config.max_attempts || too_late {
                        break (DeliveryStatus::FailedTransient, code);
                    }
                    tracing::debug!(device = %d.device_id, token = %hint, %code, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "FCM authentication failed");
                    break (DeliveryStatus::FailedTransient, "AUTH".to_owned());
                }
            }
        };
        tracing::info!(device = %d.device_id, token = %hint, status = ?status, %error_code, attempts, "delivery");
        DeliveryResult {
            notification_id: n.id.clone(),
            device_id: d.device_id.clone(),
            status: status as i32,
            error_code,
            attempts,
        }
    }
}
