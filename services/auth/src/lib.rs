//! Interlock auth: who a user is.
//!
//! - [`domain`]: validated request values (login, email, password, names).
//! - [`password`]: bcrypt over a peppered HMAC pre-hash; equal time for
//!   unknown accounts.
//! - [`keys`]: ES256 signing keys — sealed at rest, published before they
//!   sign, kept published until their tokens expire.
//! - [`tokens`]: access JWTs and opaque refresh tokens.
//! - [`store`]: credentials, sessions and refresh-token families (SQL).
//! - [`throttle`]: login throttling per account and per client address.
//! - [`register`]: the registration saga across users and roles.
//! - [`revocations`]: the revoked sessions every verifier refuses.
//! - [`service`]: the gRPC handlers and the HTTP JWKS endpoint.
//! - [`config`] and [`startup`]: settings and the application.
//!
//! auth owns credentials only; profiles belong to users and roles to roles.

pub mod config;
pub mod domain;
pub mod error;
pub mod keys;
pub mod password;
pub mod register;
pub mod revocations;
pub mod service;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use config::Settings;
pub use startup::Application;

/// Migrations of auth's database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/auth");
