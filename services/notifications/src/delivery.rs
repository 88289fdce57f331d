//! What a push delivery is, decided once for the whole system:
//!
//! - [`Status`]: the status of one device's delivery, mapped to the
//!   `delivery_status` Postgres enum and to the wire's `DeliveryStatus`;
//! - [`Status::is_final`]: which statuses end a device's part in a
//!   notification (it is never pushed again for it);
//! - [`token_hint`]: the part of an FCM token that may stand for it in logs
//!   and delivery reports;
//! - [`Outcome`]: one device's outcome as a sender reports it;
//! - [`Summary`]: what a processed notification's deliveries came to, stored
//!   as its outcome.
//!
//! Nothing else decides these. The claim and completion queries
//! ([`crate::store::to_push`]) are handed [`Status::finals`] rather than
//! naming statuses; the sender only classifies FCM's answers into statuses,
//! and notifications decides from them when a notification is complete
//! (ReportDeliveries). This module does no I/O.

use std::fmt;

use interlock_common::{ApiError, validate};
use interlock_proto::notifications::v1 as pb;
use uuid::Uuid;

/// The status of one device's delivery of one notification.
///
/// Stored as the Postgres enum `delivery_status` (migration 0003, which
/// says why an enum): a value outside this type can neither be written nor
/// read back as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "delivery_status", rename_all = "snake_case")]
pub enum Status {
    /// FCM accepted the message.
    Delivered,
    /// FCM says the token is no longer valid; the device is removed.
    Unregistered,
    /// FCM refused the message for good (INVALID_ARGUMENT,
    /// SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR).
    FailedPermanent,
    /// Retries ran out for now (QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, FCM
    /// authentication); a later claim tries again.
    FailedTransient,
}

impl Status {
    /// Every status, in the order of the Postgres enum.
    pub const ALL: [Status; 4] = [
        Status::Delivered,
        Status::Unregistered,
        Status::FailedPermanent,
        Status::FailedTransient,
    ];

    /// Whether a device with this status is done with the notification:
    /// never offered to a sender again for it, and no longer keeping it
    /// from completion. The one place this is decided; the match has no
    /// wildcard so a new status must be placed here.
    pub const fn is_final(self) -> bool {
        match self {
            Status::Delivered | Status::Unregistered | Status::FailedPermanent => true,
            Status::FailedTransient => false,
        }
    }

    /// The final statuses, as the queries bind them (`delivery_status[]`).
    pub fn finals() -> Vec<Status> {
        Self::ALL.into_iter().filter(|s| s.is_final()).collect()
    }

    /// The status a sender sent; `None` for UNSPECIFIED or an unknown
    /// value.
    pub fn from_proto(value: i32) -> Option<Status> {
        match pb::DeliveryStatus::try_from(value).ok()? {
            pb::DeliveryStatus::Unspecified => None,
            pb::DeliveryStatus::Delivered => Some(Status::Delivered),
            pb::DeliveryStatus::Unregistered => Some(Status::Unregistered),
            pb::DeliveryStatus::FailedPermanent => Some(Status::FailedPermanent),
            pb::DeliveryStatus::FailedTransient => Some(Status::FailedTransient),
        }
    }

    /// The wire value (`DeliveryStatus`).
    pub fn to_proto(self) -> i32 {
        let wire = match self {
            Status::Delivered => pb::DeliveryStatus::Delivered,
            Status::Unregistered => pb::DeliveryStatus::Unregistered,
            Status::FailedPermanent => pb::DeliveryStatus::FailedPermanent,
            Status::FailedTransient => pb::DeliveryStatus::FailedTransient,
        };
        wire as i32
    }
}

/// How many trailing characters of a token stand for it.
pub const TOKEN_HINT_CHARS: usize = 6;

/// The last [`TOKEN_HINT_CHARS`] characters of an FCM token: enough to tell
/// a user's devices apart in logs and delivery reports, far too little to
/// send with. The only part of a token that is stored beside an outcome or
/// handed to a sender for its logs.
pub fn token_hint(token: &str) -> &str {
    let start = token
        .char_indices()
        .rev()
        .nth(TOKEN_HINT_CHARS - 1)
        .map_or(0, |(i, _)| i);
    &token[start..]
}

/// One device's outcome, as a sender reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub notification_id: Uuid,
    pub device_id: Uuid,
    pub status: Status,
    /// FCM's errorCode (or HTTP status) of a failure; empty when delivered.
    pub error_code: String,
    /// Attempts in this claim; added to those of earlier claims.
    pub attempts: i32,
}

