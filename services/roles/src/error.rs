//! roles' failures and their one mapping to `tonic::Status`.
//!
//! Handlers and the operations they call return [`RolesError`]; only the
//! `From<RolesError> for Status` below turns it into a status, so a code or
//! message is decided here and nowhere else. Failures every service shares
//! (bad input, the database) are the wrapped [`ApiError`], mapped by its own
//! conversion, which keeps SQL and internal details out of the message.

use interlock_common::ApiError;
use tonic::Status;
use uuid::Uuid;

/// Why a roles call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolesError {
    /// The caller of the admin API is authenticated but does not hold
    /// `admin`: an ordinary user trying Grant, Revoke or List, or an admin
    /// whose role was revoked while their token is still valid.
    #[error("the admin role is required")]
    AdminRequired,
    /// roles has no record of the user: the id was never registered, its
    /// registration has not reached AssignDefaultRoles yet, or RemoveUser
    /// (a compensation) already forgot it.
    #[error("user {0} not found")]
    UnknownUser(Uuid),
    /// Revoke of `admin` from the only user holding it: the system would be
    /// left without anyone able to grant roles.
    #[error("cannot revoke the last admin")]
    LastAdminRevoke,
    /// RemoveUser of the only admin (a registration compensation or an
    /// operator mistake): the same guard as [`RolesError::LastAdminRevoke`].
    #[error("cannot remove the last admin")]
    LastAdminRemove,
    /// `bootstrap-admin` when someone already holds `admin`: the first
    /// admin exists, and further ones are granted through the admin API.
    #[error("an admin already exists; use RolesAdmin/Grant instead")]
    AdminExists,
    /// `bootstrap-admin` named a user roles does not know: a typo, or the
    /// user has not finished registering.
    #[error("user {0} is not registered")]
    NotRegistered(Uuid),
    /// A failure every service shares: a bad request field, or the database
    /// (lost connection, pool exhausted, a bug in a query).
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for RolesError {
    fn from(e: sqlx::Error) -> Self {
        RolesError::Api(ApiError::Database(e))
    }
}

impl From<RolesError> for Status {
    fn from(err: RolesError) -> Self {
        match err {
            RolesError::AdminRequired => Status::permission_denied(err.to_string()),
            RolesError::UnknownUser(_) | RolesError::NotRegistered(_) => {
                Status::not_found(err.to_string())
            }
            RolesError::LastAdminRevoke | RolesError::LastAdminRemove | RolesError::AdminExists => {
                Status::failed_precondition(err.to_string())
            }
            RolesError::Api(e) => e.into(),
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
    fn every_variant() -> Vec<(RolesError, Code, &'static str)> {
        let id = Uuid::nil();
        let rows = vec![
            (
                RolesError::AdminRequired,
                Code::PermissionDenied,
                "the admin role is required",
            ),
            (
                RolesError::UnknownUser(id),
                Code::NotFound,
                "user 00000000-0000-0000-0000-000000000000 not found",
            ),
            (
                RolesError::LastAdminRevoke,
                Code::FailedPrecondition,
                "cannot revoke the last admin",
            ),
            (
                RolesError::LastAdminRemove,
                Code::FailedPrecondition,
                "cannot remove the last admin",
            ),
            (
                RolesError::AdminExists,
                Code::FailedPrecondition,
                "an admin already exists; use RolesAdmin/Grant instead",
            ),
            (
                RolesError::NotRegistered(id),
                Code::NotFound,
                "user 00000000-0000-0000-0000-000000000000 is not registered",
            ),
            (
                RolesError::Api(ApiError::invalid("role", "is required")),
                Code::InvalidArgument,
                "role: is required",
            ),
        ];
        for (e, _, _) in &rows {
            match e {
                RolesError::AdminRequired
                | RolesError::UnknownUser(_)
                | RolesError::LastAdminRevoke
                | RolesError::LastAdminRemove
                | RolesError::AdminExists
                | RolesError::NotRegistered(_)
                | RolesError::Api(_) => {}
            }
        }
        rows
    }

    /// Every variant lands on its documented code and message.
    #[test]
    fn every_variant_maps_to_its_code_and_message() {
        interlock_testkit::assert_maps_to_status(every_variant());
    }

    /// A database failure keeps its SQL to the log: the client sees a
    /// generic message, and a lost connection says to retry.
    #[test]
    fn database_errors_do_not_leak_sql() {
        let status = Status::from(RolesError::from(sqlx::Error::Protocol(
            "SELECT user_id FROM role_assignments WHERE role = 'admin'".into(),
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        let down = Status::from(RolesError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(down.code(), Code::Unavailable);
        assert_eq!(down.message(), "database unavailable, retry later");
    }
}
