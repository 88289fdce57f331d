//! users' SQL.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{NewProfile, ProfileChanges};

/// A stored profile.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Profile {
    pub id: Uuid,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub display_name: String,
    pub locale: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Profile {
    /// Whether this is the profile `new` would create (a retried CreateUser).
    pub fn is_created_from(&self, new: &NewProfile) -> bool {
        self.id == new.id
            && self.login == new.login
            && self.email == new.email
            && self.first_name == new.first_name
            && self.last_name == new.last_name
    }
}

#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Profile>> {
    sqlx::query_as("SELECT * FROM profiles WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn get_many(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<Profile>> {
    sqlx::query_as("SELECT * FROM profiles WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await
}

/// Inserts a profile; returns whether it was new.
#[tracing::instrument(skip_all, fields(db.system = "postgresql", id = %p.id))]
pub async fn insert(pool: &PgPool, p: &NewProfile) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO profiles (id, login, email, first_name, last_name) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(p.id)
    .bind(&p.login)
    .bind(&p.email)
    .bind(&p.first_name)
    .bind(&p.last_name)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn delete(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query("DELETE FROM profiles WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// Applies the set fields; `None` when there is no such profile.
#[tracing::instrument(skip_all, fields(db.system = "postgresql"))]
pub async fn update(pool: &PgPool, id: Uuid, c: &ProfileChanges) -> sqlx::Result<Option<Profile>> {
    sqlx::query_as(
        "UPDATE profiles SET
             first_name   = COALESCE($2, first_name),
             last_name    = COALESCE($3, last_name),
             display_name = COALESCE($4, display_name),
             locale       = COALESCE($5, locale),
             time_zone    = COALESCE($6, time_zone),
             updated_at   = now()
         WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(&c.first_name)
    .bind(&c.last_name)
    .bind(&c.display_name)
    .bind(&c.locale)
    .bind(&c.time_zone)
    .fetch_optional(pool)
    .await
}
