//! The mesh description and where a run keeps its files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use interlock_common::policy::{Exposure, Policy};
use serde::Deserialize;

/// The repository's topology.
pub const EMBEDDED: &str = include_str!("../../../mesh/topology.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub edge: Edge,
    pub spire: Spire,
    pub postgres: Postgres,
    pub fcm_local: FcmLocal,
    pub tracing: Tracing,
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
    pub port: u16,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spire {
    pub server_port: u16,
    pub x509_svid_ttl_secs: u32,
    pub node_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub sidecar_port: u16,
}

impl Topology {
    pub fn embedded() -> Self {
        toml::from_str(EMBEDDED).expect("the embedded topology is checked by tests")
    }
}

/// Where the mesh runs: the same topology, different addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Local processes: services on Unix sockets in private directories,
    /// everything else on 127.0.0.1.
    Local,
    /// compose.yaml: each sidecar shares its service's network namespace;
    /// services on 127.0.0.1 inside it; peers by container name.
    Compose,
}

/// In compose, the port every service listens on (inside its own network
/// namespace, on loopback).
pub const COMPOSE_SERVICE_PORT: u16 = 8000;
/// In compose, the sidecar's egress listener (loopback, same namespace).
pub const COMPOSE_EGRESS_PORT: u16 = 15001;
/// In compose, each Envoy's admin socket, in its own container's /tmp.
pub const COMPOSE_ADMIN_SOCKET: &str = "/tmp/envoy-admin.sock";
/// In compose, where the SPIRE agent's socket is mounted.
pub const COMPOSE_AGENT_SOCKET: &str = "/run/spire/sockets/agent.sock";

/// A topology, the policy, and the directories of one run.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub target: Target,
    pub topology: Topology,
    pub policy: Policy,
    /// Everything a run writes (configs, sockets, SPIRE data, logs).
    pub run_dir: PathBuf,
    /// Binaries the workloads run (world-executable copies).
    pub bin_dir: PathBuf,
}

impl Mesh {
    /// Checks that topology and policy agree, reporting every problem.
    pub fn new(
        topology: Topology,
        policy: Policy,
        run_dir: PathBuf,
        bin_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut problems = Vec::new();
        for name in topology.workloads.keys() {
            if policy.spiffe_id(name).is_none() {
                problems.push(format!("workload {name} has no SPIFFE ID in the policy"));
            }
        }
        for rule in policy.services() {
            if !topology.workloads.contains_key(&rule.module) {
                problems.push(format!(
                    "{} is served by {}, which the topology does not run",
                    rule.name, rule.module
                ));
            }
        }
        anyhow::ensure!(
            problems.is_empty(),
            "topology and policy disagree:\n  - {}",
            problems.join("\n  - ")
        );
        Ok(Self {
            target: Target::Local,
            topology,
            policy,
            run_dir,
            bin_dir,
        })
    }

    pub fn workloads(&self) -> impl Iterator<Item = &str> {
        self.topology.workloads.keys().map(String::as_str)
    }

    /// Workloads that own a database: those that serve an API.
    pub fn has_database(&self, workload: &str) -> bool {
        self.policy.services().any(|r| r.module == workload)
    }

    pub fn spiffe_id(&self, workload: &str) -> String {
        self.policy
            .spiffe_id(workload)
            .expect("checked in Mesh::new")
    }

    /// `spiffe://<trust domain>`: the bundle's SDS name.
    pub fn trust_domain_id(&self) -> String {
        format!("spiffe://{}", self.policy.trust_domain())
    }

    /// The Unix user a workload runs as.
    pub fn unix_user(workload: &str) -> String {
        format!("interlock-{workload}")
    }

    /// The workload's private directory (mode 0700, owned by its user).
    pub fn workload_dir(&self, workload: &str) -> PathBuf {
        self.run_dir.join("workloads").join(workload)
    }

    pub fn service_socket(&self, workload: &str) -> PathBuf {
        self.workload_dir(workload).join("grpc.sock")
    }

    pub fn egress_socket(&self, workload: &str) -> PathBuf {
        self.workload_dir(workload).join("egress.sock")
    }

    /// The Envoy admin socket of `workload` (or of the edge): mode 0600 in
    /// the workload's private directory, so only its user and root open it.
    pub fn admin_socket(&self, workload: &str) -> PathBuf {
        match (self.target, workload) {
            (Target::Compose, _) => PathBuf::from(COMPOSE_ADMIN_SOCKET),
            (Target::Local, "edge") => self.edge_dir().join("admin.sock"),
            (Target::Local, w) => self.workload_dir(w).join("admin.sock"),
        }
    }

