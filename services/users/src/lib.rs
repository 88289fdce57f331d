//! Interlock users: profiles.
//!
//! - [`domain`]: profile field rules.
//! - [`store`]: SQL of profiles.
//! - [`service`]: the external (GetMe, UpdateMe) and internal handlers;
//!   roles are read from the roles module on every call, never copied;
//!   [`error`]: their one error type.
//! - [`config`]: settings; [`startup`]: [`build`], the service as an
//!   `interlock_common::server::App`.

pub mod config;
pub mod domain;
pub mod error;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use startup::build;

/// This module's workload name: its settings prefix (`INTERLOCK_USERS__*`),
/// its `service.name` in traces, and whose services the policy lists for
/// its health.
pub const MODULE: &str = "users";

/// Migrations of users' database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/users");
