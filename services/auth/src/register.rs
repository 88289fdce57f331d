//! Registration across auth, users and roles: all-or-nothing.
//!
//! 0. The registration is counted against the client address
//!    ([`crate::throttle`]) before any bcrypt runs; only one turned away
//!    because the server was busy is given back.
//! 1. The credential is inserted as `pending` (unique login and email are
//!    claimed; login is refused while pending), already *claimed* by this
//!    request for [`CLAIM_LEASE`].
//! 2. auth calls users.CreateUser and roles.AssignDefaultRoles (both
//!    idempotent on the user id), renewing its claim between the calls,
//!    then activates the credential if the claim is still its own. When
//!    the address must be confirmed, the first confirmation code is stored
//!    in the same transaction as the activation, and emailed after it
//!    commits: an active account always has a code to confirm with.
//! 3. On a failure auth compensates (roles.RemoveUser, users.DeleteUser,
//!    delete the pending row), again only while it holds the claim. If
//!    compensation cannot run (a module down), the row stays pending and
//!    unclaimed: a retry with the same data resumes it under the same user
//!    id, and the sweeper compensates it once it is stale.
//!
//! No transaction or pooled connection is held across a call to another
//! module: every database step is one short statement. The claim, not a
//! row lock, keeps a completion and a compensation of the same account
//! from overlapping; it outlives the calls made under it (see the check on
//! [`CLAIM_LEASE`]), so a claim can only expire under a stuck request.

use chrono::{Duration, Utc};
use interlock_common::ApiError;
use interlock_common::client::{CALL_TIMEOUT, PeerChannel};
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::{AssignDefaultRolesRequest, RemoveUserRequest};
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use interlock_proto::users::v1::{CreateUserRequest, DeleteUserRequest};
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::FirstCode;
use crate::domain::Registration;
use crate::error::AuthError;
use crate::mailer::{Kind, Outgoing};
use crate::password::Lane;
use crate::service::AuthState;
use crate::store::{self, Activation, Claim, Credential};
use crate::throttle::{self, Attempt};

/// A pending registration older than this is abandoned and compensated.
pub const STALE_AFTER: Duration = Duration::minutes(10);

/// How long a claim on a pending registration lasts without renewal.
pub const CLAIM_LEASE: Duration = Duration::seconds(CLAIM_LEASE_SECS);
const CLAIM_LEASE_SECS: i64 = 60;

// At most two calls run between renewals (the two creates, or the two
// compensations), each bounded by the channel's call timeout.
const _: () = assert!(CLAIM_LEASE_SECS as u64 > 3 * CALL_TIMEOUT.as_secs());

/// Clients of the modules registration spans.
#[derive(Clone)]
pub struct Peers {
    pub users: UsersInternalClient<PeerChannel>,
    pub roles: RolesInternalClient<PeerChannel>,
}

/// A finished registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub user_id: Uuid,
    /// The account must confirm its address before it can log in.
    pub verification_required: bool,
}

/// Registers from the client at `address`, or resumes an identical
/// half-done registration.
pub async fn register(
    s: &AuthState,
    address: &str,
    reg: Registration,
) -> Result<Registered, AuthError> {
    let reservation =
        match throttle::reserve_registration(&s.pool, &s.throttle, address, Utc::now()).await? {
            Attempt::Reserved(r) => r,
            Attempt::Throttled { retry_after } => {
                tracing::warn!("registration throttled (client address limit)");
                return Err(AuthError::TooManyRegistrations { retry_after });
            }
        };
    // Every registration that got this far counts against the address,
    // except one turned away before any work ran.
    match run(s, reg).await {
        Err(AuthError::Busy) => {
            throttle::release(&s.pool, reservation).await?;
            Err(AuthError::Busy)
        }
        Err(e) => Err(e),
        Ok((credential, first)) => {
            let verification_required = first.is_some();
            if let (Some(first), Some(mailer)) = (first, &s.mailer) {
                mailer.send(Outgoing {
                    kind: Kind::VerifyEmail,
                    user_id: credential.user_id,
                    to: credential.email,
                    first_name: credential.first_name,
                    code: first.code,
                    expires_at: first.expires_at,
                });
            }
            Ok(Registered {
                user_id: credential.user_id,
                verification_required,
            })
        }
    }
}

