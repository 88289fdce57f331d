//! What every Interlock service shares, written once:
//!
//! - [`settings`]: layered configuration (TOML file + `INTERLOCK_<SVC>__*`
//!   environment), validated completely at start; secrets never printed.
//! - [`telemetry`]: logging set-up (text or JSON).
//! - [`db`]: the PostgreSQL pool and migrations at start.
//! - [`error`]: [`error::ApiError`], the one mapping from domain failures to
//!   `tonic::Status`.
//! - [`validate`] and [`page`]: input checks that name the bad field, and
//!   opaque keyset page tokens.
//! - [`policy`]: the call policy (`mesh/policy.toml`), embedded at build.
//! - [`peer`]: the peer check — `x-forwarded-client-cert` parsed, verified
//!   against the SPIFFE trust bundle, matched against the policy.
//! - [`jwt`]: access-token verification with a cached JWKS, and
//!   [`revocation`]: the revoked sessions it refuses.
//! - [`guard`]: the tower layer that applies [`peer`] and [`jwt`] to every
//!   request before any handler runs, and [`context`]: what it hands on.
//! - [`server`]: the gRPC server (health, reflection, graceful shutdown).
//! - [`client`]: outbound channels to other modules.
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
pub mod policy;
pub mod revocation;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod validate;

pub use error::ApiError;

/// A protobuf timestamp from a chrono one.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
