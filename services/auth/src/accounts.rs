//! Accounts beyond sign-in: confirming the email address, asking for a
//! code again, resetting a forgotten password with an emailed code, and
//! changing the password with the current one.
//!
//! Answers never tell whether an account exists: a resend or reset for an
//! unknown (or already confirmed) account answers like one that sent an
//! email, and a code for an unknown account is refused like a wrong code.
//! Confirming takes the account's password too (refused like a wrong
//! login, under Login's budget), so the recipient of a mail for an account
//! someone else made in their name cannot confirm it.
//! Emails are throttled per typed account and per client address, codes
//! presented per client address, and a code burns after a few wrong tries
//! ([`crate::codes`]). Changing or resetting a password ends the account's
//! other sessions in the same transaction that stores the new hash.

use chrono::Utc;
use interlock_common::context::AuthenticatedUser;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::codes::{self, Check, Code, Purpose};
use crate::domain::{AccountRef, EmailCode, NewPassword, Password};
use crate::error::AuthError;
use crate::mailer::{Kind, Outgoing};
use crate::password::Lane;
use crate::service::AuthState;
use crate::store::{self, Credential};
use crate::throttle::{self, AccountKey, Attempt};

/// Confirms the address of `account` with `code`.
#[tracing::instrument(skip_all)]
pub async fn confirm_email(
    s: &AuthState,
    account: &AccountRef,
    code: &EmailCode,
    password: &Password,
    address: &str,
) -> Result<Uuid, AuthError> {
    code_check_allowed(s, address).await?;
    // The password first: whoever received the mail of an account made in
    // their name cannot confirm it (it would then be theirs, with a
    // password someone else chose). An unknown account is checked against
    // a dummy hash and refused the same way.
    let found = active(s, account).await?;
    let key = found.as_ref().map_or_else(
        || AccountKey::unknown(account.as_str()),
        |c| AccountKey::User(c.user_id),
    );
    if !password_matches(s, found.as_ref(), &key, password, address).await? {
        tracing::info!("email confirmation refused: credentials");
        return Err(AuthError::InvalidCredentials);
    }
    let Some(user) = found.filter(|u| !u.email_verified()) else {
        return Err(AuthError::InvalidCode);
    };
    let mut tx = s.pool.begin().await?;
    let max = s.accounts.max_code_attempts;
    let check = codes::consume(
        &mut tx,
        &s.codes,
        user.user_id,
        Purpose::VerifyEmail,
        code.expose(),
        max,
    )
    .await?;
    if check == Check::Valid {
        store::confirm_email(&mut tx, user.user_id).await?;
    }
    tx.commit().await?;
    if check != Check::Valid {
        tracing::info!(user_id = %user.user_id, "email confirmation refused");
        return Err(AuthError::InvalidCode);
    }
    tracing::info!(user_id = %user.user_id, "email address confirmed");
    Ok(user.user_id)
}

/// Emails a new confirmation code to `account` if it awaits one.
#[tracing::instrument(skip_all)]
pub async fn resend_verification(
    s: &AuthState,
    account: &AccountRef,
    address: &str,
) -> Result<(), AuthError> {
    email_allowed(s, account, address).await?;
    if let Some(user) = active(s, account).await?.filter(|u| !u.email_verified()) {
        send_code(s, &user, Kind::VerifyEmail).await?;
    }
    Ok(())
}

/// Emails a password-reset code to `account` if it exists.
#[tracing::instrument(skip_all)]
pub async fn request_password_reset(
    s: &AuthState,
    account: &AccountRef,
    address: &str,
) -> Result<(), AuthError> {
    email_allowed(s, account, address).await?;
    if let Some(user) = active(s, account).await? {
        send_code(s, &user, Kind::ResetPassword).await?;
    }
    Ok(())
}

/// Sets `new_password` with a reset `code`; ends every session. Returns
/// how many ended.
#[tracing::instrument(skip_all)]
pub async fn reset_password(
    s: &AuthState,
    account: &AccountRef,
    code: &EmailCode,
    new_password: &NewPassword,
    address: &str,
) -> Result<u64, AuthError> {
    code_check_allowed(s, address).await?;
    let Some(user) = active(s, account).await? else {
        return Err(AuthError::InvalidCode);
    };
    let max = s.accounts.max_code_attempts;
    // bcrypt runs only for a right code; the code is used up below, in the
    // transaction that stores the new hash.
    let check = codes::check(
        &s.pool,
        &s.codes,
        user.user_id,
        Purpose::ResetPassword,
        code.expose(),
        max,
    )
    .await?;
    if check != Check::Valid {
        tracing::info!(user_id = %user.user_id, "password reset refused");
        return Err(AuthError::InvalidCode);
    }
    let hash = s.hasher.hash(&new_password.0).await?;
    let mut tx = s.pool.begin().await?;
    let check = codes::consume(
        &mut tx,
        &s.codes,
        user.user_id,
        Purpose::ResetPassword,
        code.expose(),
        max,
    )
    .await?;
    if check != Check::Valid {
        // Used meanwhile by a concurrent reset with the same code.
        tx.commit().await?;
        return Err(AuthError::InvalidCode);
    }
    let ended =
        store::set_password(&mut tx, user.user_id, &hash, None, "password reset", true).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.user_id, sessions_ended = ended, "password reset");
    Ok(ended)
}

