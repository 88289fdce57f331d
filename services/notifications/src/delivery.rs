//! SQL of push delivery: leases that keep sender replicas from claiming the
//! same notification, per-device outcomes, and the processed outcome.
//!
//! Every write after the claim first passes [`lease::lock`] in the same
//! transaction: only the lease holder writes, and only to its notifications'
//! recipients' devices.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::lease::{self, Need, Refusal};

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
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
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

/// What [`report`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    /// Outcomes stored.
    pub recorded: u64,
    /// Outcomes for devices that no longer exist, left out.
    pub skipped: u64,
    /// Devices removed because they were reported unregistered.
    pub removed: u64,
}

/// Records `worker`'s outcomes, all or none, in one transaction.
///
/// Refused (nothing written) unless `worker` holds a live lease on every
/// notification named, and every device named that still exists belongs to
/// a recipient of its notification. Devices removed since the claim (by
/// their owner, an earlier UNREGISTERED, or a token re-registered by another
/// user) are skipped: nothing is left to record against. Only in-scope
/// devices are removed as unregistered.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", outcomes = outcomes.len()))]
pub async fn report(
    pool: &PgPool,
    worker: &str,
    outcomes: &[Outcome],
) -> sqlx::Result<Result<Reported, Refusal>> {
    let mut ids: Vec<Uuid> = outcomes.iter().map(|o| o.notification_id).collect();
    ids.sort();
    ids.dedup();
    let mut tx = match lease::begin(pool, &ids, Need::HeldBy(worker)).await? {
        Ok(tx) => tx,
        Err(refused) => return Ok(Err(refused)),
    };
    let mut device_ids: Vec<Uuid> = outcomes.iter().map(|o| o.device_id).collect();
    device_ids.sort();
    device_ids.dedup();
    // Locked so the scope checked here is the one the writes below act on.
    let devices: HashMap<Uuid, (Uuid, String)> = sqlx::query_as::<_, (Uuid, Uuid, String)>(
        "SELECT id, user_id, right(fcm_token, 6) FROM devices
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&device_ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(id, user, hint)| (id, (user, hint)))
    .collect();
    let recipients: HashSet<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT notification_id, user_id FROM recipients WHERE notification_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut out_of_scope: Vec<(Uuid, Uuid)> = outcomes
        .iter()
        .filter(|o| {
            devices
                .get(&o.device_id)
                .is_some_and(|(user, _)| !recipients.contains(&(o.notification_id, *user)))
        })
        .map(|o| (o.notification_id, o.device_id))
        .collect();
    if !out_of_scope.is_empty() {
        out_of_scope.sort();
        out_of_scope.dedup();
        tx.rollback().await?;
        return Ok(Err(Refusal::OutOfScope(out_of_scope)));
    }
    let mut done = Reported::default();
    for o in outcomes {
        let Some((user_id, hint)) = devices.get(&o.device_id) else {
            done.skipped += 1;
            continue;
        };
        sqlx::query(
            "INSERT INTO deliveries (notification_id, device_id, user_id, token_hint, status, error_code, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (notification_id, device_id) DO UPDATE
                 SET status = EXCLUDED.status, error_code = EXCLUDED.error_code,
                     attempts = deliveries.attempts + EXCLUDED.attempts, updated_at = now()",
        )
        .bind(o.notification_id)
        .bind(o.device_id)
        .bind(user_id)
        .bind(hint)
        .bind(o.status)
        .bind(&o.error_code)
        .bind(o.attempts)
        .execute(&mut *tx)
        .await?;
        done.recorded += 1;
        if o.status == "unregistered" {
            done.removed += sqlx::query("DELETE FROM devices WHERE id = $1 AND user_id = $2")
                .bind(o.device_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    tx.commit().await?;
    Ok(Ok(done))
}

/// Frees `worker`'s leases on `ids`, all or none: refused unless `worker`
/// holds a live lease on every one. Returns how many were freed.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn release(
    pool: &PgPool,
    worker: &str,
    ids: &[Uuid],
) -> sqlx::Result<Result<u64, Refusal>> {
    let mut tx = match lease::begin(pool, ids, Need::HeldBy(worker)).await? {
        Ok(tx) => tx,
        Err(refused) => return Ok(Err(refused)),
    };
    let n = sqlx::query(
        "UPDATE notifications SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Ok(n))
}

/// Marks `ids` processed, all or none, recording the outcome from the
/// deliveries and ending the lease. Already processed ids are left as they
/// are (a retried call); every other id must be under `worker`'s live
/// lease.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn mark_processed(
    pool: &PgPool,
    worker: &str,
    ids: &[Uuid],
) -> sqlx::Result<Result<u64, Refusal>> {
    let mut tx = match lease::begin(pool, ids, Need::HeldByOrProcessed(worker)).await? {
        Ok(tx) => tx,
        Err(refused) => return Ok(Err(refused)),
    };
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications n SET processed_at = now(), lease_owner = NULL, lease_until = NULL,
             outcome = {OUTCOME_SQL}
         WHERE id = ANY($1) AND processed_at IS NULL"
    )))
    .bind(ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Ok(n))
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
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
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
