//! auth's failures and their one mapping to `tonic::Status`.
//!
//! Handlers and the operations they call ([`crate::register`],
//! [`crate::login`]) return [`AuthError`]; only the `From<AuthError> for
//! Status` below turns it into a status, so a code or message is decided
//! here and nowhere else. Failures every service shares (bad input, the
//! database, users and roles) are the wrapped [`ApiError`], mapped by its own
//! conversion, which keeps SQL and upstream details out of the message.
//! Nothing here ever carries a password, a token or a key.

use std::time::Duration;

use interlock_common::ApiError;
use tonic::Status;

/// Why an auth call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Login with an unknown login or email, a wrong password, or an
    /// account whose registration has not finished. Which one is never
    /// said, so the answer does not reveal whether an account exists.
    #[error("invalid login or password")]
    InvalidCredentials,
    /// Too many failed logins for the account or the client address within
    /// the throttle window: a guessing attack, or a user who forgot their
    /// password.
    #[error("too many failed logins, retry in {} s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    /// Too many registrations from the client address within the window.
    #[error("too many registrations, retry in {} s", .retry_after.as_secs().max(1))]
    TooManyRegistrations { retry_after: Duration },
    /// Every bcrypt slot stayed taken for the whole queue timeout: more
    /// logins and registrations at once than the CPU can hash.
    #[error("server busy, retry later")]
    Busy,
    /// Refresh with a token that auth never issued, that expired, or whose
    /// session ended (Logout, or a reuse that revoked it).
    #[error("refresh token is not valid")]
    InvalidRefreshToken,
    /// Refresh with a token that was already used once: it was stolen, or a
    /// client retried with an old one. The whole session is revoked.
    #[error("refresh token was already used; the session has been revoked")]
    RefreshTokenReuse,
    /// No key may sign yet: auth started on an empty database and its first
    /// key maintenance has not finished.
    #[error("no signing key yet, retry later")]
    NoSigningKey,
    /// Signing an access token failed: a corrupt key, a bug.
    #[error("signing an access token: {0}")]
    Signing(#[source] jsonwebtoken::errors::Error),
    /// Register with a login another account holds (or that this request
    /// already registered).
    #[error("login is already registered")]
    LoginTaken,
    /// Register with an email another account holds.
    #[error("email is already registered")]
    EmailTaken,
    /// Register lost a race: another registration claimed the login or
    /// email between the check and the insert.
    #[error("login or email is already registered")]
    LoginOrEmailTaken,
    /// Register retried while the first attempt at the same registration is
    /// still running (it holds the claim).
    #[error("this registration is in progress, retry later")]
    RegistrationInProgress,
    /// Register retried just as the half-done first attempt was undone
    /// (compensated): a retry now starts afresh.
    #[error("this registration was just undone, retry")]
    RegistrationUndone,
    /// This registration's claim expired while users or roles were slow,
    /// and another request took it over; that one finishes or undoes it.
    #[error("registration was interrupted, retry later")]
    RegistrationInterrupted,
    /// Login with the right password for an account whose email address is
    /// not confirmed yet (and the server requires confirmation).
    #[error(
        "email address is not confirmed: enter the code sent to it (ConfirmEmail) or ask for a new one (ResendVerification)"
    )]
    EmailNotConfirmed,
    /// ConfirmEmail or ResetPassword with a code that is wrong, used,
    /// expired or burnt by too many tries, or for an account that does not
    /// exist or has nothing to confirm: which one is never said.
    #[error("code: is not valid (wrong, used or expired); ask for a new one")]
    InvalidCode,
    /// Too many emails asked for the same typed account or from the same
    /// client address within the window.
    #[error("too many emails asked for, retry in {} s", .retry_after.as_secs().max(1))]
    TooManyEmails { retry_after: Duration },
    /// Too many codes presented from the same client address.
    #[error("too many codes tried, retry in {} s", .retry_after.as_secs().max(1))]
    TooManyCodeChecks { retry_after: Duration },
    /// A resend or reset on a server without an `[email]` section.
    #[error("this server does not send email")]
    EmailNotConfigured,
    /// ChangePassword with a wrong current password.
    #[error("current_password: is not the account's password")]
    WrongCurrentPassword,
    /// ChangePassword to the password the account already has.
    #[error("new_password: must differ from the current password")]
    SamePassword,
    /// A failure every service shares: a bad request field, the database,
    /// users or roles failing during registration, or a bug.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Api(ApiError::Database(e))
    }
}

