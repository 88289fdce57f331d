//! Interlock roles: which roles each user holds.
//!
//! - [`domain`]: role names.
//! - [`store`]: SQL of role assignments.
//! - [`service`]: the admin (external) and internal gRPC handlers;
//!   [`error`]: their one error type.
//! - [`config`]: settings; [`startup`]: [`build`], the service as an
//!   `interlock_common::server::App`.
//!
//! roles knows a user only once registration called AssignDefaultRoles;
//! it never reads another module's data.

pub mod config;
pub mod domain;
pub mod error;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use startup::build;

/// This module's workload name: its settings prefix (`INTERLOCK_ROLES__*`),
/// its `service.name` in traces, and whose services the policy lists for
/// its health.
pub const MODULE: &str = "roles";

/// Migrations of roles' database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/roles");

/// The role that may call the admin API.
pub const ADMIN: &str = "admin";
