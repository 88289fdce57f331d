//! The mesh description, `mesh/topology.toml`: ports, how each target runs
//! the mesh, and each workload's facts (its binary, database, secrets,
//! peers, special roles). Plain data: [`crate::Mesh`] checks it against the
//! policy and answers every question the renderers ask.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::mesh::{Mesh, Route, Target, repository_mesh};

/// The repository's topology.
pub const EMBEDDED: &str = include_str!("../../../mesh/topology.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub edge: Edge,
    pub spire: Spire,
    pub postgres: Postgres,
    pub smtp: Smtp,
    pub fcm_local: FcmLocal,
    pub tracing: Tracing,
    pub targets: Targets,
    pub workloads: BTreeMap<String, Workload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    pub otlp_port: u16,
    pub query_port: u16,
    pub health_port: u16,
    pub sampling_ratio: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmLocal {
    pub binary: String,
    pub port: u16,
    /// The sender's poll interval in the mesh.
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub port: u16,
    /// Per client address, on the methods that need no token (the bcrypt
    /// paths): a bucket of `public_burst` refilled at `public_per_sec`.
    pub public_per_sec: u32,
    pub public_burst: u32,
    /// Downstream connections the edge accepts at once.
    pub max_connections: u32,
    /// The workload the edge routes gRPC server reflection to.
    pub reflection: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spire {
    pub server_port: u16,
    pub node_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    pub port: u16,
}

/// `[smtp]`: the local SMTP server (scripts/smtp.sh).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub port: u16,
    /// Its configuration, TLS files and Maildir (root only).
    pub home: std::path::PathBuf,
}

/// `[targets]`: what differs between the two ways of running the mesh.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub local: LocalTarget,
    pub compose: ComposeTarget,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    pub x509_svid_ttl_secs: u32,
    pub log_format: String,
    /// How often the SPIRE agent syncs entries and SVIDs with the server.
    pub agent_sync_interval_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeTarget {
    pub x509_svid_ttl_secs: u32,
    pub log_format: String,
    /// How often the SPIRE agent syncs entries and SVIDs with the server.
    pub agent_sync_interval_secs: u32,
    /// Every service's listener, on loopback inside its network namespace.
    pub service_port: u16,
    /// Every sidecar's egress listener, on the same loopback.
    pub egress_port: u16,
    /// Host ports (on the host's loopback) of the edge and the Jaeger UI.
    pub edge_host_port: u16,
    pub jaeger_ui_host_port: u16,
}

/// `[workloads.<name>]`; see the comment above them in topology.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub binary: String,
    /// `None`: no API, the sidecar only carries outbound calls.
    #[serde(default)]
    pub sidecar_port: Option<u16>,
    #[serde(default)]
    pub database: bool,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default)]
    pub verifies_tokens: bool,
    /// Set on the token issuer: where it serves its JWKS.
    #[serde(default)]
    pub jwks_path: Option<String>,
    /// Set on the token issuer: where it serves the revoked sessions.
    #[serde(default)]
    pub revoked_sessions_path: Option<String>,
    #[serde(default)]
    pub fcm: bool,
    /// It sends email (`[email]`: the local SMTP server, STARTTLS).
    #[serde(default)]
    pub email: bool,
    /// Settings key (`section.key`) -> secret name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl Topology {
    pub fn embedded() -> Self {
        toml::from_str(EMBEDDED).expect("the embedded topology is checked by tests")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed topology parses (every field known, none missing).
    #[test]
    fn repository_topology_parses() {
        let t: Topology = toml::from_str(EMBEDDED).unwrap();
        assert!(t.workloads.contains_key("auth"));
        assert!(t.targets.local.x509_svid_ttl_secs < t.targets.compose.x509_svid_ttl_secs);
    }
}
