//! Interlock notifications: messages to users, their receipts, and the push
//! devices the sender delivers to.
//!
//! - [`store`]: SQL of notifications, receipts and devices.
//! - [`delivery`]: SQL of claims (leases), per-device outcomes, release and
//!   mark-processed; [`lease`]: the lease-holder and scope checks they run
//!   first, and their refusals.
//! - [`service`]: external handlers (for the current user); [`internal`]:
//!   Create for modules, and the sender's claim, report, release and
//!   mark-processed calls.
//! - [`config`]: settings; [`startup`]: [`build`], the service as an
//!   `interlock_common::server::App`.

pub mod config;
pub mod delivery;
pub mod error;
pub mod internal;
pub mod lease;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use startup::build;

/// This module's workload name: its settings prefix (`INTERLOCK_NOTIFICATIONS__*`),
/// its `service.name` in traces, and whose services the policy lists for
/// its health.
pub const MODULE: &str = "notifications";

/// Migrations of notifications' database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/notifications");
