//! notifications' SQL: notifications, receipts and devices; the pushes
//! still to make, the outcomes a lease holder records and the completion
//! they lead to; the delivery report. The lease itself (claim, checks,
//! release) is [`crate::lease`]; what is final and how an outcome reads is
//! [`crate::delivery`]'s, handed to the queries here.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use interlock_common::page::Cursor;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::delivery::{self, Outcome, Status, Summary};
use crate::error::{NotificationsError, Result};
use crate::lease::{self, Need};

/// A notification as its recipient sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Received {
    pub id: Uuid,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
}

/// A registered device, as its owner sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Device {
    pub id: Uuid,
    pub platform: i16,
    pub registered_at: DateTime<Utc>,
}

/// The result of [`create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub id: Uuid,
    /// False when `request_id` matched an earlier notification.
    pub created: bool,
}

/// Creates a notification with its recipients, or returns the one created
/// earlier with the same `(created_by, request_id)`.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", recipients = recipients.len()))]
pub async fn create(
    pool: &PgPool,
    text: &str,
    recipients: &[Uuid],
    created_by: &str,
    request_id: Option<&str>,
) -> Result<Created> {
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
        return Ok(Created {
            id: existing,
            created: false,
        });
    };
    sqlx::query("INSERT INTO recipients (notification_id, user_id) SELECT $1, unnest($2::uuid[])")
        .bind(id)
        .bind(recipients)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Created { id, created: true })
}

/// A page of the user's notifications, newest first.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn list_for(
    pool: &PgPool,
    user_id: Uuid,
    unreceived_only: bool,
    before: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Received>> {
    Ok(sqlx::query_as(
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
    .await?)
}

/// Marks received (keeping the first time) and returns when.
/// [`NotificationsError::NotificationNotFound`] if the user is not a
/// recipient of that notification.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn mark_received(pool: &PgPool, id: Uuid, user_id: Uuid) -> Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "UPDATE recipients SET received_at = COALESCE(received_at, now())
         WHERE notification_id = $1 AND user_id = $2 RETURNING received_at",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?
    .ok_or(NotificationsError::NotificationNotFound(id))
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
) -> Result<Device> {
    Ok(sqlx::query_as(
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
    .await?)
}

/// Deletes the user's own device. [`NotificationsError::DeviceNotFound`]
/// if it is not theirs.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn delete_device(pool: &PgPool, user_id: Uuid, device_id: Uuid) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM devices WHERE id = $1 AND user_id = $2")
        .bind(device_id)
        .bind(user_id)
        .execute(pool)
        .await?
        .rows_affected();
    match deleted {
        0 => Err(NotificationsError::DeviceNotFound(device_id)),
        _ => Ok(()),
    }
}

// === pushes, outcomes and completion ===

/// A push still to make: a device of a recipient of a notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Push {
    pub notification_id: Uuid,
    pub device_id: Uuid,
    pub user_id: Uuid,
    /// A secret: only its [`delivery::token_hint`] may be logged.
    pub fcm_token: String,
    pub platform: i16,
}

/// The pushes still to make for `ids`: every registered device of every
/// recipient without a final outcome for that notification. The one
/// definition of "still to push": a claim offers exactly these, and a
/// notification with none is complete.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn to_push(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Push>> {
    Ok(sqlx::query_as(
        "SELECT r.notification_id, d.id AS device_id, d.user_id, d.fcm_token, d.platform
         FROM recipients r JOIN devices d ON d.user_id = r.user_id
         WHERE r.notification_id = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM deliveries x
                           WHERE x.notification_id = r.notification_id AND x.device_id = d.id
                             AND x.status = ANY($2))
         ORDER BY r.notification_id, d.id",
    )
    .bind(ids)
    .bind(Status::finals())
    .fetch_all(&mut *conn)
    .await?)
}

/// What [`report`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    /// Outcomes stored.
    pub recorded: u64,
    /// Outcomes for devices that no longer exist, left out.
    pub skipped: u64,
    /// Devices removed because they were reported unregistered.
    pub removed: u64,
    /// Notifications completed: processed with their outcome, lease ended.
    pub completed: Vec<Uuid>,
    /// Notifications named done but with pushes left: lease ended.
    pub released: Vec<Uuid>,
}

