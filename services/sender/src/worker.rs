//! The delivery loop: claim -> push -> report.
//!
//! A notification is claimed with a lease; no push starts in the last
//! quarter of the lease, so a replica that lost its claim never races the
//! next owner. The report is one call per notification, and the sender
//! does not decide what it leads to: notifications completes the
//! notification when every device's outcome is final, and otherwise
//! releases it so that a later claim offers only the devices that still
//! need it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use interlock_common::client::PeerChannel;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::{
    Delivery, DeliveryResult, DeliveryStatus, ListPendingRequest, PendingNotification,
    ReleaseClaimsRequest, ReportDeliveriesRequest, ReportDeliveriesResponse,
};
use tokio::sync::watch;

use crate::config::SenderConfig;
use crate::fcm::{FcmClient, SendOutcome};

pub struct Worker {
    pub notifications: NotificationsInternalClient<PeerChannel>,
    pub fcm: Arc<FcmClient>,
    pub config: SenderConfig,
    pub title: String,
    pub pause: Pause,
}

/// FCM's `Retry-After` holds for the whole project, not one device: once
/// FCM names a time, no push of this sender starts before it.
#[derive(Default)]
pub struct Pause {
    until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pause {
    /// No push before `wait` from now (a later hold already set stays).
    pub fn hold_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut held = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|h| h < until) {
            *held = Some(until);
        }
    }

    /// Waits out the current hold, if any.
    pub async fn wait(&self) {
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// The most results one ReportDeliveries call takes (notifications'
/// limit, in its proto).
pub const MAX_RESULTS: usize = 1000;

/// The ReportDeliveries calls that end this claim of notification `id`:
/// its results in calls of at most `max`, the last naming `id` done. One
/// call unless the notification has more than `max` devices; a
/// notification with no devices still gets its call, which completes it.
pub fn reports(
    worker: &str,
    id: &str,
    results: Vec<DeliveryResult>,
    max: usize,
) -> Vec<ReportDeliveriesRequest> {
    let mut chunks: Vec<Vec<DeliveryResult>> =
        results.chunks(max.max(1)).map(<[_]>::to_vec).collect();
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, results)| ReportDeliveriesRequest {
            worker_id: worker.to_owned(),
            results,
            done_ids: if i == last {
                vec![id.to_owned()]
            } else {
                Vec::new()
            },
        })
        .collect()
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
        let delivered = results
            .iter()
            .filter(|r| r.status == DeliveryStatus::Delivered as i32)
            .count();
        let pushed = results.len();
        let answer = self.report(&n.id, results).await?;
        if answer.completed_ids.contains(&n.id) {
            tracing::info!(delivered, of = pushed, "notification processed");
        } else {
            tracing::info!(
                delivered,
                of = pushed,
                "devices left to push; the claim was released for a later one"
            );
        }
        Ok(())
    }

    /// Reports `id`'s results and so ends this claim of it (see
    /// [`reports`]). Stops early if an earlier call already completed it:
    /// the devices of the later calls were removed since the claim.
    async fn report(
        &self,
        id: &str,
        results: Vec<DeliveryResult>,
    ) -> anyhow::Result<ReportDeliveriesResponse> {
        let mut answer = ReportDeliveriesResponse::default();
        for call in reports(&self.config.worker_id, id, results, MAX_RESULTS) {
            answer = self
                .notifications
                .clone()
                .report_deliveries(call)
                .await?
                .into_inner();
            if answer.completed_ids.iter().any(|c| c == id) {
                break;
            }
        }
        Ok(answer)
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
        let hint = &d.token_hint;
        let mut attempts = 0;
        let (status, error_code) = loop {
            attempts += 1;
            self.pause.wait().await;
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
                    if let Some(wait) = retry_after {
                        self.pause.hold_for(wait);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(device: usize) -> DeliveryResult {
        DeliveryResult {
            notification_id: "n".into(),
            device_id: device.to_string(),
            status: DeliveryStatus::Delivered as i32,
            ..Default::default()
        }
    }

    /// A notification is reported in one call that names it done, with or
    /// without devices.
    /// A hold delays every later wait until it ends; a shorter hold does
    /// not cut a longer one short.
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_hold_delays_every_push_until_it_ends() {
        let pause = Pause::default();
        let start = tokio::time::Instant::now();
        pause.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pause.hold_for(Duration::from_secs(5));
        pause.hold_for(Duration::from_secs(1));
        pause.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        pause.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn one_call_reports_and_ends_a_notification() {
        for devices in [0, 1, 3] {
            let calls = reports("w", "n", (0..devices).map(result).collect(), 1000);
            assert_eq!(calls.len(), 1, "{devices} devices");
            assert_eq!(calls[0].results.len(), devices);
            assert_eq!(calls[0].done_ids, ["n"]);
            assert_eq!(calls[0].worker_id, "w");
        }
    }

    /// Past the per-call limit the results are split, and only the last
    /// call names the notification done, so it is not released early.
    #[test]
    fn more_results_than_one_call_takes_are_split_and_only_the_last_ends_the_claim() {
        let calls = reports("w", "n", (0..5).map(result).collect(), 2);
        let sizes: Vec<usize> = calls.iter().map(|c| c.results.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let done: Vec<&[String]> = calls.iter().map(|c| c.done_ids.as_slice()).collect();
        assert_eq!(done, [&[][..], &[][..], &["n".to_owned()][..]]);
    }
}
