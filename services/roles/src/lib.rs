//! Interlock roles: which roles each user holds.
//!
//! - [`domain`]: role names. - [`store`]: SQL. - [`service`]: the admin
//!   (external) and internal gRPC handlers. - [`config`] / [`startup`].
//!
//! roles knows a user only once registration called AssignDefaultRoles;
//! it never reads another module's data.

pub mod config;
pub mod domain;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use startup::Application;

/// Migrations of roles' database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/roles");

/// The role that may call the admin API.
pub const ADMIN: &str = "admin";
