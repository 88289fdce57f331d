//! The lease that keeps sender replicas apart: taking it ([`claim`]),
//! checking it before every write after the claim ([`begin`], [`lock`]),
//! and giving it back ([`release`], [`end`]).
//!
//! A notification is *held* by a worker while it is unprocessed, its
//! `lease_owner` is that worker and `lease_until` is in the future. The rows
//! are locked (`FOR UPDATE`) by the check, so a lease that is valid when
//! checked stays with its holder until the caller's transaction ends: a
//! claim by another replica (`FOR UPDATE SKIP LOCKED`) cannot take it in
//! between. What the holder writes (outcomes, completion) is in
//! [`crate::store`]; when a delivery is final is [`crate::delivery`]'s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{NotificationsError, Result};
use crate::store::{self, Push};

/// A claimed notification and the pushes still to make for it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub recipient_ids: Vec<Uuid>,
    /// Filled from [`store::to_push`] after the claim.
    #[sqlx(skip)]
    pub to_push: Vec<Push>,
}

/// Claims up to `limit` unprocessed notifications whose lease is free or
/// expired, for `worker` until `now + lease`, oldest first.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let mut tx = pool.begin().await?;
    let mut claimed: Vec<Claimed> = sqlx::query_as(
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
    let mut pushes: HashMap<Uuid, Vec<Push>> = HashMap::new();
    for p in store::to_push(&mut tx, &ids).await? {
        pushes.entry(p.notification_id).or_default().push(p);
    }
    tx.commit().await?;
    claimed.sort_by_key(|c| (c.created_at, c.id));
    for c in &mut claimed {
        c.to_push = pushes.remove(&c.id).unwrap_or_default();
    }
    Ok(claimed)
}

/// What a call needs of the notifications it names.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// A live lease held by this worker.
    HeldBy(&'a str),
    /// Processed already (a retried call), or a live lease held by this
    /// worker.
    HeldByOrProcessed(&'a str),
}

/// Begins the transaction of a call after the claim: `ids` are locked and
/// checked against `need` (see [`lock`]); on a refusal it is rolled back
/// at once and nothing was written.
pub async fn begin(
    pool: &PgPool,
    ids: &[Uuid],
    need: Need<'_>,
) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    match lock(&mut tx, ids, need).await {
        Ok(()) => Ok(tx),
        Err(refused) => {
            tx.rollback().await?;
            Err(refused)
        }
    }
}

#[derive(sqlx::FromRow)]
struct Checked {
    id: Uuid,
    /// Whether the row meets the call's [`Need`].
    ok: bool,
}

/// Locks `ids` in id order (so concurrent calls cannot deadlock) and checks
/// `need` on each, all or none: unknown ids first
/// ([`NotificationsError::UnknownNotifications`]), then
/// [`NotificationsError::LeaseNotHeld`].
///
/// On a refusal the caller must roll back explicitly: a dropped sqlx
/// transaction is rolled back only when its connection is next used, so the
/// row locks would outlive the call and make claims (`SKIP LOCKED`) pass
/// these notifications over.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn lock(conn: &mut PgConnection, ids: &[Uuid], need: Need<'_>) -> Result<()> {
    let worker = match need {
        Need::HeldBy(w) | Need::HeldByOrProcessed(w) => w,
    };
    let rows: Vec<Checked> = sqlx::query_as(
        "SELECT id,
                (processed_at IS NOT NULL AND $3)
                OR (processed_at IS NULL
                    AND COALESCE(lease_until > now() AND lease_owner = $2, false)) AS ok
         FROM notifications WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .bind(worker)
    .bind(matches!(need, Need::HeldByOrProcessed(_)))
    .fetch_all(&mut *conn)
    .await?;
    let mut unknown: Vec<Uuid> = ids
        .iter()
        .filter(|id| !rows.iter().any(|r| r.id == **id))
        .copied()
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(NotificationsError::UnknownNotifications(unknown));
    }
    let not_held: Vec<Uuid> = rows.iter().filter(|r| !r.ok).map(|r| r.id).collect();
    if !not_held.is_empty() {
        return Err(NotificationsError::LeaseNotHeld {
            worker: worker.to_owned(),
            ids: not_held,
        });
    }
    Ok(())
}

/// Ends the leases on `ids` inside a caller's transaction that has
/// [`lock`]ed them. Returns how many rows changed.
pub async fn end(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE notifications SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Frees `worker`'s leases on `ids`, all or none: refused unless `worker`
/// holds a live lease on every one. Returns how many were freed.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn release(pool: &PgPool, worker: &str, ids: &[Uuid]) -> Result<u64> {
    let mut tx = begin(pool, ids, Need::HeldBy(worker)).await?;
    let n = end(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(n)
}
