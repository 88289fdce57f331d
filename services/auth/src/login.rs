//! Sessions as a client sees them: Login starts one, Refresh continues it,
//! Logout ends it. Each issues (or stops issuing) a token pair.
//!
//! Login, in order:
//! 1. Look the account up by login or email; an account that is not active
//!    counts as unknown.
//! 2. Reserve an attempt against the account (or what was typed, for an
//!    unknown one) and the client address, *before* bcrypt runs, so that
//!    concurrent guesses cannot all get past the limit
//!    ([`crate::throttle`]).
//! 3. Verify the password; an unknown account is verified against a dummy
//!    hash so the answer takes as long ([`crate::password`]). If no bcrypt
//!    slot came free, no guess was checked and the reservation is given
//!    back; a wrong password keeps it as the failure record.
//! 4. On success forget the account's failures; an account whose address
//!    must still be confirmed is refused here (FAILED_PRECONDITION, told
//!    only to whoever knew the password). Otherwise start a session with
//!    its first refresh token and sign an access token.
//!
//! This module decides nothing about transport: it returns an [`Issued`]
//! or an [`AuthError`], and the handler maps either.

use chrono::{DateTime, Utc};
use interlock_common::context::AuthenticatedUser;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::domain::{Credentials, PresentedRefreshToken};
use crate::error::AuthError;
use crate::password::Lane;
use crate::service::AuthState;
use crate::store::{self, RefreshOutcome};
use crate::throttle::{self, AccountKey, Attempt};
use crate::tokens::{self, AccessToken};

/// A token pair for a session: what Login and Refresh hand out.
pub struct Issued {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub access: AccessToken,
    /// Given to the client once; only its hash is stored.
    pub refresh_token: String,
    /// When the refresh token, and with it the session, ends.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Checks `credentials` from `address` and starts a session.
#[tracing::instrument(skip_all)]
pub async fn login(
    s: &AuthState,
    credentials: Credentials,
    address: &str,
) -> Result<Issued, AuthError> {
    let now = Utc::now();
    let typed = credentials.login_or_email.as_str();
    let found = store::find_by_login_or_email(&s.pool, typed)
        .await?
        .filter(|c| c.is_active());
    let account = found.as_ref().map_or_else(
        || AccountKey::unknown(typed),
        |c| AccountKey::User(c.user_id),
    );
    let reservation =
        match throttle::reserve_login(&s.pool, &s.throttle, &account, address, now).await? {
            Attempt::Reserved(r) => r,
            Attempt::Throttled { retry_after } => {
                tracing::warn!("login throttled");
                return Err(AuthError::Throttled { retry_after });
            }
        };
    let hash = found.as_ref().map(|c| c.password_hash.as_str());
    let password = credentials.password.0.expose_secret();
    let verified = match s.hasher.verify(Lane::Login, password, hash).await {
        Ok(v) => v,
        Err(busy) => {
            // No guess was checked: the attempt does not count.
            throttle::release(&s.pool, reservation).await?;
            return Err(busy.into());
        }
    };
    let Some(user) = found.filter(|_| verified) else {
        tracing::info!("login failed");
        return Err(AuthError::InvalidCredentials);
    };
    throttle::login_succeeded(&s.pool, reservation, &account).await?;
    // Said only to whoever knows the password, so it reveals nothing.
    if s.accounts.require_email_verification && !user.email_verified() {
        tracing::info!(user_id = %user.user_id, "login refused: email not confirmed");
        return Err(AuthError::EmailNotConfirmed);
    }
    let refresh = tokens::new_refresh_token();
    let expires_at = now + s.tokens.refresh_ttl;
    let Some(session_id) = store::create_session(
        &s.pool,
        user.user_id,
        &user.password_hash,
        &refresh.hash,
        expires_at,
    )
    .await?
    else {
        // The password changed (or the account left `active`) while
        // bcrypt ran: the verified password is no longer the account's.
        tracing::info!(user_id = %user.user_id, "login failed: the password changed meanwhile");
        return Err(AuthError::InvalidCredentials);
    };
    tracing::info!(user_id = %user.user_id, %session_id, "logged in");
    issue(s, user.user_id, session_id, refresh.token, expires_at).await
}

/// Uses `presented` once and continues its session with a new pair.
/// Presenting a used token revokes the session (reuse detection).
#[tracing::instrument(skip_all)]
pub async fn refresh(
    s: &AuthState,
    presented: &PresentedRefreshToken,
) -> Result<Issued, AuthError> {
    let now = Utc::now();
    let next = tokens::new_refresh_token();
    let old_hash = tokens::hash_refresh_token(presented.as_str());
    match store::rotate_refresh(&s.pool, &old_hash, &next.hash, now).await? {
        RefreshOutcome::Rotated {
            user_id,
            session_id,
            expires_at,
        } => issue(s, user_id, session_id, next.token, expires_at).await,
        RefreshOutcome::Reused { session_id } => {
            tracing::warn!(%session_id, "refresh token reuse: session revoked");
            Err(AuthError::RefreshTokenReuse)
        }
        RefreshOutcome::Invalid => Err(AuthError::InvalidRefreshToken),
    }
}

/// Ends the caller's session (idempotent). Its access tokens are refused
/// everywhere once verifiers reread the revocation list
/// ([`crate::revocations`]).
#[tracing::instrument(skip_all)]
pub async fn logout(s: &AuthState, user: &AuthenticatedUser) -> Result<(), AuthError> {
    store::revoke_session(&s.pool, user.session_id, "logout").await?;
    tracing::info!(user_id = %user.user_id, session_id = %user.session_id, "logged out");
    Ok(())
}

/// Signs an access token for the session and pairs it with `refresh_token`.
/// The access token's clock starts now, after any bcrypt wait.
async fn issue(
    s: &AuthState,
    user_id: Uuid,
    session_id: Uuid,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
) -> Result<Issued, AuthError> {
    let now = Utc::now();
    let key = s
        .keys
        .signing_key(now)
        .await
        .ok_or(AuthError::NoSigningKey)?;
    let access = tokens::sign_access(&key, &s.tokens, user_id, session_id, now)
        .map_err(AuthError::Signing)?;
    Ok(Issued {
        user_id,
        session_id,
        access,
        refresh_token,
        refresh_expires_at,
    })
}
