//! roles' SQL.

use chrono::{DateTime, Utc};
use interlock_common::page::Cursor;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::RolesError;

/// One assignment row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Assignment {
    pub user_id: Uuid,
    pub role: String,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn subject_exists(pool: &PgPool, user_id: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM subjects WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .is_some())
}

/// The user's roles, sorted; `None` for an unknown user. One round trip:
/// GetMe asks this on every call.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn roles_of(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Option<Vec<String>>> {
    let (known, roles): (bool, Vec<String>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM subjects WHERE user_id = $1),
                ARRAY(SELECT role FROM role_assignments WHERE user_id = $1 ORDER BY role)",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    Ok(known.then_some(roles))
}

/// The roles of each of `ids` that is known (sorted), in one query; the
/// unknown ones are absent.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", users = ids.len()))]
pub async fn roles_of_many(
    pool: &PgPool,
    ids: &[Uuid],
) -> sqlx::Result<std::collections::HashMap<Uuid, Vec<String>>> {
    let rows: Vec<(Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT s.user_id,
                ARRAY(SELECT role FROM role_assignments a WHERE a.user_id = s.user_id ORDER BY role)
         FROM subjects s WHERE s.user_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Records the user and grants `roles`, idempotently, in one transaction.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn add_subject(pool: &PgPool, user_id: Uuid, roles: &[String]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO subjects (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO role_assignments (user_id, role, granted_by)
         SELECT $1, r, 'system' FROM unnest($2::text[]) AS r
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(roles)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// What a removal did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    Yes,
    NotFound,
    /// Refused: the user is the last admin.
    LastAdmin,
}

/// Forgets a user and their roles; never the last admin (the same check,
/// under the same lock, as [`revoke`]).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn remove_subject(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Removed> {
    let mut tx = pool.begin().await?;
    if is_last_admin(&mut tx, user_id).await? {
        return Ok(Removed::LastAdmin);
    }
    let n = sqlx::query("DELETE FROM subjects WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(if n == 1 {
        Removed::Yes
    } else {
        Removed::NotFound
    })
}

/// Whether `user_id` is the only admin. Locks every admin row until the
/// transaction ends, so two concurrent revokes or removals of different
/// admins cannot both see another admin left: the second waits, then sees
/// the first one's change.
async fn is_last_admin(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    let admins: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM role_assignments WHERE role = $1 FOR UPDATE")
            .bind(crate::ADMIN)
            .fetch_all(conn)
            .await?;
    Ok(admins == [user_id])
}

/// Grants a role; false when it was already held.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn grant(
    pool: &PgPool,
    user_id: Uuid,
    role: &str,
    granted_by: &str,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO role_assignments (user_id, role, granted_by) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(role)
    .bind(granted_by)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// What a revoke did.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoked {
    Yes,
    NotHeld,
    /// Refused: it would leave no admin.
    LastAdmin,
}

/// Revokes a role; never removes the last admin (checked under a lock on
/// all admin rows, so two concurrent revokes cannot both pass).
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn revoke(pool: &PgPool, user_id: Uuid, role: &str) -> sqlx::Result<Revoked> {
    let mut tx = pool.begin().await?;
    if role == crate::ADMIN && is_last_admin(&mut tx, user_id).await? {
        return Ok(Revoked::LastAdmin);
    }
    let n = sqlx::query("DELETE FROM role_assignments WHERE user_id = $1 AND role = $2")
        .bind(user_id)
        .bind(role)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(if n == 1 {
        Revoked::Yes
    } else {
        Revoked::NotHeld
    })
}

/// Assignments filtered by user and/or role, oldest first, after `after`.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn list(
    pool: &PgPool,
    user_id: Option<Uuid>,
    role: Option<&str>,
    after: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<Assignment>> {
    sqlx::query_as(
        "SELECT user_id, role, granted_by, granted_at FROM role_assignments
         WHERE ($1::uuid IS NULL OR user_id = $1)
           AND ($2::text IS NULL OR role = $2)
           AND ($3::timestamptz IS NULL OR (granted_at, user_id, role) > ($3, $4, $5))
         ORDER BY granted_at, user_id, role
         LIMIT $6",
    )
    .bind(user_id)
    .bind(role)
    .bind(after.as_ref().map(|c| c.at))
    .bind(after.as_ref().map(|c| c.id))
    .bind(after.as_ref().map(|c| c.tie.clone()))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Grants `admin` to `user_id` only if nobody holds it yet (first admin).
pub async fn bootstrap_admin(pool: &PgPool, user_id: Uuid) -> Result<(), RolesError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE role_assignments IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let existing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM role_assignments WHERE role = 'admin'")
            .fetch_one(&mut *tx)
            .await?;
    if existing != 0 {
        return Err(RolesError::AdminExists);
    }
    let known = sqlx::query("SELECT 1 FROM subjects WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if !known {
        return Err(RolesError::NotRegistered(user_id));
    }
    sqlx::query("INSERT INTO role_assignments (user_id, role, granted_by) VALUES ($1, 'admin', 'bootstrap')")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
