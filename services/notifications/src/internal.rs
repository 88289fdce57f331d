//! notifications' internal gRPC handlers: Create for modules; claim, report,
//! release and mark-processed for the sender; the delivery report.

use chrono::Duration;
use interlock_common::{ApiError, context, timestamp, validate};
use interlock_proto::notifications::v1::notifications_internal_server::NotificationsInternal;
use interlock_proto::notifications::v1::*;
use tonic::{Request, Response, Status};

use crate::delivery::{self, Outcome};
use crate::service::Notifications;
use crate::store;

pub const MAX_TEXT: usize = 4096;
pub const MAX_RECIPIENTS: usize = 1000;
const MAX_IDS: usize = 1000;

fn worker_id(v: &str) -> Result<String, ApiError> {
    validate::text("worker_id", v, 1, 128)
}

fn status_name(v: i32, field: &str) -> Result<&'static str, ApiError> {
    match DeliveryStatus::try_from(v) {
        Ok(DeliveryStatus::Delivered) => Ok("delivered"),
        Ok(DeliveryStatus::Unregistered) => Ok("unregistered"),
        Ok(DeliveryStatus::FailedPermanent) => Ok("failed_permanent"),
        Ok(DeliveryStatus::FailedTransient) => Ok("failed_transient"),
        _ => Err(ApiError::invalid(
            field,
            "must be a DELIVERY_STATUS other than UNSPECIFIED",
        )),
    }
}

fn status_value(name: &str) -> DeliveryStatus {
    match name {
        "delivered" => DeliveryStatus::Delivered,
        "unregistered" => DeliveryStatus::Unregistered,
        "failed_permanent" => DeliveryStatus::FailedPermanent,
        "failed_transient" => DeliveryStatus::FailedTransient,
        _ => DeliveryStatus::Unspecified,
    }
}

#[tonic::async_trait]
impl NotificationsInternal for Notifications {
    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let by = context::peer(&req)?.spiffe_id.clone();
        let b = req.get_ref();
        let text = validate::text("text", &b.text, 1, MAX_TEXT)?;
        let recipients = validate::uuid_list("recipient_ids", &b.recipient_ids, MAX_RECIPIENTS)?;
        let request_id = match b.request_id.as_str() {
            "" => None,
            r => Some(validate::text("request_id", r, 1, 128)?),
        };
        let (id, created) =
            store::create(&self.0.pool, &text, &recipients, &by, request_id.as_deref())
                .await
                .map_err(ApiError::from)?;
        if created {
            tracing::info!(notification_id = %id, recipients = recipients.len(), created_by = %by, "notification created");
        }
        Ok(Response::new(CreateResponse {
            id: id.to_string(),
            created,
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
        let (claimed, todo) = delivery::claim(
            &self.0.pool,
            &worker,
            Duration::seconds(lease.into()),
            limit,
        )
        .await
        .map_err(ApiError::from)?;
        let notifications = claimed
            .into_iter()
            .map(|c| PendingNotification {
                id: c.id.to_string(),
                text: c.text,
                recipient_ids: c.recipient_ids.iter().map(ToString::to_string).collect(),
                created_at: Some(timestamp(c.created_at)),
                deliveries: todo
                    .iter()
                    .filter(|t| t.notification_id == c.id)
                    .map(|t| Delivery {
                        device_id: t.device_id.to_string(),
                        user_id: t.user_id.to_string(),
                        fcm_token: t.fcm_token.clone(),
                        platform: i32::from(t.platform),
                    })
                    .collect(),
                lease_expires_at: Some(timestamp(c.lease_until)),
            })
            .collect::<Vec<_>>();
        if !notifications.is_empty() {
            tracing::info!(%worker, claimed = notifications.len(), "notifications claimed");
        }
        Ok(Response::new(ListPendingResponse { notifications }))
    }

    async fn report_deliveries(
        &self,
        req: Request<ReportDeliveriesRequest>,
    ) -> Result<Response<ReportDeliveriesResponse>, Status> {
        let b = req.get_ref();
        let worker = worker_id(&b.worker_id)?;
        if b.results.is_empty() || b.results.len() > MAX_IDS {
            return Err(
                ApiError::invalid("results", format!("must have 1 to {MAX_IDS} entries")).into(),
            );
        }
        let mut outcomes = Vec::with_capacity(b.results.len());
        for (i, r) in b.results.iter().enumerate() {
            outcomes.push(Outcome {
                notification_id: validate::uuid(
                    &format!("results[{i}].notification_id"),
                    &r.notification_id,
                )?,
                device_id: validate::uuid(&format!("results[{i}].device_id"), &r.device_id)?,
                status: status_name(r.status, &format!("results[{i}].status"))?,
                error_code: validate::text(
                    &format!("results[{i}].error_code"),
                    &r.error_code,
                    0,
                    64,
                )?,
                attempts: i32::try_from(r.attempts.min(1000)).unwrap_or(1000),
            });
        }
        let done = delivery::report(&self.0.pool, &worker, &outcomes)
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        tracing::info!(
            %worker,
            results = outcomes.len(),
            recorded = done.recorded,
            skipped_removed_devices = done.skipped,
            devices_removed = done.removed,
            "deliveries reported"
        );
        Ok(Response::new(ReportDeliveriesResponse {
            devices_removed: u32::try_from(done.removed).unwrap_or(u32::MAX),
        }))
    }

    async fn mark_processed(
        &self,
        req: Request<MarkProcessedRequest>,
    ) -> Result<Response<MarkProcessedResponse>, Status> {
        let b = req.get_ref();
        let worker = worker_id(&b.worker_id)?;
        let ids = validate::uuid_list("ids", &b.ids, MAX_IDS)?;
        let n = delivery::mark_processed(&self.0.pool, &worker, &ids)
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        Ok(Response::new(MarkProcessedResponse {
            processed: u32::try_from(n).unwrap_or(u32::MAX),
        }))
    }

    async fn release_claims(
        &self,
        req: Request<ReleaseClaimsRequest>,
    ) -> Result<Response<ReleaseClaimsResponse>, Status> {
        let b = req.get_ref();
        let worker = worker_id(&b.worker_id)?;
        let ids = validate::uuid_list("ids", &b.ids, MAX_IDS)?;
        let released = delivery::release(&self.0.pool, &worker, &ids)
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        Ok(Response::new(ReleaseClaimsResponse {
            released: u32::try_from(released).unwrap_or(u32::MAX),
        }))
    }

    async fn get_delivery_report(
        &self,
        req: Request<GetDeliveryReportRequest>,
    ) -> Result<Response<DeliveryReport>, Status> {
        let id = validate::uuid("id", &req.get_ref().id)?;
        let (processed_at, outcome, records) = delivery::report_of(&self.0.pool, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| Status::not_found(format!("notification {id} not found")))?;
        Ok(Response::new(DeliveryReport {
            notification_id: id.to_string(),
            processed_at: processed_at.map(timestamp),
            outcome: outcome.unwrap_or_default(),
            deliveries: records
                .into_iter()
                .map(|r| DeliveryRecord {
                    device_id: r.device_id.to_string(),
                    user_id: r.user_id.to_string(),
                    token_hint: r.token_hint,
                    status: status_value(&r.status) as i32,
                    error_code: r.error_code,
                    attempts: u32::try_from(r.attempts).unwrap_or(0),
                    updated_at: Some(timestamp(r.updated_at)),
                })
                .collect(),
        }))
    }
}