/// Steps 1 to 3: the active credential and, when its address must be
/// confirmed, the code stored with it.
#[tracing::instrument(skip_all)]
async fn run(
    s: &AuthState,
    reg: Registration,
) -> Result<(Credential, Option<FirstCode>), AuthError> {
    let (pool, hasher, peers) = (&s.pool, &s.hasher, &s.peers);
    let login = reg.login.as_str();
    let email = reg.email.as_str();
    let claim = Uuid::new_v4();
    let mut resume = None;
    for existing in store::find_conflicts(pool, login, email).await? {
        let same_request = !existing.is_active()
            && existing.login == login
            && existing.email == email
            && hasher
                .verify(
                    Lane::Registration,
                    secrecy::ExposeSecret::expose_secret(&reg.password.0),
                    Some(&existing.password_hash),
                )
                .await?;
        if same_request {
            resume = Some(existing);
        } else {
            return Err(taken(&existing, login));
        }
    }
    let credential = match resume {
        Some(c) => {
            match store::claim_pending(pool, c.user_id, claim, CLAIM_LEASE).await? {
                Claim::Held => {}
                Claim::Taken => return Err(AuthError::RegistrationInProgress),
                Claim::Active => return Err(AuthError::LoginTaken),
                Claim::Gone => return Err(AuthError::RegistrationUndone),
            }
            tracing::info!(user_id = %c.user_id, "resuming a pending registration");
            c
        }
        None => {
            let c = Credential {
                user_id: Uuid::now_v7(),
                login: login.to_owned(),
                email: email.to_owned(),
                password_hash: hasher.hash(&reg.password.0).await?,
                status: "pending".into(),
                first_name: reg.first_name,
                last_name: reg.last_name,
                email_verified_at: None,
            };
            if let Err(e) = store::insert_pending(pool, &c, claim, CLAIM_LEASE).await {
                if is_unique_violation(&e) {
                    return Err(AuthError::LoginOrEmailTaken);
                }
                return Err(e.into());
            }
            c
        }
    };
    let first = s
        .accounts
        .require_email_verification
        .then(|| FirstCode::new(s, credential.user_id));
    complete(pool, peers, &credential, claim, first.as_ref()).await?;
    tracing::info!(
        user_id = %credential.user_id,
        awaiting_confirmation = first.is_some(),
        "registered"
    );
    Ok((credential, first))
}

fn taken(existing: &Credential, login: &str) -> AuthError {
    if existing.login == login {
        AuthError::LoginTaken
    } else {
        AuthError::EmailTaken
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23505")
}

/// The answer when our claim ran out and someone else took the account
/// over: they finish or undo it, so this request neither does.
fn lost_claim(user_id: Uuid) -> AuthError {
    tracing::warn!(%user_id, "registration claim lost to another request");
    AuthError::RegistrationInterrupted
}

/// Steps 2 and 3, holding `claim` on the pending credential; activation
/// stores `first` (the confirmation code) with it.
async fn complete(
    pool: &PgPool,
    peers: &Peers,
    c: &Credential,
    claim: Uuid,
    first: Option<&FirstCode>,
) -> Result<(), AuthError> {
    match create_downstream(pool, peers, c, claim).await {
        Ok(()) => {
            let activation = match first {
                Some(f) => Activation::AwaitingCode {
                    hash: &f.hash,
                    expires_at: f.expires_at,
                },
                None => Activation::Verified,
            };
            if store::activate(pool, c.user_id, claim, activation).await? {
                Ok(())
            } else {
                Err(lost_claim(c.user_id))
            }
        }
        Err(Step::LostClaim) => Err(lost_claim(c.user_id)),
        Err(Step::Db(e)) => Err(e.into()),
        Err(Step::Peer(err)) => {
            tracing::warn!(user_id = %c.user_id, error = %err, "registration failed; compensating");
            if store::claim_pending(pool, c.user_id, claim, CLAIM_LEASE).await? != Claim::Held {
                return Err(lost_claim(c.user_id));
            }
            if compensate(peers, c.user_id).await.is_ok() {
                store::delete_pending(pool, c.user_id, claim).await?;
            } else {
                // A retry with the same data may resume at once.
                store::release_claim(pool, c.user_id, claim).await?;
            }
            Err(err.into())
        }
    }
}

/// Why the downstream creates stopped.
enum Step {
    Peer(ApiError),
    Db(sqlx::Error),
    LostClaim,
}

async fn create_downstream(
    pool: &PgPool,
    peers: &Peers,
    c: &Credential,
    claim: Uuid,
) -> Result<(), Step> {
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
        .map_err(|s| Step::Peer(ApiError::upstream("users", s)))?;
    match store::claim_pending(pool, c.user_id, claim, CLAIM_LEASE).await {
        Ok(Claim::Held) => {}
        Ok(_) => return Err(Step::LostClaim),
        Err(e) => return Err(Step::Db(e)),
    }
    peers
        .roles
        .clone()
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: c.user_id.to_string(),
        })
        .await
        .map_err(|s| Step::Peer(ApiError::upstream("roles", s)))?;
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
pub async fn sweep_stale(pool: &PgPool, peers: &Peers) -> Result<usize, AuthError> {
    let mut swept = 0;
    for user_id in store::stale_pending(pool, Utc::now() - STALE_AFTER).await? {
        let claim = Uuid::new_v4();
        if store::claim_pending(pool, user_id, claim, CLAIM_LEASE).await? != Claim::Held {
            continue;
        }
        match compensate(peers, user_id).await {
            Ok(()) => {
                if store::delete_pending(pool, user_id, claim).await? {
                    swept += 1;
                }
            }
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "cannot compensate yet");
                store::release_claim(pool, user_id, claim).await?;
            }
        }
    }
    Ok(swept)
}
