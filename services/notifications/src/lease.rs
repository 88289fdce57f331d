//! Who may write to a claimed notification: the checks that every sender
//! call after the claim (report, mark processed, release) runs first, inside
//! its own transaction, and the refusals they give.
//!
//! A notification is *held* by a worker while it is unprocessed, its
//! `lease_owner` is that worker and `lease_until` is in the future. The rows
//! are locked (`FOR UPDATE`) by the check, so a lease that is valid when
//! checked stays with its holder until the caller's transaction ends: a
//! claim by another replica (`FOR UPDATE SKIP LOCKED`) cannot take it in
//! between. This module owns no writes.

use interlock_common::ApiError;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Why a sender's call was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// These notification ids do not exist.
    Unknown(Vec<Uuid>),
    /// The caller holds no live lease on these notifications: never claimed,
    /// claimed by another worker, the lease expired or was released, or the
    /// notification is processed (unless the call accepts that).
    NotHeld { worker: String, ids: Vec<Uuid> },
    /// `(notification, device)` pairs whose device exists but belongs to no
    /// recipient of that notification.
    OutOfScope(Vec<(Uuid, Uuid)>),
}

fn list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Unknown(ids) => {
                ApiError::NotFound(format!("unknown notification ids: {}", list(&ids)))
            }
            Refusal::NotHeld { worker, ids } => ApiError::FailedPrecondition(format!(
                "worker {worker:?} holds no live lease on notifications: {}",
                list(&ids)
            )),
            Refusal::OutOfScope(pairs) => ApiError::FailedPrecondition(format!(
                "devices not registered to a recipient of the notification: {}",
                pairs
                    .iter()
                    .map(|(n, d)| format!("device {d} (notification {n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
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
) -> sqlx::Result<Result<Transaction<'static, Postgres>, Refusal>> {
    let mut tx = pool.begin().await?;
    match lock(&mut tx, ids, need).await? {
        Ok(()) => Ok(Ok(tx)),
        Err(refused) => {
            tx.rollback().await?;
            Ok(Err(refused))
        }
    }
}

/// Locks `ids` in id order (so concurrent calls cannot deadlock) and checks
/// `need` on each, all or none: `Unknown` first, then `NotHeld`.
///
/// On a refusal the caller must roll back explicitly: a dropped sqlx
/// transaction is rolled back only when its connection is next used, so the
/// row locks would outlive the call and make claims (`SKIP LOCKED`) pass
/// these notifications over.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", ids = ids.len()))]
pub async fn lock(
    conn: &mut PgConnection,
    ids: &[Uuid],
    need: Need<'_>,
) -> sqlx::Result<Result<(), Refusal>> {
    let worker = match need {
        Need::HeldBy(w) | Need::HeldByOrProcessed(w) => w,
    };
    let rows: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT id,
                (processed_at IS NOT NULL AND $3)
                OR (processed_at IS NULL AND COALESCE(lease_until > now(), false)
                    AND ($2::text IS NULL OR lease_owner = $2)) AS ok
         FROM notifications WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .bind(worker)
    .bind(matches!(need, Need::HeldByOrProcessed(_)))
    .fetch_all(&mut *conn)
    .await?;
    let mut unknown: Vec<Uuid> = ids
        .iter()
        .filter(|id| !rows.iter().any(|(r, _)| r == *id))
        .copied()
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Ok(Err(Refusal::Unknown(unknown)));
    }
    let not_held: Vec<Uuid> = rows
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(id, _)| *id)
        .collect();
    if !not_held.is_empty() {
        return Ok(Err(Refusal::NotHeld {
            worker: worker.to_owned(),
            ids: not_held,
        }));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn status(r: Refusal) -> Status {
        Status::from(ApiError::from(r))
    }

    /// Unknown ids are NOT_FOUND; a missing lease or a device outside the
    /// recipients is FAILED_PRECONDITION; each message names what is wrong.
    #[test]
    fn refusals_map_to_codes_and_name_the_problem() {
        let (n, d) = (Uuid::nil(), Uuid::max());
        let s = status(Refusal::Unknown(vec![n]));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), format!("unknown notification ids: {n}"));

        let s = status(Refusal::NotHeld {
            worker: "w2".into(),
            ids: vec![n],
        });
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(
            s.message(),
            format!("worker \"w2\" holds no live lease on notifications: {n}")
        );

        let s = status(Refusal::OutOfScope(vec![(n, d)]));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("not registered to a recipient"));
        assert!(
            s.message()
                .contains(&format!("device {d} (notification {n})"))
        );
    }
}
