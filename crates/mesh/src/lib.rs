//! The local mesh, generated from one description: `mesh/topology.toml`
//! (ports, which workloads run) and `mesh/policy.toml` (identities and
//! who may call what).
//!
//! - [`topology`]: the description and the paths of a run directory.
//! - [`envoy`]: the edge and one sidecar per workload (JSON).
//! - [`spire`]: server and agent configuration and registration entries.
//! - [`services`]: each service's settings file.
//! - [`orchestrator`]: the process-compose project that starts it all in
//!   dependency order with readiness checks.
//! - [`setup`]: secrets, the edge's TLS certificate, database roles.
//! - [`compose`]: the same mesh as `compose.yaml` and the files it mounts.

pub mod compose;
pub mod envoy;
pub mod orchestrator;
pub mod services;
pub mod setup;
pub mod spire;
pub mod topology;

pub use topology::{Mesh, Topology};