/// A device named in a report, as it is now.
#[derive(sqlx::FromRow)]
struct Reachable {
    id: Uuid,
    user_id: Uuid,
    fcm_token: String,
}

#[derive(sqlx::FromRow, PartialEq, Eq, Hash)]
struct Recipient {
    notification_id: Uuid,
    user_id: Uuid,
}

/// Records `worker`'s outcomes and completes what they finish, all or none,
/// in one transaction.
///
/// Refused (nothing written) unless `worker` holds a live lease on every
/// notification named (in `outcomes` or `done`), and every device named
/// that still exists belongs to a recipient of its notification. Devices
/// removed since the claim (by their owner, an earlier UNREGISTERED, or a
/// token re-registered by another user) are skipped: nothing is left to
/// record against. Only in-scope devices are removed as unregistered.
///
/// Then every notification named with nothing left [`to_push`] is
/// completed, and those in `done` that are not are released.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", outcomes = outcomes.len(), done = done.len()))]
pub async fn report(
    pool: &PgPool,
    worker: &str,
    outcomes: &[Outcome],
    done: &[Uuid],
) -> Result<Reported> {
    let mut ids: Vec<Uuid> = outcomes
        .iter()
        .map(|o| o.notification_id)
        .chain(done.iter().copied())
        .collect();
    ids.sort();
    ids.dedup();
    let mut tx = lease::begin(pool, &ids, Need::HeldBy(worker)).await?;
    let devices = match in_scope(&mut tx, &ids, outcomes).await {
        Ok(devices) => devices,
        Err(refused) => {
            tx.rollback().await?;
            return Err(refused);
        }
    };
    let mut reported = Reported::default();
    let mut known = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        match devices.get(&o.device_id) {
            Some(device) => known.push((o, device)),
            None => reported.skipped += 1,
        }
    }
    reported.recorded = known.len() as u64;
    record(&mut tx, &known).await?;
    let (gone, owners): (Vec<Uuid>, Vec<Uuid>) = known
        .iter()
        .filter(|(o, _)| o.status == Status::Unregistered)
        .map(|(o, d)| (o.device_id, d.user_id))
        .unzip();
    if !gone.is_empty() {
        reported.removed = sqlx::query(
            "DELETE FROM devices WHERE (id, user_id) IN \
             (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
        )
        .bind(&gone)
        .bind(&owners)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    let pending: HashSet<Uuid> = to_push(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|p| p.notification_id)
        .collect();
    let complete: Vec<Uuid> = ids
        .iter()
        .filter(|id| !pending.contains(id))
        .copied()
        .collect();
    reported.completed = process(&mut tx, &complete).await?;
    reported.released = done
        .iter()
        .filter(|id| pending.contains(id))
        .copied()
        .collect();
    lease::end(&mut tx, &reported.released).await?;
    tx.commit().await?;
    Ok(reported)
}

