//! notifications' internal gRPC handlers: Create for modules; claim, report,
//! release and mark-processed for the sender; the delivery report. Thin:
//! parse the request, call [`crate::lease`] / [`crate::store`], map the
//! result; failures are [`crate::error::NotificationsError`]s.

use chrono::Duration;
use interlock_common::{ApiError, context, timestamp, validate};
use interlock_proto::notifications::v1::notifications_internal_server::NotificationsInternal;
use interlock_proto::notifications::v1::*;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::delivery::{self, Outcome};
use crate::lease::{self, Claimed};
use crate::service::Notifications;
use crate::store;

pub const MAX_TEXT: usize = 4096;
/// Recipients of one notification: a broadcast to a large group.
pub const MAX_RECIPIENTS: usize = 10_000;
/// The most ids (or results) one sender call may name.
const MAX_IDS: usize = 1000;

fn worker_id(v: &str) -> Result<String, ApiError> {
    validate::line("worker_id", v, 1, 128)
}

/// A ReportDeliveries request, parsed.
struct Reporting {
    outcomes: Vec<Outcome>,
    done: Vec<Uuid>,
}

/// At most [`MAX_IDS`] results and done ids, and not both empty.
fn reporting(b: &ReportDeliveriesRequest) -> Result<Reporting, ApiError> {
    if b.results.len() > MAX_IDS {
        return Err(ApiError::invalid(
            "results",
            format!("must have at most {MAX_IDS} entries"),
        ));
    }
    let outcomes = b
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| Outcome::parse(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let done = match b.done_ids.as_slice() {
        [] if outcomes.is_empty() => {
            return Err(ApiError::invalid(
                "results",
                "must not be empty when done_ids is",
            ));
        }
        [] => Vec::new(),
        ids => validate::uuid_list("done_ids", ids, MAX_IDS)?,
    };
    Ok(Reporting { outcomes, done })
}

fn ids(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn pending(c: Claimed) -> PendingNotification {
    PendingNotification {
        id: c.id.to_string(),
        text: c.text,
        recipient_ids: ids(&c.recipient_ids),
        created_at: Some(timestamp(c.created_at)),
        deliveries: c
            .to_push
            .into_iter()
            .map(|p| Delivery {
                device_id: p.device_id.to_string(),
                user_id: p.user_id.to_string(),
                token_hint: delivery::token_hint(&p.fcm_token).to_owned(),
                fcm_token: p.fcm_token,
                platform: i32::from(p.platform),
            })
            .collect(),
        lease_expires_at: Some(timestamp(c.lease_until)),
    }
}

fn record(r: store::Record) -> DeliveryRecord {
    DeliveryRecord {
        device_id: r.device_id.to_string(),
        user_id: r.user_id.to_string(),
        token_hint: r.token_hint,
        status: r.status.to_proto(),
        error_code: r.error_code,
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        updated_at: Some(timestamp(r.updated_at)),
    }
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl NotificationsInternal for Notifications {
    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let by = context::peer(&req)?.spiffe_id.clone();
        let b = req.get_ref();
        let text = validate::line("text", &b.text, 1, MAX_TEXT)?;
        let recipients = validate::uuid_list("recipient_ids", &b.recipient_ids, MAX_RECIPIENTS)?;
        let request_id = match b.request_id.as_str() {
            "" => None,
            r => Some(validate::line("request_id", r, 1, 128)?),
        };
        let created =
            store::create(&self.0.pool, &text, &recipients, &by, request_id.as_deref()).await?;
        if created.created {
            tracing::info!(notification_id = %created.id, recipients = recipients.len(), created_by = %by, "notification created");
        }
        Ok(Response::new(CreateResponse {
            id: created.id.to_string(),
            created: created.created,
        }))
    }

    async fn list_pending(
        &self,
        req: Request<ListPendingRequest>,
    ) -> Result<Response<ListPendingResponse>, Status> {
        let b = req.get_ref();
        let limit = validate::page_size("limit", b.limit, 100, 1000)?;
        let worker = worker_id(&b.worker_id)?;
        let lease = match b.lease_seconds {
            0 => 60,
            s @ 5..=600 => s,
            _ => return Err(ApiError::invalid("lease_seconds", "must be 5 to 600").into()),
        };
        let claimed = lease::claim(
            &self.0.pool,
            &worker,
            Duration::seconds(lease.into()),
            limit,
        )
        .await?;
        if !claimed.is_empty() {
            tracing::info!(%worker, claimed = claimed.len(), "notifications claimed");
        }
        Ok(Response::new(ListPendingResponse {
            notifications: claimed.into_iter().map(pending).collect(),
        }))
    }

    async fn report_deliveries(
        &self,
        req: Request<ReportDeliveriesRequest>,
    ) -> Result<Response<ReportDeliveriesResponse>, Status> {
        let b = req.get_ref();
        let worker = worker_id(&b.worker_id)?;
        let r = reporting(b)?;
        let reported = store::report(&self.0.pool, &worker, &r.outcomes, &r.done).await?;
        tracing::info!(
            %worker,
            results = r.outcomes.len(),
            recorded = reported.recorded,
            skipped_removed_devices = reported.skipped,
            devices_removed = reported.removed,
            completed = reported.completed.len(),
            released = reported.released.len(),
            "deliveries reported"
        );
        Ok(Response::new(ReportDeliveriesResponse {
            devices_removed: count(reported.removed),
            completed_ids: ids(&reported.completed),
            released_ids: ids(&reported.released),
        }))
    }

    async fn mark_processed(
        &self,
        req: Request<MarkProcessedRequest>,
    ) -> Result<Response<MarkProcessedResponse>, Status> {
        let b = req.get_ref();
        let worker = worker_id(&b.worker_id)?;
        let ids = validate::uuid_list("ids", &b.ids, MAX_IDS)?;
        let n = store::mark_processed(&self.0.pool, &worker, &ids).await?;
        Ok(Response::new(MarkProcessedResponse {
            processed: count(n),
        }))
    }

    async fn release_claims(
        &self,
        req: Request<ReleaseClaimsRequest>,
    ) -> Result<Response<ReleaseClaimsResponse>, Status> {
        let b = req.get_ref();
        let worker = worker_id(&b.worker_id)?;
        let ids = validate::uuid_list("ids", &b.ids, MAX_IDS)?;
        let released = lease::release(&self.0.pool, &worker, &ids).await?;
        Ok(Response::new(ReleaseClaimsResponse {
            released: count(released),
        }))
    }

    async fn get_delivery_report(
        &self,
        req: Request<GetDeliveryReportRequest>,
    ) -> Result<Response<DeliveryReport>, Status> {
        let id = validate::uuid("id", &req.get_ref().id)?;
        let report = store::report_of(&self.0.pool, id).await?;
        Ok(Response::new(DeliveryReport {
            notification_id: id.to_string(),
            processed_at: report.processed_at.map(timestamp),
            outcome: report.outcome.unwrap_or_default(),
            deliveries: report.records.into_iter().map(record).collect(),
        }))
    }
}
