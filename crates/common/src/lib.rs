//! What every Interlock service shares, written once:
//!
//! - [`settings`]: layered configuration (TOML file + `INTERLOCK_<SVC>__*`
//!   environment) and the sections every service shares, plain data,
//!   validated completely at start; secrets never printed.
//! - [`telemetry`]: logs (text or JSON) and traces (OTLP, W3C context).
//! - [`db`]: the PostgreSQL pool and migrations at start.
//! - [`error`]: [`error::ApiError`], the one mapping from domain failures to
//!   `tonic::Status`.
//! - [`validate`] and [`page`]: input checks that name the bad field, and
//!   opaque keyset page tokens.
//! - [`policy`]: the call policy (`mesh/policy.toml`), embedded at build;
//!   the `interlock-policy` crate, re-exported.
//! - [`peer`]: the peer check — `x-forwarded-client-cert` parsed, verified
//!   against the SPIFFE trust bundle, matched against the policy.
//! - [`jwt`]: access-token verification with a cached JWKS, and
//!   [`revocation`]: the revoked sessions it refuses.
//! - [`guard`]: the tower layer that applies [`peer`] and [`jwt`] to every
//!   request before any handler runs, and [`context`]: what it hands on.
//! - [`server`]: the service skeleton, [`server::App`]: routes behind the
//!   guard, health, reflection and background tasks, run on a bound
//!   listener until a shutdown signal.
//! - [`client`]: outbound channels to other modules, and the HTTP JSON
//!   fetcher behind the JWKS and the revoked sessions.
//!
//! Dependencies point one way: [`settings`] is plain data and depends on
//! nothing here; each type that a section configures builds itself from it
//! (`Listener::bind`, `db::connect`, `PeerVerifier::from_settings`,
//! `JwtVerifier::from_settings`, `Guard::from_settings`); [`client`] sits
//! below [`jwt`], which sits below [`guard`], which sits below [`server`].
//!
//! Nothing here knows any one service's tables or business rules.

pub mod client;
pub mod context;
pub mod db;
pub mod error;
pub mod guard;
pub mod jwt;
pub mod page;
pub mod peer;
pub mod revocation;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod validate;

pub use error::ApiError;
pub use interlock_policy as policy;

/// A protobuf timestamp from a chrono one.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
