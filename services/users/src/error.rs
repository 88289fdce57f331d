//! users' failures and their one mapping to `tonic::Status`.
//!
//! Handlers and the operations they call return [`UsersError`]; only the
//! `From<UsersError> for Status` below turns it into a status, so a code or
//! message is decided here and nowhere else. Failures every service shares
//! (bad input, the database, the roles module) are the wrapped
//! [`ApiError`], mapped by its own conversion, which keeps SQL and upstream
//! details out of the message.

use interlock_common::ApiError;
use tonic::Status;
use uuid::Uuid;

/// Why a users call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// No profile has this id: it was never created, a registration
    /// compensation deleted it, or the caller's token outlived its account.
    #[error("user {0} not found")]
    NotFound(Uuid),
    /// CreateUser was retried under an existing id with different data: a
    /// bug in the caller (registration reuses an id only for the same
    /// request), never an ordinary retry.
    #[error("user {0} exists with other data")]
    ConflictingProfile(Uuid),
    /// CreateUser found its id taken, but the profile was gone before it
    /// could be compared: a DeleteUser (compensation) ran in between. A
    /// retry decides cleanly.
    #[error("profile changed concurrently, retry")]
    ChangedConcurrently,
    /// A failure every service shares: a bad request field, the database
    /// (lost connection, a bug in a query) or the roles module.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for UsersError {
    fn from(e: sqlx::Error) -> Self {
        UsersError::Api(ApiError::Database(e))
    }
}

impl From<UsersError> for Status {
    fn from(err: UsersError) -> Self {
        match err {
            UsersError::NotFound(_) => Status::not_found(err.to_string()),
            UsersError::ConflictingProfile(_) => Status::already_exists(err.to_string()),
            UsersError::ChangedConcurrently => Status::aborted(err.to_string()),
            UsersError::Api(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    /// One example of every variant with the code and message a client
    /// sees. The match makes a new variant a compile error here until it is
    /// given a row.
    fn every_variant() -> Vec<(UsersError, Code, &'static str)> {
        let id = Uuid::nil();
        let rows = vec![
            (
                UsersError::NotFound(id),
                Code::NotFound,
                "user 00000000-0000-0000-0000-000000000000 not found",
            ),
            (
                UsersError::ConflictingProfile(id),
                Code::AlreadyExists,
                "user 00000000-0000-0000-0000-000000000000 exists with other data",
            ),
            (
                UsersError::ChangedConcurrently,
                Code::Aborted,
                "profile changed concurrently, retry",
            ),
            (
                UsersError::Api(ApiError::invalid("update", "set at least one field")),
                Code::InvalidArgument,
                "update: set at least one field",
            ),
        ];
        for (e, _, _) in &rows {
            match e {
                UsersError::NotFound(_)
                | UsersError::ConflictingProfile(_)
                | UsersError::ChangedConcurrently
                | UsersError::Api(_) => {}
            }
        }
        rows
    }

    /// Every variant lands on its documented code and message.
    #[test]
    fn every_variant_maps_to_its_code_and_message() {
        interlock_testkit::assert_maps_to_status(every_variant());
    }

    /// Neither SQL nor what roles said reaches the client; a roles outage
    /// says to retry.
    #[test]
    fn database_and_upstream_details_do_not_leak() {
        let db = Status::from(UsersError::from(sqlx::Error::Protocol(
            "SELECT * FROM profiles WHERE id = $1".into(),
        )));
        assert_eq!(db.code(), Code::Internal);
        assert_eq!(db.message(), "internal error");
        let roles = Status::from(UsersError::Api(ApiError::upstream(
            "roles",
            Status::internal("relation role_assignments does not exist"),
        )));
        assert_eq!(roles.code(), Code::Internal);
        assert_eq!(roles.message(), "internal error");
        let down = Status::from(UsersError::Api(ApiError::upstream(
            "roles",
            Status::unavailable("connection refused"),
        )));
        assert_eq!(down.code(), Code::Unavailable);
        assert_eq!(down.message(), "roles is unavailable, retry later");
    }
}