impl From<crate::password::Busy> for AuthError {
    fn from(_: crate::password::Busy) -> Self {
        AuthError::Busy
    }
}

impl From<crate::password::HashError> for AuthError {
    fn from(e: crate::password::HashError) -> Self {
        match e {
            crate::password::HashError::Busy(_) => AuthError::Busy,
            other => AuthError::Api(ApiError::Internal(other.to_string())),
        }
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials
            | AuthError::InvalidRefreshToken
            | AuthError::RefreshTokenReuse => Status::unauthenticated(err.to_string()),
            AuthError::Throttled { retry_after }
            | AuthError::TooManyRegistrations { retry_after } => {
                retry_later(err.to_string(), retry_after)
            }
            AuthError::Busy => retry_later(err.to_string(), Duration::from_secs(1)),
            AuthError::NoSigningKey
            | AuthError::RegistrationInProgress
            | AuthError::RegistrationUndone
            | AuthError::RegistrationInterrupted => Status::unavailable(err.to_string()),
            AuthError::LoginTaken | AuthError::EmailTaken | AuthError::LoginOrEmailTaken => {
                Status::already_exists(err.to_string())
            }
            AuthError::EmailNotConfirmed | AuthError::EmailNotConfigured => {
                Status::failed_precondition(err.to_string())
            }
            AuthError::InvalidCode | AuthError::WrongCurrentPassword | AuthError::SamePassword => {
                Status::invalid_argument(err.to_string())
            }
            AuthError::TooManyEmails { retry_after }
            | AuthError::TooManyCodeChecks { retry_after } => {
                retry_later(err.to_string(), retry_after)
            }
            // Logged with its detail, answered generically.
            AuthError::Signing(_) => ApiError::Internal(err.to_string()).into(),
            AuthError::Api(e) => e.into(),
        }
    }
}

