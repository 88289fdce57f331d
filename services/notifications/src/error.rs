//! notifications' one error type, [`NotificationsError`], and its one
//! mapping to `tonic::Status`. Storage and handlers return it; nothing else
//! in the service builds a `Status`.
//!
//! Failures every service shares (a bad field, the database) are the shared
//! [`ApiError`], wrapped; the variants here are the ones only notifications
//! has. Every message names what is wrong and never leaks SQL.

use interlock_common::ApiError;
use tonic::{Code, Status};
use uuid::Uuid;

/// `Result` with [`NotificationsError`].
pub type Result<T, E = NotificationsError> = std::result::Result<T, E>;

/// Why a notifications call failed. A sender's call that fails with one of
/// the lease or scope variants wrote nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationsError {
    /// The notification does not exist, or the caller is not one of its
    /// recipients: the same answer, so existence does not leak.
    #[error("notification {0} not found")]
    NotificationNotFound(Uuid),
    /// The device does not exist or is not the caller's (the same answer):
    /// already unregistered, removed as UNREGISTERED by FCM, or re-bound to
    /// another user who registered its token.
    #[error("device {0} not found")]
    DeviceNotFound(Uuid),
    /// A sender named notification ids that do not exist: a sender bug, or
    /// ids from another deployment's database.
    #[error("unknown notification ids: {}", list(.0))]
    UnknownNotifications(Vec<Uuid>),
    /// The worker holds no live lease on these notifications: never
    /// claimed, claimed by another replica, expired (a sender that stalled
    /// past its lease), released, or processed (unless the call accepts
    /// that).
    #[error("worker {worker:?} holds no live lease on notifications: {}", list(.ids))]
    LeaseNotHeld { worker: String, ids: Vec<Uuid> },
    /// `(notification, device)` pairs whose device exists but belongs to no
    /// recipient of that notification: a sender bug, refused so an outcome
    /// can never touch (or remove) another user's device.
    #[error("devices not registered to a recipient of the notification: {}", pairs(.0))]
    OutOfScope(Vec<(Uuid, Uuid)>),
    /// A bad field, a database failure, or anything else every service
    /// shares.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for NotificationsError {
    fn from(e: sqlx::Error) -> Self {
        NotificationsError::Api(ApiError::Database(e))
    }
}

impl From<NotificationsError> for Status {
    fn from(err: NotificationsError) -> Self {
        use NotificationsError as E;
        let code = match err {
            E::Api(api) => return api.into(),
            E::NotificationNotFound(_) | E::DeviceNotFound(_) | E::UnknownNotifications(_) => {
                Code::NotFound
            }
            E::LeaseNotHeld { .. } | E::OutOfScope(_) => Code::FailedPrecondition,
        };
        Status::new(code, err.to_string())
    }
}

fn list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn pairs(pairs: &[(Uuid, Uuid)]) -> String {
    pairs
        .iter()
        .map(|(n, d)| format!("device {d} (notification {n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unknown things are NOT_FOUND; a missing lease or a device outside
    /// the recipients is FAILED_PRECONDITION; each message names what is
    /// wrong.
    #[test]
    fn every_variant_maps_to_its_code_and_names_the_problem() {
        let (n, d) = (Uuid::nil(), Uuid::max());
        let cases = [
            (
                NotificationsError::NotificationNotFound(n),
                Code::NotFound,
                format!("notification {n} not found"),
            ),
            (
                NotificationsError::DeviceNotFound(d),
                Code::NotFound,
                format!("device {d} not found"),
            ),
            (
                NotificationsError::UnknownNotifications(vec![n, d]),
                Code::NotFound,
                format!("unknown notification ids: {n}, {d}"),
            ),
            (
                NotificationsError::LeaseNotHeld {
                    worker: "w2".into(),
                    ids: vec![n],
                },
                Code::FailedPrecondition,
                format!("worker \"w2\" holds no live lease on notifications: {n}"),
            ),
            (
                NotificationsError::OutOfScope(vec![(n, d)]),
                Code::FailedPrecondition,
                format!(
                    "devices not registered to a recipient of the notification: \
                     device {d} (notification {n})"
                ),
            ),
            (
                ApiError::invalid("done_ids[0]", "must be a UUID").into(),
                Code::InvalidArgument,
                "done_ids[0]: must be a UUID".to_owned(),
            ),
        ];
        interlock_testkit::assert_maps_to_status(cases);
    }

    /// A database failure keeps the shared mapping: no SQL reaches the
    /// client.
    #[test]
    fn database_errors_take_the_shared_mapping_without_sql() {
        let status = Status::from(NotificationsError::from(sqlx::Error::Protocol(
            "SELECT fcm_token FROM devices".into(),
        )));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"));
        let down = Status::from(NotificationsError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(down.code(), Code::Unavailable);
    }
}