/// Changes the caller's password; ends every other session of the account.
#[tracing::instrument(skip_all)]
pub async fn change_password(
    s: &AuthState,
    user: &AuthenticatedUser,
    current: &Password,
    new_password: &NewPassword,
    address: &str,
) -> Result<u64, AuthError> {
    let Some(account) = store::find_by_id(&s.pool, user.user_id)
        .await?
        .filter(Credential::is_active)
    else {
        return Err(AuthError::InvalidCredentials);
    };
    let key = AccountKey::User(account.user_id);
    // A stolen access token must not become a way to guess the password
    // faster than Login allows: the same per-account budget.
    if !password_matches(s, Some(&account), &key, current, address).await? {
        tracing::info!(user_id = %account.user_id, "password change refused");
        return Err(AuthError::WrongCurrentPassword);
    }
    if current.0.expose_secret() == new_password.0.expose_secret() {
        return Err(AuthError::SamePassword);
    }
    let hash = s.hasher.hash(&new_password.0).await?;
    let mut tx = s.pool.begin().await?;
    let ended = store::set_password(
        &mut tx,
        account.user_id,
        &hash,
        Some(user.session_id),
        "password changed",
        false,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %account.user_id, sessions_ended = ended, "password changed");
    Ok(ended)
}

/// The active account `account` names, if any.
/// Whether `presented` is the password of `found` (checked against a
/// dummy hash when there is no account, so it takes as long), within
/// Login's budgets for `key` and `address`: a failure counts like a failed
/// login, a success clears the account's failures.
async fn password_matches(
    s: &AuthState,
    found: Option<&Credential>,
    key: &AccountKey,
    presented: &Password,
    address: &str,
) -> Result<bool, AuthError> {
    let reservation =
        match throttle::reserve_login(&s.pool, &s.throttle, key, address, Utc::now()).await? {
            Attempt::Reserved(r) => r,
            Attempt::Throttled { retry_after } => {
                return Err(AuthError::Throttled { retry_after });
            }
        };
    let hash = found.map(|c| c.password_hash.as_str());
    let verified = match s
        .hasher
        .verify(Lane::Login, presented.0.expose_secret(), hash)
        .await
    {
        Ok(v) => v && found.is_some(),
        Err(busy) => {
            // No guess was checked: the attempt does not count.
            throttle::release(&s.pool, reservation).await?;
            return Err(busy.into());
        }
    };
    if verified {
        throttle::login_succeeded(&s.pool, reservation, key).await?;
    }
    Ok(verified)
}

async fn active(s: &AuthState, account: &AccountRef) -> Result<Option<Credential>, AuthError> {
    Ok(store::find_by_login_or_email(&s.pool, account.as_str())
        .await?
        .filter(Credential::is_active))
}

/// A new code of `kind` for `user`, stored (replacing the last) and queued
/// for delivery.
async fn send_code(s: &AuthState, user: &Credential, kind: Kind) -> Result<(), AuthError> {
    let mailer = s.mailer.as_ref().ok_or(AuthError::EmailNotConfigured)?;
    let (purpose, ttl) = match kind {
        Kind::VerifyEmail => (Purpose::VerifyEmail, s.accounts.verification_code_ttl_secs),
        Kind::ResetPassword => (Purpose::ResetPassword, s.accounts.reset_code_ttl_secs),
    };
    let code = Code::random();
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    let hash = s.codes.hash(purpose, user.user_id, code.expose());
    let mut conn = s.pool.acquire().await?;
    codes::replace(&mut conn, user.user_id, purpose, &hash, expires_at).await?;
    drop(conn);
    mailer.send(Outgoing {
        kind,
        user_id: user.user_id,
        to: user.email.clone(),
        first_name: user.first_name.clone(),
        code,
        expires_at,
    });
    Ok(())
}

async fn email_allowed(
    s: &AuthState,
    account: &AccountRef,
    address: &str,
) -> Result<(), AuthError> {
    if s.mailer.is_none() {
        return Err(AuthError::EmailNotConfigured);
    }
    match throttle::reserve_email(&s.pool, &s.throttle, account.as_str(), address, Utc::now())
        .await?
    {
        Attempt::Reserved(_) => Ok(()),
        Attempt::Throttled { retry_after } => {
            tracing::warn!("email request throttled");
            Err(AuthError::TooManyEmails { retry_after })
        }
    }
}

async fn code_check_allowed(s: &AuthState, address: &str) -> Result<(), AuthError> {
    match throttle::reserve_code_check(&s.pool, &s.throttle, address, Utc::now()).await? {
        Attempt::Reserved(_) => Ok(()),
        Attempt::Throttled { retry_after } => {
            tracing::warn!("code check throttled");
            Err(AuthError::TooManyCodeChecks { retry_after })
        }
    }
}

/// The first confirmation code of a new account: what registration stores
/// with the activation and then emails.
pub struct FirstCode {
    pub code: Code,
    pub hash: Vec<u8>,
    pub expires_at: chrono::DateTime<Utc>,
}

impl FirstCode {
    pub fn new(s: &AuthState, user_id: Uuid) -> Self {
        let code = Code::random();
        let hash = s.codes.hash(Purpose::VerifyEmail, user_id, code.expose());
        let expires_at =
            Utc::now() + chrono::Duration::seconds(s.accounts.verification_code_ttl_secs);
        Self {
            code,
            hash,
            expires_at,
        }
    }
}