    /// process-compose's API: a Unix socket in a directory only root can
    /// enter (the API can replace any process's command).
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir.join("control").join("process-compose.sock")
    }

    /// The local FCM server's test hooks (root only, beside the
    /// supervisor's socket).
    pub fn fcm_control_socket(&self) -> PathBuf {
        self.run_dir.join("control").join("fcm-local.sock")
    }

    /// Where the SPIRE bootstrap leaves the agent's single-use join token
    /// (root only; deleted once the agent has attested).
    pub fn join_token_file(&self) -> PathBuf {
        self.spire_dir().join("join").join("token")
    }

    pub fn spire_dir(&self) -> PathBuf {
        self.run_dir.join("spire")
    }

    /// The SPIRE agent's Workload API (and SDS) socket.
    pub fn agent_socket(&self) -> PathBuf {
        match self.target {
            Target::Local => self
                .spire_dir()
                .join("agent")
                .join("public")
                .join("api.sock"),
            Target::Compose => PathBuf::from(COMPOSE_AGENT_SOCKET),
        }
    }

    /// The mesh for compose: same topology and policy, container paths.
    pub fn for_compose(&self) -> Mesh {
        Mesh {
            target: Target::Compose,
            run_dir: PathBuf::from("/etc/interlock"),
            bin_dir: PathBuf::from("/usr/local/bin"),
            ..self.clone()
        }
    }

    /// Host of a workload's sidecar as its peers reach it.
    pub fn sidecar_host(&self, workload: &str) -> String {
        match self.target {
            Target::Local => "127.0.0.1".into(),
            Target::Compose => workload.into(),
        }
    }

    /// Where listeners that peers reach bind.
    pub fn bind_host(&self) -> &'static str {
        match self.target {
            Target::Local => "127.0.0.1",
            Target::Compose => "0.0.0.0",
        }
    }

    /// Host of the OTLP collector.
    pub fn otlp_host(&self) -> String {
        match self.target {
            Target::Local => "127.0.0.1".into(),
            Target::Compose => "otel-collector".into(),
        }
    }

    pub fn server_socket(&self) -> PathBuf {
        self.spire_dir()
            .join("server")
            .join("private")
            .join("api.sock")
    }

    pub fn edge_dir(&self) -> PathBuf {
        self.run_dir.join("edge")
    }

    pub fn config_path(&self, name: &str) -> PathBuf {
        self.run_dir.join("config").join(name)
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Modules that `workload` calls: `(module, path prefixes or exact paths)`.
    pub fn outbound_routes(&self, workload: &str) -> BTreeMap<String, Vec<Route>> {
        let mut out: BTreeMap<String, Vec<Route>> = BTreeMap::new();
        for rule in self.policy.services() {
            if rule.exposure == Exposure::External {
                continue;
            }
            if rule.callers.iter().any(|c| c == workload) {
                out.entry(rule.module.clone())
                    .or_default()
                    .push(Route::Prefix(format!("/{}/", rule.name)));
            }
            for (method, callers) in &rule.methods {
                if callers.iter().any(|c| c == workload) {
                    out.entry(rule.module.clone())
                        .or_default()
                        .push(Route::Exact(format!("/{}/{method}", rule.name)));
                }
            }
        }
        for rule in self.policy.http_rules() {
            if rule.callers.iter().any(|c| c == workload) && rule.module != workload {
                out.entry(rule.module.clone())
                    .or_default()
                    .push(Route::Exact(rule.path.clone()));
            }
        }
        for routes in out.values_mut() {
            routes.sort();
        }
        out
    }

    /// Who may call what on `workload`'s sidecar: `(route, SPIFFE IDs)`.
    pub fn inbound_rules(&self, workload: &str) -> Vec<(Route, Vec<String>)> {
        let ids = |callers: &[String]| {
            callers
                .iter()
                .map(|c| self.spiffe_id(c))
                .collect::<Vec<_>>()
        };
        let mut rules = Vec::new();
        for rule in self.policy.services().filter(|r| r.module == workload) {
            if !rule.callers.is_empty() {
                rules.push((
                    Route::Prefix(format!("/{}/", rule.name)),
                    ids(&rule.callers),
                ));
            }
            for (method, callers) in &rule.methods {
                rules.push((
                    Route::Exact(format!("/{}/{method}", rule.name)),
                    ids(callers),
                ));
            }
        }
        for rule in self.policy.http_rules().filter(|r| r.module == workload) {
            rules.push((Route::Exact(rule.path.clone()), ids(&rule.callers)));
        }
        if workload == REFLECTION_MODULE {
            for prefix in REFLECTION_PREFIXES {
                rules.push((
                    Route::Prefix((*prefix).to_owned()),
                    vec![self.spiffe_id("edge")],
                ));
            }
        }
        rules.sort();
        rules
    }

    /// External gRPC services and the module serving each.
    pub fn external_services(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .policy
            .services()
            .filter(|r| r.exposure == Exposure::External)
            .map(|r| (r.name.clone(), r.module.clone()))
            .collect();
        v.sort();
        v
    }

    /// Methods of external services that need no user JWT.
    pub fn public_methods(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .policy
            .services()
            .filter(|r| r.exposure == Exposure::External)
            .flat_map(|r| {
                r.public_methods
                    .iter()
                    .map(move |m| format!("/{}/{m}", r.name))
            })
            .collect();
        v.sort();
        v
    }
}

/// The module the edge sends server reflection to. Every service's
/// reflection lists exactly the external services, so any would do.
pub const REFLECTION_MODULE: &str = "auth";

/// gRPC server reflection paths.
pub const REFLECTION_PREFIXES: &[&str] = &[
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// A path matcher.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Prefix(String),
    Exact(String),
}

impl Route {
    /// Envoy's route `match` / RBAC `path` matcher.
    pub fn envoy_match(&self) -> serde_json::Value {
        match self {
            Route::Prefix(p) => serde_json::json!({ "prefix": p }),
            Route::Exact(p) => serde_json::json!({ "path": p }),
        }
    }

    pub fn string_matcher(&self) -> serde_json::Value {
        match self {
            Route::Prefix(p) => serde_json::json!({ "prefix": p }),
            Route::Exact(p) => serde_json::json!({ "exact": p }),
        }
    }
}

/// Helper for tests and tools: a mesh of the repository's files.
pub fn repository_mesh(run_dir: &Path, bin_dir: &Path) -> anyhow::Result<Mesh> {
    Mesh::new(
        Topology::embedded(),
        Policy::embedded(),
        run_dir.to_owned(),
        bin_dir.to_owned(),
    )
}
