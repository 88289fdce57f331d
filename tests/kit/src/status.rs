//! The one way both suites check a refusal: the code and the reason.

use tonic::{Code, Status};

/// Asserts a call failed with `code` and a message containing `text`
/// (`""` when the reason is not the point), and returns the status.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    text: &str,
) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?} ({text}), got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(
                s.message().contains(text),
                "{:?} does not contain {text:?}",
                s.message()
            );
            s
        }
    }
}

/// Asserts each error of a service's error enum becomes a status with
/// exactly this code and message: the table every service tests its
/// mapping against.
#[track_caller]
pub fn assert_maps_to_status<E, M>(cases: impl IntoIterator<Item = (E, Code, M)>)
where
    Status: From<E>,
    M: AsRef<str>,
{
    for (err, code, message) in cases {
        let status = Status::from(err);
        let message = message.as_ref();
        assert_eq!(status.code(), code, "{message}");
        assert_eq!(status.message(), message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status is handed back when both code and reason match.
    #[test]
    fn matching_code_and_reason_pass() {
        let s = assert_status(
            Err::<(), _>(Status::not_found("user not found")),
            Code::NotFound,
            "not found",
        );
        assert_eq!(s.message(), "user not found");
    }

    /// The right code for the wrong reason is a failure.
    #[test]
    #[should_panic(expected = "does not contain")]
    fn the_wrong_reason_fails() {
        assert_status(
            Err::<(), _>(Status::unauthenticated("token expired")),
            Code::Unauthenticated,
            "revoked",
        );
    }

    /// A mapping table passes only when code and message both match.
    #[test]
    #[should_panic(expected = "left: \"user gone\"")]
    fn a_mapping_with_another_message_fails() {
        assert_maps_to_status([(
            Status::not_found("user gone"),
            Code::NotFound,
            "user not found",
        )]);
    }

    /// A success where a refusal was expected is a failure.
    #[test]
    #[should_panic(expected = "got Ok(1)")]
    fn success_fails() {
        assert_status(Ok::<_, Status>(1), Code::NotFound, "");
    }
}
