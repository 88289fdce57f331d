//! Integration tests of the four services against a real PostgreSQL (a fresh
//! database per service per test). Run through `scripts/test.sh`.

mod auth;
mod database;
mod jwt;
mod notifications;
mod peer;
mod roles;
mod sender;
mod users;

use tonic::{Code, Status};

/// Asserts a call failed with `code` and a message containing `text`.
#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, text: &str) {
    match result {
        Ok(v) => panic!("expected {code:?} ({text}), got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(
                s.message().contains(text),
                "{:?} does not contain {text:?}",
                s.message()
            );
        }
    }
}
