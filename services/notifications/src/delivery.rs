//! SQL of push delivery: leases that keep sender replicas from claiming the
//! same notification, per-device outcomes, and the processed outcome.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Final statuses: a device with one of these is never pushed again for
/// that notification.
pub const FINAL: &[&str] = &["delivered", "unregistered", "failed_permanent"];

/// A claimed notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub recipient_ids: Vec<Uuid>,
}

/// A push still to make.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Todo {
    pub notification_id: Uuid,
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub fcm_token: String,
    pub platform: i16,
}

/// Claims up to `limit` unprocessed notifications whose lease is free or
/// expired, for `worker` until `now + lease`.
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    lease: chrono::Duration,
    limit: i64,
) -> sqlx::Result<(Vec<Claimed>, Vec<Todo>)> {
    let mut tx = pool.begin().await?;
    let claimed: Vec<Claimed> = sqlx::query_as(
        "WITH picked AS (
             SELECT id FROM notifications
             WHERE processed_at IS NULL AND (lease_until IS NULL OR lease_until < now())
             ORDER BY created_at, id
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE notifications n SET lease_owner = $1, lease_until = now() + $2
         FROM picked WHERE n.id = picked.id
         RETURNING n.id, n.text, n.created_at, n.lease_until,
             array(SELECT r.user_id FROM recipients r WHERE r.notification_id = n.id ORDER BY r.user_id) AS recipient_ids",
    )
    .bind(worker)
    .bind(lease)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
    let todo: Vec<Todo> = sqlx::query_as(
        "SELECT r.notification_id, d.id AS device_id, d.user_id, d.fcm_token, d.platform
         FROM recipients r JOIN devices d ON d.user_id = r.user_id
         WHERE r.notification_id = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM deliveries x
                           WHERE x.notification_id = r.notification_id AND x.device_id = d.id
                             AND x.status = ANY($2))
         ORDER BY r.notification_id, d.id",
    )
    .bind(&ids)
    .bind(FINAL)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut claimed = claimed;
    claimed.sort_by_key(|c| (c.created_at, c.id));
    Ok((claimed, todo))
}

/// One reported outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub notification_id: Uuid,
    pub device_id: Uuid,
    pub status: &'static str,
    pub error_code: String,
    pub attempts: i32,
}

/// Records outcomes, all or none; `Err(unknown notification ids)` if any
/// is unknown. Returns how many devices were removed as unregistered.
#[tracing::instrument(skip(pool, outcomes), fields(db.system = "postgresql", outcomes = outcomes.len()))]
pub async fn report(pool: &PgPool, outcomes: &[Outcome]) -> sqlx::Result<Result<u64, Vec<Uuid>>> {
    let mut tx = pool.begin().await?;
    let mut ids: Vec<Uuid> = outcomes.iter().map(|o| o.notification_id).collect();
    ids.sort();
    ids.dedup();
    let known: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM notifications WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let unknown: Vec<Uuid> = ids.into_iter().filter(|id| !known.contains(id)).collect();
    if !unknown.is_empty() {
        return Ok(Err(unknown));
    }
    let mut removed = 0;
    for o in outcomes {
        sqlx::query(
            "INSERT INTO deliveries (notification_id, device_id, user_id, token_hint, status, error_code, attempts)
             SELECT $1, $2, COALESCE(d.user_id, '00000000-0000-0000-0000-000000000000'),
                    COALESCE(right(d.fcm_token, 6), ''), $3, $4, $5
             FROM (SELECT 1) AS one LEFT JOIN devices d ON d.id = $2
             ON CONFLICT (notification_id, device_id) DO UPDATE
                 SET status = EXCLUDED.status, error_code = EXCLUDED.error_code,
                     attempts = deliveries.attempts + EXCLUDED.attempts, updated_at = now()",
        )
        .bind(o.notification_id)
        .bind(o.device_id)
        .bind(o.status)
        .bind(&o.error_code)
        .bind(o.attempts)
        .execute(&mut *tx)
        .await?;
        if o.status == "unregistered" {
            removed += sqlx::query("DELETE FROM devices WHERE id = $1")
                .bind(o.device_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    tx.commit().await?;
    Ok(Ok(removed))
}

/// Frees `worker`'s leases on `ids`.
#[tracing::instrument(skip(pool, ids), fields(db.system = "postgresql"))]
pub async fn release(pool: &PgPool, worker: &str, ids: &[Uuid]) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE notifications SET lease_owner = NULL, lease_until = NULL
         WHERE id = ANY($1) AND lease_owner = $2 AND processed_at IS NULL",
    )
    .bind(ids)
    .bind(worker)
    .execute(pool)
    .await?
    .rows_affected())
}

/// The outcome text of a notification, from its delivery rows.
pub const OUTCOME_SQL: &str = "CASE
    WHEN NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.notification_id = n.id)
        THEN 'no registered devices'
    ELSE format('delivered to %s of %s devices',
        (SELECT count(*) FROM deliveries x WHERE x.notification_id = n.id AND x.status = 'delivered'),
        (SELECT count(*) FROM deliveries x WHERE x.notification_id = n.id))
    END";

/// One row of a delivery report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Record {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub token_hint: String,
    pub status: String,
    pub error_code: String,
    pub attempts: i32,
    pub updated_at: DateTime<Utc>,
}

/// `(processed_at, outcome, records)`; `None` for an unknown id.
#[allow(clippy::type_complexity)]
#[tracing::instrument(skip(pool), fields(db.system = "postgresql"))]
pub async fn report_of(
    pool: &PgPool,
    id: Uuid,
) -> sqlx::Result<Option<(Option<DateTime<Utc>>, Option<String>, Vec<Record>)>> {
    let head: Option<(Option<DateTime<Utc>>, Option<String>)> =
        sqlx::query_as("SELECT processed_at, outcome FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let Some((processed_at, outcome)) = head else {
        return Ok(None);
    };
    let records = sqlx::query_as(
        "SELECT device_id, user_id, token_hint, status, error_code, attempts, updated_at
         FROM deliveries WHERE notification_id = $1 ORDER BY device_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some((processed_at, outcome, records)))
}
