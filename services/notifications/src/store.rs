//! notifications' SQL.

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
#[tracing::instrument(skip(pool, text, recipients), fields(db.system = "postgresql", recipients = recipients.len()))]
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

/// Marks all of `ids` processed, or none: `Err(unknown ids)` if any is
/// unknown. Returns how many changed.
#[tracing::instrument(skip(pool, ids), fields(db.system = "postgresql", ids = ids.len()))]
pub async fn mark_processed(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Result<u64, Vec<Uuid>>> {
    let mut tx = pool.begin().await?;
    let known: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM notifications WHERE id = ANY($1) FOR UPDATE")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
    let unknown: Vec<Uuid> = ids
        .iter()
        .filter(|id| !known.contains(id))
        .copied()
        .collect();
    if !unknown.is_empty() {
        return Ok(Err(unknown));
    }
    // Processing ends the lease and records the outcome from the deliveries.
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications n SET processed_at = now(), lease_owner = NULL, lease_until = NULL,
             outcome = {}
         WHERE id = ANY($1) AND processed_at IS NULL",
        crate::delivery::OUTCOME_SQL
    )))
    .bind(ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Ok(n))
}

/// A page of the user's notifications, newest first.
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
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
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
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

/// Registers a token for the user; a token of another user moves over.
#[tracing::instrument(skip(pool, token), fields(db.system = "postgresql"))]
pub async fn upsert_device(
    pool: &PgPool,
    user_id: Uuid,
    token: &str,
    platform: i16,
) -> sqlx::Result<Device> {
    sqlx::query_as(
        "INSERT INTO devices (id, user_id, fcm_token, platform) VALUES ($1, $2, $3, $4)
         ON CONFLICT (fcm_token) DO UPDATE
             SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform, registered_at = now()
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
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
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
