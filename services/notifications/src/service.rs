//! notifications' external gRPC handlers (the current user's). Thin: parse
//! the request, call [`crate::store`], map the result; failures are
//! [`crate::error::NotificationsError`]s.

use std::sync::Arc;

use interlock_common::page::{Cursor, split_page};
use interlock_common::{ApiError, context, timestamp, validate};
use interlock_proto::notifications::v1::notifications_service_server::NotificationsService;
use interlock_proto::notifications::v1::*;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::store;

pub const MAX_TOKEN: usize = 4096;

pub struct NotificationsState {
    pub pool: PgPool,
}

#[derive(Clone)]
pub struct Notifications(pub Arc<NotificationsState>);

fn fcm_token(v: &str) -> Result<&str, ApiError> {
    if v.is_empty() {
        return Err(ApiError::invalid("fcm_token", "is required"));
    }
    if v.len() > MAX_TOKEN {
        return Err(ApiError::invalid(
            "fcm_token",
            format!("must be at most {MAX_TOKEN} characters"),
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "fcm_token",
            "must be printable ASCII without spaces",
        ));
    }
    Ok(v)
}

pub(crate) fn platform(v: i32) -> Result<i16, ApiError> {
    match Platform::try_from(v) {
        Ok(Platform::Unspecified) | Err(_) => Err(ApiError::invalid(
            "platform",
            "must be PLATFORM_ANDROID, PLATFORM_IOS or PLATFORM_WEB",
        )),
        Ok(p) => Ok(p as i16),
    }
}

#[tonic::async_trait]
impl NotificationsService for Notifications {
    async fn list_mine(
        &self,
        req: Request<ListMineRequest>,
    ) -> Result<Response<ListMineResponse>, Status> {
        let me = context::user(&req)?.user_id;
        let b = req.get_ref();
        let limit = validate::page_size("page_size", b.page_size, 20, 100)?;
        let before = Cursor::decode("page_token", &b.page_token)?;
        let rows = store::list_for(&self.0.pool, me, b.unreceived_only, before, limit + 1).await?;
        let (rows, next_page_token) = split_page(rows, limit, |r| Cursor {
            at: r.created_at,
            id: r.id,
            tie: String::new(),
        });
        Ok(Response::new(ListMineResponse {
            notifications: rows
                .into_iter()
                .map(|r| Notification {
                    id: r.id.to_string(),
                    text: r.text,
                    created_at: Some(timestamp(r.created_at)),
                    received_at: r.received_at.map(timestamp),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn mark_received(
        &self,
        req: Request<MarkReceivedRequest>,
    ) -> Result<Response<MarkReceivedResponse>, Status> {
        let me = context::user(&req)?.user_id;
        let id = validate::uuid("id", &req.get_ref().id)?;
        let at = store::mark_received(&self.0.pool, id, me).await?;
        Ok(Response::new(MarkReceivedResponse {
            received_at: Some(timestamp(at)),
        }))
    }

    async fn register_device(
        &self,
        req: Request<RegisterDeviceRequest>,
    ) -> Result<Response<Device>, Status> {
        let me = context::user(&req)?.user_id;
        let b = req.get_ref();
        let token = fcm_token(&b.fcm_token)?;
        let platform = platform(b.platform)?;
        let d = store::upsert_device(&self.0.pool, me, token, platform).await?;
        Ok(Response::new(Device {
            id: d.id.to_string(),
            platform: i32::from(d.platform),
            registered_at: Some(timestamp(d.registered_at)),
        }))
    }

    async fn unregister_device(
        &self,
        req: Request<UnregisterDeviceRequest>,
    ) -> Result<Response<UnregisterDeviceResponse>, Status> {
        let me = context::user(&req)?.user_id;
        let id = validate::uuid("device_id", &req.get_ref().device_id)?;
        store::delete_device(&self.0.pool, me, id).await?;
        Ok(Response::new(UnregisterDeviceResponse {}))
    }
}
