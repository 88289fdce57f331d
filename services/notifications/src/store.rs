//! notifications' SQL: notifications, receipts and devices (claims and
//! delivery outcomes are in [`crate::delivery`]).

use chrono::{DateTime, Utc};
use interlock_common::page::Cursor;
use sqlx::PgPool;
use uuid::Uuid;

/// A notification as its recipient sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Received {
    pub id: Uuid,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Device {
    pub id: Uuid,
    pub platform: i16,
    pub registered_at: DateTime<Utc>,
}

/// Creates a notification with its recipients, or returns the one created
/// earlier with the same `(created_by, request_id)`. `(id, created)`.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", recipients = recipients.len()))]
pub async fn create(
    pool: &PgPool,
    text: &str,
    recipients: &[Uuid],
    created_by: &str,
    request_id: Option<&str>,
) -> sqlx::Result<(Uuid, bool)> {
    let mut tx = pool.begin().await?;
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifications (id, text, created_by, request_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (created_by, request_id) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(text)
    .bind(created_by)
    .bind(request_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = inserted else {
        let existing = sqlx::query_scalar(
            "SELECT id FROM notifications WHERE created_by = $1 AND request_id = $2",
        )
        .bind(created_by)
        .bind(request_id)
        .fetch_one(&mut *tx)
        .await?;
        return Ok((existing, false));
    };
    sqlx::query("INSERT INTO recipients (notification_id, user_id) SELECT $1, unnest($2::uuid[])")
        .bind(id)
        .bind(recipients)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((id, true))
}

/// A page of the user's notifications, newest first.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn list_for(
    pool: &PgPool,
    user_id: Uuid,
    unreceived_only: bool,
    before: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<Received>> {
    sqlx::query_as(
        "SELECT n.id, n.text, n.created_at, r.received_at
         FROM recipients r JOIN notifications n ON n.id = r.notification_id
         WHERE r.user_id = $1
           AND (NOT $2 OR r.received_at IS NULL)
           AND ($3::timestamptz IS NULL OR (n.created_at, n.id) < ($3, $4))
         ORDER BY n.created_at DESC, n.id DESC LIMIT $5",
    )
    .bind(user_id)
    .bind(unreceived_only)
    .bind(before.as_ref().map(|c| c.at))
    .bind(before.as_ref().map(|c| c.id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Marks received (keeping the first time). `None` if the user is not a
/// recipient of that notification.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn mark_received(
    pool: &PgPool,
    id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "UPDATE recipients SET received_at = COALESCE(received_at, now())
         WHERE notification_id = $1 AND user_id = $2 RETURNING received_at",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Registers a token for the user, in one statement (so one transaction).
///
/// - New token: a new device.
/// - The user's own token: the same device (idempotent); platform and
///   registration time are refreshed.
/// - Another user's token (the app install changed hands): the binding is
///   re-made under a fresh device id. The previous owner's device id stops
///   existing and is never returned to the caller, so it cannot be used to
///   act on that user's device or learn it existed.
///
/// `ON CONFLICT (fcm_token)` relies on the token's unique index, so two
/// concurrent registrations of one token serialise on it: one inserts, the
/// other updates the committed row (never a unique violation, never two
/// rows). `deliveries.device_id` is deliberately not a foreign key, so the
/// old owner's delivery history survives the change of id.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn upsert_device(
    pool: &PgPool,
    user_id: Uuid,
    token: &str,
    platform: i16,
) -> sqlx::Result<Device> {
    sqlx::query_as(
        "INSERT INTO devices (id, user_id, fcm_token, platform) VALUES ($1, $2, $3, $4)
         ON CONFLICT (fcm_token) DO UPDATE
             SET id = CASE WHEN devices.user_id = EXCLUDED.user_id
                           THEN devices.id ELSE EXCLUDED.id END,
                 user_id = EXCLUDED.user_id, platform = EXCLUDED.platform, registered_at = now()
         RETURNING id, platform, registered_at",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(token)
    .bind(platform)
    .fetch_one(pool)
    .await
}

/// Deletes the user's own device; false if it is not theirs.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn delete_device(pool: &PgPool, user_id: Uuid, device_id: Uuid) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM devices WHERE id = $1 AND user_id = $2")
            .bind(device_id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}
