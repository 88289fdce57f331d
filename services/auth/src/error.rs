//! auth's failures and their gRPC statuses.

use std::time::Duration;

use interlock_common::ApiError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong login or password; which one is never said.
    #[error("invalid login or password")]
    InvalidCredentials,
    /// Too many failed logins for the account or the client address.
    #[error("too many failed logins, retry in {} s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    /// Too many registrations from the client address.
    #[error("too many registrations, retry in {} s", .retry_after.as_secs().max(1))]
    TooManyRegistrations { retry_after: Duration },
    /// Every bcrypt slot stayed taken for the whole queue timeout.
    #[error("server busy, retry later")]
    Busy,
    /// The refresh token is unknown, expired, or its session has ended.
    #[error("refresh token is not valid")]
    InvalidRefreshToken,
    /// A used refresh token came back: the session is revoked.
    #[error("refresh token was already used; the session has been revoked")]
    RefreshTokenReuse,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Api(ApiError::Database(e))
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials
            | AuthError::InvalidRefreshToken
            | AuthError::RefreshTokenReuse => Status::new(Code::Unauthenticated, err.to_string()),
            AuthError::Throttled { retry_after }
            | AuthError::TooManyRegistrations { retry_after } => {
                retry_later(err.to_string(), retry_after)
            }
            AuthError::Busy => retry_later(err.to_string(), Duration::from_secs(1)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A full bcrypt queue says so and when to come back; so does the
    /// registration limit.
    #[test]
    fn busy_and_registration_limit_are_resource_exhausted_with_a_hint() {
        let busy = Status::from(AuthError::Busy);
        assert_eq!(busy.code(), Code::ResourceExhausted);
        assert_eq!(busy.message(), "server busy, retry later");
        assert_eq!(busy.metadata().get("retry-after").unwrap(), "1");
        let many = Status::from(AuthError::TooManyRegistrations {
            retry_after: Duration::from_secs(7),
        });
        assert_eq!(many.code(), Code::ResourceExhausted);
        assert_eq!(many.message(), "too many registrations, retry in 7 s");
        assert_eq!(many.metadata().get("retry-after").unwrap(), "7");
    }

    /// Throttling says when to come back, in the message and in metadata.
    #[test]
    fn throttled_carries_a_retry_hint() {
        let status = Status::from(AuthError::Throttled {
            retry_after: Duration::from_secs(42),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "too many failed logins, retry in 42 s");
        assert_eq!(status.metadata().get("retry-after").unwrap(), "42");
    }

    /// Credential failures all look the same to the client.
    #[test]
    fn credential_failures_are_unauthenticated() {
        for e in [AuthError::InvalidCredentials, AuthError::RefreshTokenReuse] {
            assert_eq!(Status::from(e).code(), Code::Unauthenticated);
        }
    }
}