/// The devices the outcomes name that still exist, locked so the scope
/// checked here is the one the writes act on; refused with
/// [`NotificationsError::OutOfScope`] if one belongs to no recipient of its
/// notification (among `ids`).
async fn in_scope(
    conn: &mut PgConnection,
    ids: &[Uuid],
    outcomes: &[Outcome],
) -> Result<HashMap<Uuid, Reachable>> {
    let mut device_ids: Vec<Uuid> = outcomes.iter().map(|o| o.device_id).collect();
    device_ids.sort();
    device_ids.dedup();
    let devices: HashMap<Uuid, Reachable> = sqlx::query_as::<_, Reachable>(
        "SELECT id, user_id, fcm_token FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&device_ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|d| (d.id, d))
    .collect();
    let recipients: HashSet<Recipient> = sqlx::query_as(
        "SELECT notification_id, user_id FROM recipients WHERE notification_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let mut out_of_scope: Vec<(Uuid, Uuid)> = outcomes
        .iter()
        .filter(|o| {
            devices.get(&o.device_id).is_some_and(|d| {
                !recipients.contains(&Recipient {
                    notification_id: o.notification_id,
                    user_id: d.user_id,
                })
            })
        })
        .map(|o| (o.notification_id, o.device_id))
        .collect();
    if out_of_scope.is_empty() {
        return Ok(devices);
    }
    out_of_scope.sort();
    out_of_scope.dedup();
    Err(NotificationsError::OutOfScope(out_of_scope))
}

/// Stores the outcomes in one statement (a fan-out's report is thousands
/// of rows); attempts add up over claims. A device named twice in one
/// report counts once, with its attempts summed and its last status.
async fn record(conn: &mut PgConnection, known: &[(&Outcome, &Reachable)]) -> Result<()> {
    if known.is_empty() {
        return Ok(());
    }
    let mut at: HashMap<(Uuid, Uuid), usize> = HashMap::with_capacity(known.len());
    let mut rows: Vec<(&Outcome, &Reachable, i32)> = Vec::with_capacity(known.len());
    for (o, d) in known {
        match at.get(&(o.notification_id, o.device_id)) {
            Some(&i) => {
                let attempts = rows[i].2 + o.attempts;
                rows[i] = (o, d, attempts);
            }
            None => {
                at.insert((o.notification_id, o.device_id), rows.len());
                rows.push((o, d, o.attempts));
            }
        }
    }
    sqlx::query(
        "INSERT INTO deliveries (notification_id, device_id, user_id, token_hint, status, error_code, attempts)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                              $5::delivery_status[], $6::text[], $7::int4[])
         ON CONFLICT (notification_id, device_id) DO UPDATE
             SET status = EXCLUDED.status, error_code = EXCLUDED.error_code,
                 attempts = deliveries.attempts + EXCLUDED.attempts, updated_at = now()",
    )
    .bind(rows.iter().map(|r| r.0.notification_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.0.device_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.user_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| delivery::token_hint(&r.1.fcm_token))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.0.status).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.0.error_code.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Recorded {
    notification_id: Uuid,
    status: Status,
}

/// Marks the unprocessed ones of `ids` processed, with their [`Summary`] as
/// the outcome, and ends their leases; the caller has [`lease::lock`]ed
/// them. Returns the ids it changed, in order.
async fn process(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut summaries: HashMap<Uuid, Summary> =
        ids.iter().map(|id| (*id, Summary::default())).collect();
    let recorded: Vec<Recorded> = sqlx::query_as(
        "SELECT notification_id, status FROM deliveries WHERE notification_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in recorded {
        if let Some(s) = summaries.get_mut(&r.notification_id) {
            s.add(r.status);
        }
    }
    let (ids, outcomes): (Vec<Uuid>, Vec<String>) = summaries
        .into_iter()
        .map(|(id, s)| (id, s.to_string()))
        .unzip();
    let mut changed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE notifications n
         SET processed_at = now(), lease_owner = NULL, lease_until = NULL, outcome = u.outcome
         FROM unnest($1::uuid[], $2::text[]) AS u(id, outcome)
         WHERE n.id = u.id AND n.processed_at IS NULL
         RETURNING n.id",
    )
    .bind(&ids)
    .bind(&outcomes)
    .fetch_all(&mut *conn)
    .await?;
    changed.sort();
    Ok(changed)
}

/// Marks `ids` processed whatever their deliveries, all or none, recording
/// the outcome and ending the lease. Already processed ids are left as they
/// are (a retried call); every other id must be under `worker`'s live
/// lease. Returns how many changed.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn mark_processed(pool: &PgPool, worker: &str, ids: &[Uuid]) -> Result<u64> {
    let mut tx = lease::begin(pool, ids, Need::HeldByOrProcessed(worker)).await?;
    let changed = process(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(changed.len() as u64)
}

// === the delivery report ===

/// One device's stored outcome.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Record {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub token_hint: String,
    pub status: Status,
    pub error_code: String,
    pub attempts: i32,
    pub updated_at: DateTime<Utc>,
}

/// What happened to one notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Report {
    /// Unset while unprocessed.
    pub processed_at: Option<DateTime<Utc>>,
    /// Its [`Summary`], set when processed.
    pub outcome: Option<String>,
    #[sqlx(skip)]
    pub records: Vec<Record>,
}

/// The delivery report of `id`, by device id.
/// [`NotificationsError::NotificationNotFound`] for an unknown id.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn report_of(pool: &PgPool, id: Uuid) -> Result<Report> {
    let mut report: Report =
        sqlx::query_as("SELECT processed_at, outcome FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or(NotificationsError::NotificationNotFound(id))?;
    report.records = sqlx::query_as(
        "SELECT device_id, user_id, token_hint, status, error_code, attempts, updated_at
         FROM deliveries WHERE notification_id = $1 ORDER BY device_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(report)
}
