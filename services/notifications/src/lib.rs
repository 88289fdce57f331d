//! Interlock notifications: messages to users, their receipts, and the push
//! devices the sender delivers to.
//!
//! - [`store`]: SQL. - [`service`]: external handlers (for the current
//!   user) and internal ones (Create for modules, ListPending and
//!   MarkProcessed for the sender). - [`config`] / [`startup`].

pub mod config;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Settings;
pub use startup::Application;

/// Migrations of notifications' database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/notifications");
