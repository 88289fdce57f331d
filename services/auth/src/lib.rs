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
//! - [`accounts`]: email confirmation, password reset and change.
//! - [`codes`]: the single-use codes those emails carry (stored keyed-hashed).
//! - [`mailer`]: the emails, delivered over SMTP in the background.
//! - [`revocations`]: the revoked sessions every verifier refuses.
//! - [`service`]: the gRPC handlers.
//! - [`discovery`]: the JWKS and the discovery document over HTTP.
//! - [`config`]: settings; [`startup`]: [`build`], the service as an
//!   `interlock_common::server::App` with key maintenance in the background.
//!
//! auth owns credentials only; profiles belong to users and roles to roles.

pub mod accounts;
pub mod codes;
pub mod config;
pub mod discovery;
pub mod domain;
pub mod error;
pub mod keys;
pub mod login;
pub mod mailer;
pub mod password;
pub mod register;
pub mod revocations;
pub mod service;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use config::Settings;
pub use startup::build;

/// This module's workload name: its settings prefix (`INTERLOCK_AUTH__*`),
/// its `service.name` in traces, and whose services the policy lists for
/// its health.
pub const MODULE: &str = "auth";

/// Migrations of auth's database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/auth");