impl Outcome {
    /// The longest error code kept.
    pub const MAX_ERROR_CODE: usize = 64;
    /// More attempts than this in one claim are counted as this many.
    pub const MAX_ATTEMPTS: u32 = 1000;

    /// Parses `results[index]` of a report; a bad field is named with its
    /// index.
    pub fn parse(index: usize, r: &pb::DeliveryResult) -> Result<Outcome, ApiError> {
        let field = |name: &str| format!("results[{index}].{name}");
        Ok(Outcome {
            notification_id: validate::uuid(&field("notification_id"), &r.notification_id)?,
            device_id: validate::uuid(&field("device_id"), &r.device_id)?,
            status: Status::from_proto(r.status).ok_or_else(|| {
                ApiError::invalid(
                    field("status"),
                    "must be a DELIVERY_STATUS other than UNSPECIFIED",
                )
            })?,
            error_code: validate::text(
                &field("error_code"),
                &r.error_code,
                0,
                Self::MAX_ERROR_CODE,
            )?,
            attempts: i32::try_from(r.attempts.min(Self::MAX_ATTEMPTS)).unwrap_or(i32::MAX),
        })
    }
}

/// What a notification's deliveries came to: stored, as text, as its
/// outcome when it is processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Devices that got it.
    pub delivered: usize,
    /// Devices with a recorded delivery, whatever its status.
    pub devices: usize,
}

impl Summary {
    /// Counts one device's delivery.
    pub fn add(&mut self, status: Status) {
        self.devices += 1;
        if status == Status::Delivered {
            self.delivered += 1;
        }
    }

    pub fn of(statuses: impl IntoIterator<Item = Status>) -> Summary {
        let mut summary = Summary::default();
        statuses.into_iter().for_each(|s| summary.add(s));
        summary
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.devices == 0 {
            f.write_str("no registered devices")
        } else {
            write!(
                f,
                "delivered to {} of {} devices",
                self.delivered, self.devices
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a transient failure leaves a device to push again.
    #[test]
    fn only_transient_failures_are_not_final() {
        assert_eq!(
            Status::finals(),
            [
                Status::Delivered,
                Status::Unregistered,
                Status::FailedPermanent
            ]
        );
        assert!(!Status::FailedTransient.is_final());
    }

    /// Every status survives the wire both ways; UNSPECIFIED and unknown
    /// values are no status.
    #[test]
    fn statuses_round_trip_through_the_wire_and_unspecified_is_none() {
        for s in Status::ALL {
            assert_eq!(Status::from_proto(s.to_proto()), Some(s));
        }
        assert_eq!(
            Status::from_proto(pb::DeliveryStatus::Unspecified as i32),
            None
        );
        assert_eq!(Status::from_proto(99), None);
    }

    /// The hint is the last 6 characters, or the whole of a shorter token,
    /// and never splits a character.
    #[test]
    fn token_hint_is_the_last_six_characters() {
        assert_eq!(token_hint("abcdefghij:123456"), "123456");
        assert_eq!(token_hint("tok"), "tok");
        assert_eq!(token_hint(""), "");
        assert_eq!(token_hint("xxéééééé"), "éééééé");
    }

    /// The stored outcome counts delivered devices among those tried, and
    /// says so when there were none.
    #[test]
    fn summary_reads_as_delivered_of_devices_or_no_devices() {
        assert_eq!(Summary::of([]).to_string(), "no registered devices");
        let s = Summary::of([
            Status::Delivered,
            Status::Unregistered,
            Status::FailedPermanent,
            Status::Delivered,
        ]);
        assert_eq!(s.to_string(), "delivered to 2 of 4 devices");
    }

    /// A reported outcome names its bad field with the result's index.
    #[test]
    fn outcome_parse_names_the_bad_field_by_index() {
        let ok = pb::DeliveryResult {
            notification_id: Uuid::nil().to_string(),
            device_id: Uuid::max().to_string(),
            status: Status::FailedTransient.to_proto(),
            error_code: "UNAVAILABLE".into(),
            attempts: 5000,
        };
        let o = Outcome::parse(0, &ok).expect("valid");
        assert_eq!(o.status, Status::FailedTransient);
        assert_eq!(o.attempts, 1000, "attempts are capped");

        let unspecified = pb::DeliveryResult { status: 0, ..ok };
        let err = Outcome::parse(3, &unspecified).expect_err("unspecified");
        assert!(err.to_string().starts_with("results[3].status: "), "{err}");
    }
}