/// RESOURCE_EXHAUSTED with the wait in seconds in `retry-after` metadata.
fn retry_later(message: String, retry_after: Duration) -> Status {
    let mut status = Status::resource_exhausted(message);
    let secs = retry_after.as_secs().max(1).to_string();
    if let Ok(v) = secs.parse() {
        status.metadata_mut().insert("retry-after", v);
    }
    status
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn signing_failure() -> jsonwebtoken::errors::Error {
        jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey.into()
    }

    /// One example of every variant with the code and message a client
    /// sees. The match makes a new variant a compile error here until it is
    /// given a row.
    fn every_variant() -> Vec<(AuthError, Code, &'static str)> {
        let secs = Duration::from_secs;
        let rows = vec![
            (
                AuthError::InvalidCredentials,
                Code::Unauthenticated,
                "invalid login or password",
            ),
            (
                AuthError::Throttled {
                    retry_after: secs(42),
                },
                Code::ResourceExhausted,
                "too many failed logins, retry in 42 s",
            ),
            (
                AuthError::TooManyRegistrations {
                    retry_after: secs(7),
                },
                Code::ResourceExhausted,
                "too many registrations, retry in 7 s",
            ),
            (
                AuthError::Busy,
                Code::ResourceExhausted,
                "server busy, retry later",
            ),
            (
                AuthError::InvalidRefreshToken,
                Code::Unauthenticated,
                "refresh token is not valid",
            ),
            (
                AuthError::RefreshTokenReuse,
                Code::Unauthenticated,
                "refresh token was already used; the session has been revoked",
            ),
            (
                AuthError::NoSigningKey,
                Code::Unavailable,
                "no signing key yet, retry later",
            ),
            (
                AuthError::Signing(signing_failure()),
                Code::Internal,
                "internal error",
            ),
            (
                AuthError::LoginTaken,
                Code::AlreadyExists,
                "login is already registered",
            ),
            (
                AuthError::EmailTaken,
                Code::AlreadyExists,
                "email is already registered",
            ),
            (
                AuthError::LoginOrEmailTaken,
                Code::AlreadyExists,
                "login or email is already registered",
            ),
            (
                AuthError::RegistrationInProgress,
                Code::Unavailable,
                "this registration is in progress, retry later",
            ),
            (
                AuthError::RegistrationUndone,
                Code::Unavailable,
                "this registration was just undone, retry",
            ),
            (
                AuthError::RegistrationInterrupted,
                Code::Unavailable,
                "registration was interrupted, retry later",
            ),
            (
                AuthError::EmailNotConfirmed,
                Code::FailedPrecondition,
                "email address is not confirmed: enter the code sent to it (ConfirmEmail) or ask for a new one (ResendVerification)",
            ),
            (
                AuthError::InvalidCode,
                Code::InvalidArgument,
                "code: is not valid (wrong, used or expired); ask for a new one",
            ),
            (
                AuthError::TooManyEmails {
                    retry_after: secs(60),
                },
                Code::ResourceExhausted,
                "too many emails asked for, retry in 60 s",
            ),
            (
                AuthError::TooManyCodeChecks {
                    retry_after: secs(5),
                },
                Code::ResourceExhausted,
                "too many codes tried, retry in 5 s",
            ),
            (
                AuthError::EmailNotConfigured,
                Code::FailedPrecondition,
                "this server does not send email",
            ),
            (
                AuthError::WrongCurrentPassword,
                Code::InvalidArgument,
                "current_password: is not the account's password",
            ),
            (
                AuthError::SamePassword,
                Code::InvalidArgument,
                "new_password: must differ from the current password",
            ),
            (
                AuthError::Api(ApiError::invalid("login", "must start with a letter")),
                Code::InvalidArgument,
                "login: must start with a letter",
            ),
        ];
        for (e, _, _) in &rows {
            match e {
                AuthError::InvalidCredentials
                | AuthError::Throttled { .. }
                | AuthError::TooManyRegistrations { .. }
                | AuthError::Busy
                | AuthError::InvalidRefreshToken
                | AuthError::RefreshTokenReuse
                | AuthError::NoSigningKey
                | AuthError::Signing(_)
                | AuthError::LoginTaken
                | AuthError::EmailTaken
                | AuthError::LoginOrEmailTaken
                | AuthError::RegistrationInProgress
                | AuthError::RegistrationUndone
                | AuthError::RegistrationInterrupted
                | AuthError::EmailNotConfirmed
                | AuthError::InvalidCode
                | AuthError::TooManyEmails { .. }
                | AuthError::TooManyCodeChecks { .. }
                | AuthError::EmailNotConfigured
                | AuthError::WrongCurrentPassword
                | AuthError::SamePassword
                | AuthError::Api(_) => {}
            }
        }
        rows
    }

    /// Every variant lands on its documented code and message.
    #[test]
    fn every_variant_maps_to_its_code_and_message() {
        interlock_testkit::assert_maps_to_status(every_variant());
    }

    /// Throttling and a full bcrypt queue say when to come back, in the
    /// message and in `retry-after` metadata (at least one second).
    #[test]
    fn resource_exhausted_carries_a_retry_hint() {
        let hint = |e: AuthError| {
            Status::from(e)
                .metadata()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(hint(AuthError::Busy).as_deref(), Some("1"));
        let throttled = AuthError::Throttled {
            retry_after: Duration::from_secs(42),
        };
        assert_eq!(hint(throttled).as_deref(), Some("42"));
        let soon = AuthError::TooManyRegistrations {
            retry_after: Duration::from_millis(300),
        };
        assert_eq!(hint(soon).as_deref(), Some("1"));
    }

    /// Neither SQL, nor a signing key problem, nor what users or roles said
    /// reaches the client; a peer outage says to retry.
    #[test]
    fn internal_details_do_not_leak() {
        let db = Status::from(AuthError::from(sqlx::Error::Protocol(
            "SELECT password_hash FROM credentials WHERE login = 'ada'".into(),
        )));
        assert_eq!(
            (db.code(), db.message()),
            (Code::Internal, "internal error")
        );
        let signing = Status::from(AuthError::Signing(signing_failure()));
        assert!(!signing.message().contains("Ecdsa"), "{signing:?}");
        let users = Status::from(AuthError::Api(ApiError::upstream(
            "users",
            Status::internal("duplicate key value violates unique constraint"),
        )));
        assert_eq!(
            (users.code(), users.message()),
            (Code::Internal, "internal error")
        );
        let roles = Status::from(AuthError::Api(ApiError::upstream(
            "roles",
            Status::unavailable("connection refused"),
        )));
        assert_eq!(
            (roles.code(), roles.message()),
            (Code::Unavailable, "roles is unavailable, retry later")
        );
    }

    /// A hashing failure that is not a full queue is our bug, not the
    /// client's: internal, and the bcrypt detail stays in the log.
    #[test]
    fn hash_failures_are_busy_or_internal() {
        use crate::password::{Busy, HashError};
        assert!(matches!(
            AuthError::from(HashError::Busy(Busy)),
            AuthError::Busy
        ));
        let failed = Status::from(AuthError::from(HashError::Failed("invalid cost".into())));
        assert_eq!(
            (failed.code(), failed.message()),
            (Code::Internal, "internal error")
        );
    }
}
