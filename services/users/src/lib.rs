//! Interlock users: profiles.
//!
//! - [`domain`]: profile field rules. - [`store`]: SQL. - [`service`]: the
//!   external (GetMe, UpdateMe) and internal handlers; roles are read from
//!   the roles module on every call, never copied. - [`config`] / [`startup`].

pub mod config;
pub mod domain;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use startup::Application;

/// Migrations of users' database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/users");
