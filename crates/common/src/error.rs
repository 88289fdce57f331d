//! [`ApiError`]: the failures every service shares, and their one mapping to
//! `tonic::Status`. Services wrap it in their own error enums for the
//! failures only they have.
//!
//! Internal details (SQL, upstream messages) are logged here and replaced by
//! a generic message, so a client never sees them.

use tonic::{Code, Status};

/// A failure that maps directly onto a gRPC status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A request field failed validation: a client bug or a bad user entry.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The named thing does not exist (or must not be revealed to exist).
    #[error("{0}")]
    NotFound(String),
    /// A unique value (login, email, id) is already taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller is known but not allowed to do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller could not be identified (token or peer certificate).
    #[error("{0}")]
    Unauthenticated(String),
    /// The system is not in a state that allows the change.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A dependency (database, another module) cannot be reached right now;
    /// retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A database failure: a bug, a broken migration or a lost connection.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Another module answered with an error this call cannot handle.
    #[error("{service} answered {code:?}")]
    Upstream {
        service: &'static str,
        code: Code,
        message: String,
    },
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// `INVALID_ARGUMENT` naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Wraps a status received from `service`.
    pub fn upstream(service: &'static str, status: Status) -> Self {
        Self::Upstream {
            service,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::InvalidArgument { field, reason } => {
                Status::invalid_argument(format!("{field}: {reason}"))
            }
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::AlreadyExists(m) => Status::already_exists(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::Database(e) => database_status(&e),
            ApiError::Upstream {
                service,
                code,
                message,
            } => {
                tracing::warn!(service, ?code, %message, "upstream call failed");
                match code {
                    Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                        Status::unavailable(format!("{service} is unavailable, retry later"))
                    }
                    _ => Status::internal("internal error"),
                }
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// SQLSTATEs that mean the database went away, not that the query was
/// wrong: connection exceptions (class 08), and the server shutting down,
/// crashed or still starting (57P01, 57P02, 57P03).
fn database_gone(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

fn database_status(err: &sqlx::Error) -> Status {
    let gone = match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| database_gone(&c)),
        _ => false,
    };
    if gone {
        tracing::warn!(error = %err, "database unavailable");
        Status::unavailable("database unavailable, retry later")
    } else {
        tracing::error!(error = %err, "database error");
        Status::internal("internal error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant lands on its documented code, and the field is named.
    #[test]
    fn api_errors_map_to_their_grpc_codes() {
        let cases = [
            (
                ApiError::invalid("email", "must contain '@'"),
                Code::InvalidArgument,
            ),
            (ApiError::NotFound("user not found".into()), Code::NotFound),
            (
                ApiError::AlreadyExists("login taken".into()),
                Code::AlreadyExists,
            ),
            (
                ApiError::PermissionDenied("no".into()),
                Code::PermissionDenied,
            ),
            (
                ApiError::Unauthenticated("no token".into()),
                Code::Unauthenticated,
            ),
            (
                ApiError::FailedPrecondition("last admin".into()),
                Code::FailedPrecondition,
            ),
            (ApiError::Unavailable("down".into()), Code::Unavailable),
            (ApiError::Internal("boom".into()), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
        let status = Status::from(ApiError::invalid("email", "must contain '@'"));
        assert_eq!(status.message(), "email: must contain '@'");
    }

    /// Connection loss and a server shutting down, crashed or starting are
    /// UNAVAILABLE (retry later); a query the database refused is not.
    #[test]
    fn a_database_that_went_away_is_unavailable_and_a_bad_query_is_not() {
        for gone in ["08006", "08001", "57P01", "57P02", "57P03"] {
            assert!(database_gone(gone), "{gone}");
        }
        for wrong in ["23505", "42P01", "40P01", "22P02"] {
            assert!(!database_gone(wrong), "{wrong}");
        }
    }

    /// SQL text and upstream messages are never shown to the client.
    #[test]
    fn internal_details_do_not_reach_the_client() {
        let db = Status::from(ApiError::Database(sqlx::Error::Protocol(
            "SELECT secret FROM credentials".into(),
        )));
        assert_eq!(db.code(), Code::Internal);
        assert!(!db.message().contains("SELECT"));

        let upstream = Status::from(ApiError::upstream(
            "roles",
            Status::internal("relation role_assignments does not exist"),
        ));
        assert_eq!(upstream.code(), Code::Internal);
        assert!(!upstream.message().contains("relation"));

        let down = Status::from(ApiError::upstream(
            "roles",
            Status::unavailable("conn refused"),
        ));
        assert_eq!(down.code(), Code::Unavailable);
        assert_eq!(down.message(), "roles is unavailable, retry later");
        assert_eq!(
            Status::from(ApiError::Database(sqlx::Error::PoolTimedOut)).code(),
            Code::Unavailable
        );
    }
}
