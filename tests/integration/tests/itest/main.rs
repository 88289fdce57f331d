//! Integration tests of the services against a real PostgreSQL (a fresh
//! database per service per test, dropped when it ends). Run through
//! `scripts/test.sh`.

mod auth;
mod database;
mod fcm;
mod jwt;
mod notifications;
mod peer;
mod roles;
mod sender;
mod users;

/// The shared kit's status assertion, for every module here.
use interlock_testkit::assert_status;
