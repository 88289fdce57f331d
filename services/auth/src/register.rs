//! Registration across auth, users and roles: all-or-nothing.
//!
//! 1. The credential is inserted as `pending` (unique login and email are
//!    claimed; login is refused while pending).
//! 2. Holding a row lock on it, auth calls users.CreateUser and
//!    roles.AssignDefaultRoles (both idempotent on the user id), then
//!    activates it in the same transaction.
//! 3. On any failure auth compensates (roles.RemoveUser, users.DeleteUser,
//!    delete the pending row). If compensation cannot run (a module down),
//!    the row stays pending: a retry with the same data resumes it, and the
//!    sweeper compensates it once it is stale.

use chrono::{Duration, Utc};
use interlock_common::ApiError;
use interlock_common::client::PeerChannel;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::{AssignDefaultRolesRequest, RemoveUserRequest};
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use interlock_proto::users::v1::{CreateUserRequest, DeleteUserRequest};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::Registration;
use crate::error::AuthError;
use crate::password::PasswordHasher;
use crate::store::{self, Credential};

/// A pending registration older than this is abandoned and compensated.
pub const STALE_AFTER: Duration = Duration::minutes(10);

/// Clients of the modules registration spans.
#[derive(Clone)]
pub struct Peers {
    pub users: UsersInternalClient<PeerChannel>,
    pub roles: RolesInternalClient<PeerChannel>,
}

/// Registers, or resumes an identical half-done registration.
#[tracing::instrument(skip_all, fields(login = %reg.login.as_str()))]
pub async fn register(
    pool: &PgPool,
    hasher: &PasswordHasher,
    peers: &Peers,
    reg: Registration,
) -> Result<Uuid, AuthError> {
    let login = reg.login.as_str();
    let email = reg.email.as_str();
    let mut resume = None;
    for existing in store::find_conflicts(pool, login, email).await? {
        let same_request = !existing.is_active()
            && existing.login == login
            && existing.email == email
            && hasher
                .verify(
                    secrecy::ExposeSecret::expose_secret(&reg.password.0),
                    Some(&existing.password_hash),
                )
                .await;
        if same_request {
            resume = Some(existing);
        } else {
            return Err(taken(&existing, login).into());
        }
    }
    let credential = match resume {
        Some(c) => {
            tracing::info!(user_id = %c.user_id, "resuming a pending registration");
            c
        }
        None => {
            let c = Credential {
                user_id: Uuid::now_v7(),
                login: login.to_owned(),
                email: email.to_owned(),
                password_hash: hasher
                    .hash(&reg.password.0)
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
                status: "pending".into(),
                first_name: reg.first_name,
                last_name: reg.last_name,
            };
            if let Err(e) = store::insert_pending(pool, &c).await {
                if is_unique_violation(&e) {
                    return Err(ApiError::AlreadyExists(
                        "login or email is already registered".into(),
                    )
                    .into());
                }
                return Err(e.into());
            }
            c
        }
    };
    complete(pool, peers, &credential).await?;
    tracing::info!(user_id = %credential.user_id, "registered");
    Ok(credential.user_id)
}

fn taken(existing: &Credential, login: &str) -> ApiError {
    if existing.login == login {
        ApiError::AlreadyExists("login is already registered".into())
    } else {
        ApiError::AlreadyExists("email is already registered".into())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23505")
}

async fn complete(pool: &PgPool, peers: &Peers, c: &Credential) -> Result<(), AuthError> {
    let mut tx = pool.begin().await?;
    if !store::lock_pending(&mut tx, c.user_id, false).await? {
        // Completed or compensated by someone else meanwhile.
        return Err(ApiError::AlreadyExists("login is already registered".into()).into());
    }
    match create_downstream(peers, c).await {
        Ok(()) => {
            store::activate(&mut tx, c.user_id).await?;
            tx.commit().await?;
            Ok(())
        }
        Err(err) => {
            tracing::warn!(user_id = %c.user_id, error = %err, "registration failed; compensating");
            if compensate(peers, c.user_id).await.is_ok() {
                store::delete_pending(&mut tx, c.user_id).await?;
                tx.commit().await?;
            }
            Err(err.into())
        }
    }
}

async fn create_downstream(peers: &Peers, c: &Credential) -> Result<(), ApiError> {
    peers
        .users
        .clone()
        .create_user(CreateUserRequest {
            id: c.user_id.to_string(),
            login: c.login.clone(),
            email: c.email.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
        })
        .await
        .map_err(|s| ApiError::upstream("users", s))?;
    peers
        .roles
        .clone()
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: c.user_id.to_string(),
        })
        .await
        .map_err(|s| ApiError::upstream("roles", s))?;
    Ok(())
}

/// Undoes whatever users and roles may hold for `user_id`.
async fn compensate(peers: &Peers, user_id: Uuid) -> Result<(), ApiError> {
    let id = user_id.to_string();
    let roles = peers
        .roles
        .clone()
        .remove_user(RemoveUserRequest {
            user_id: id.clone(),
        })
        .await;
    let users = peers
        .users
        .clone()
        .delete_user(DeleteUserRequest { id })
        .await;
    match (roles, users) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(s), _) => Err(ApiError::upstream("roles", s)),
        (_, Err(s)) => Err(ApiError::upstream("users", s)),
    }
}

/// Compensates registrations abandoned for longer than [`STALE_AFTER`].
pub async fn sweep_stale(pool: &PgPool, peers: &Peers) -> anyhow::Result<usize> {
    let mut swept = 0;
    for user_id in store::stale_pending(pool, Utc::now() - STALE_AFTER).await? {
        let mut tx = pool.begin().await?;
        if !store::lock_pending(&mut tx, user_id, true).await? {
            continue;
        }
        match compensate(peers, user_id).await {
            Ok(()) => {
                store::delete_pending(&mut tx, user_id).await?;
                tx.commit().await?;
                swept += 1;
            }
            Err(e) => tracing::warn!(%user_id, error = %e, "cannot compensate yet"),
        }
    }
    Ok(swept)
}
