//! The mesh, generated from one description: `mesh/topology.toml` (ports,
//! targets, each workload's facts), `mesh/policy.toml` (identities and who
//! may call what) and `mesh/versions.toml` (pinned tools).
//!
//! - [`topology`]: the description, as plain data.
//! - [`mesh`]: [`Mesh`], the description checked against the policy
//!   ([`checks`]) for one target; every address and path comes from it.
//! - [`envoy`]: the edge and one sidecar per workload.
//! - [`spire`]: server and agent configuration, registration entries.
//! - [`services`]: each service's settings file.
//! - [`orchestrator`]: the process-compose project of the local mesh.
//! - [`compose`]: the same mesh as `compose.yaml`.
//! - [`routes`]: calls from the policy: egress routes and RBAC rules.
//! - [`render`]: the files committed for both targets (`envoy/`, `spire/`,
//!   compose), and the check that keeps them exact.
//! - [`secrets`]: generated secrets, the edge's TLS, the FCM account.
//! - [`setup`]: private files and the local databases.
//! - [`env`](mod@env): the facts scripts need, as shell assignments.
//! - [`mail`]: the local SMTP server's Maildir, read back.
//! - [`versions`]: the pinned tool versions and images.

pub mod checks;
pub mod compose;
pub mod env;
pub mod envoy;
pub mod mail;
pub mod mesh;
pub mod orchestrator;
pub mod render;
pub mod routes;
pub mod secrets;
pub mod services;
pub mod setup;
pub mod spire;
pub mod topology;
pub mod versions;

pub use mesh::{Mesh, Target};
pub use topology::Topology;
