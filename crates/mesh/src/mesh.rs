//! [`Mesh`]: the topology and the policy, checked against each other, for
//! one target and run directory. Every address and path a renderer writes
//! comes from here, so the targets differ in one place.

use std::path::{Path, PathBuf};

use interlock_common::policy::Policy;

pub use crate::routes::{REFLECTION_PREFIXES, Route};
use crate::topology::{Topology, Workload};
use crate::versions::Versions;

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

impl Target {
    pub const ALL: [Target; 2] = [Target::Local, Target::Compose];

    pub fn name(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Compose => "compose",
        }
    }
}

/// The documented run directory of the local mesh (scripts/mesh.sh's
/// default); the committed `envoy/local` and `spire/local` are rendered
/// for it.
pub const DEFAULT_RUN_DIR: &str = "/var/lib/interlock/mesh";

/// The generator itself: also the services' health probe.
pub const GENERATOR_BINARY: &str = "interlock-mesh";

/// Programs the local mesh runs that are not built here (installed by
/// scripts/install-tools.sh, copied next to the workloads' binaries).
pub const TOOLS: &[&str] = &["envoy", "spire-server", "spire-agent", "jaeger"];

/// The compose secret (and file name) of the FCM service account.
pub const FCM_ACCOUNT_SECRET: &str = "fcm_service_account";

/// In compose, each Envoy's admin socket, in its own container's /tmp.
const COMPOSE_ADMIN_SOCKET: &str = "/tmp/envoy-admin.sock";
/// In compose, where the SPIRE agent's socket volume is mounted.
const COMPOSE_AGENT_SOCKET: &str = "/run/spire/sockets/agent.sock";
/// In compose, the volume on which the init step hands the agent its
/// bundle and join token.
const COMPOSE_JOIN_DIR: &str = "/run/spire/join";
/// In compose, where file secrets are mounted.
const COMPOSE_SECRETS_DIR: &str = "/run/secrets";
/// In compose, the SMTP server's container (and its certificate's name).
pub const COMPOSE_SMTP: &str = "smtp";
/// In compose, the SMTP server's submission port (STARTTLS).
pub const COMPOSE_SMTP_PORT: u16 = 587;
/// The compose secret (and file name) of the SMTP server's CA.
pub const SMTP_CA_SECRET: &str = "smtp_ca";
/// In compose, the PostgreSQL port of each database container.
const COMPOSE_POSTGRES_PORT: u16 = 5432;

/// A topology, the policy, and the directories of one run.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub target: Target,
    pub topology: Topology,
    pub policy: Policy,
    pub versions: Versions,
    /// Everything a run writes (configs, sockets, SPIRE data, logs).
    pub run_dir: PathBuf,
    /// Binaries the workloads run (world-executable copies).
    pub bin_dir: PathBuf,
}

impl Mesh {
    /// The local mesh; checks that topology and policy agree, reporting
    /// every problem at once.
    pub fn new(
        topology: Topology,
        policy: Policy,
        run_dir: PathBuf,
        bin_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let mesh = Self {
            target: Target::Local,
            topology,
            policy,
            versions: Versions::embedded(),
            run_dir,
            bin_dir,
        };
        let problems = crate::checks::problems(&mesh);
        anyhow::ensure!(
            problems.is_empty(),
            "topology and policy disagree:\n  - {}",
            problems.join("\n  - ")
        );
        Ok(mesh)
    }

    /// The same mesh for `target` (compose: container paths).
    pub fn for_target(&self, target: Target) -> Mesh {
        match target {
            Target::Local => Mesh {
                target,
                ..self.clone()
            },
            Target::Compose => Mesh {
                target,
                run_dir: PathBuf::from("/etc/interlock"),
                bin_dir: PathBuf::from("/usr/local/bin"),
                ..self.clone()
            },
        }
    }

    pub fn for_compose(&self) -> Mesh {
        self.for_target(Target::Compose)
    }

    // === the description ===

    pub fn workloads(&self) -> impl Iterator<Item = &str> {
        self.topology.workloads.keys().map(String::as_str)
    }

    pub fn workload(&self, name: &str) -> &Workload {
        &self.topology.workloads[name]
    }

    /// Workloads that own a database.
    pub fn has_database(&self, workload: &str) -> bool {
        self.workload(workload).database
    }

    /// The token issuer: `(workload, JWKS path, revoked-sessions path)`.
    pub fn token_issuer(&self) -> (&str, &str, &str) {
        self.topology
            .workloads
            .iter()
            .find_map(|(name, w)| {
                Some((
                    name.as_str(),
                    w.jwks_path.as_deref()?,
                    w.revoked_sessions_path.as_deref()?,
                ))
            })
            .expect("checked in Mesh::new")
    }

    /// Every program this repository builds that the mesh runs.
    pub fn binaries(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .topology
            .workloads
            .values()
            .map(|w| w.binary.clone())
            .collect();
        v.push(self.topology.fcm_local.binary.clone());
        v.push(GENERATOR_BINARY.to_owned());
        v
    }

    /// The SVID lifetime of this target (every entry and the server's
    /// default).
    pub fn svid_ttl_secs(&self) -> u32 {
        match self.target {
            Target::Local => self.topology.targets.local.x509_svid_ttl_secs,
            Target::Compose => self.topology.targets.compose.x509_svid_ttl_secs,
        }
    }

    /// How often this target's SPIRE agent syncs with the server.
    pub fn agent_sync_interval_secs(&self) -> u32 {
        match self.target {
            Target::Local => self.topology.targets.local.agent_sync_interval_secs,
            Target::Compose => self.topology.targets.compose.agent_sync_interval_secs,
        }
    }

    pub fn log_format(&self) -> &str {
        match self.target {
            Target::Local => &self.topology.targets.local.log_format,
            Target::Compose => &self.topology.targets.compose.log_format,
        }
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

    /// The SPIFFE ID the SPIRE agent's node gets.
    pub fn node_id(&self) -> String {
        format!("{}{}", self.trust_domain_id(), self.topology.spire.node_id)
    }

    /// The Unix user a workload runs as.
    pub fn unix_user(workload: &str) -> String {
        format!("interlock-{workload}")
    }

    // === addresses ===

    /// Where listeners that peers reach bind.
    pub fn bind_host(&self) -> &'static str {
        match self.target {
            Target::Local => "127.0.0.1",
            Target::Compose => "0.0.0.0",
        }
    }

    /// Host of a container (compose) or 127.0.0.1 (local).
    fn host(&self, container: &str) -> String {
        match self.target {
            Target::Local => "127.0.0.1".into(),
            Target::Compose => container.into(),
        }
    }

    /// Host of a workload's sidecar as its peers reach it.
    pub fn sidecar_host(&self, workload: &str) -> String {
        self.host(workload)
    }

    /// Host of the OTLP collector.
    pub fn otlp_host(&self) -> String {
        self.host("otel-collector")
    }

    /// `host:port` of the local FCM server.
    pub fn fcm_local_addr(&self) -> String {
        format!(
            "{}:{}",
            self.host("fcm-local"),
            self.topology.fcm_local.port
        )
    }

    /// `host:port` of `workload`'s database.
    pub fn database_addr(&self, workload: &str) -> String {
        match self.target {
            Target::Local => format!("127.0.0.1:{}", self.topology.postgres.port),
            Target::Compose => format!("{}:{COMPOSE_POSTGRES_PORT}", compose_database(workload)),
        }
    }

    /// The database URL of a service's own role and database.
    pub fn database_url(&self, workload: &str, password: &str) -> String {
        format!(
            "postgres://{db}:{password}@{addr}/{db}",
            db = database_name(workload),
            addr = self.database_addr(workload)
        )
    }

    /// The edge as clients on this machine reach it: the local mesh's port,
    /// or the port compose publishes on the host's loopback.
    pub fn edge_public_url(&self) -> String {
        let port = match self.target {
            Target::Local => self.topology.edge.port,
            Target::Compose => self.topology.targets.compose.edge_host_port,
        };
        format!("https://localhost:{port}")
    }

    /// `(host, port)` of the SMTP server, and the name its certificate
    /// carries: locally scripts/smtp.sh's Postfix, in compose the `smtp`
    /// container.
    pub fn smtp_server(&self) -> (String, u16, String) {
        match self.target {
            Target::Local => (
                "127.0.0.1".into(),
                self.topology.smtp.port,
                "localhost".into(),
            ),
            Target::Compose => (COMPOSE_SMTP.into(), COMPOSE_SMTP_PORT, COMPOSE_SMTP.into()),
        }
    }

    /// The CA that signed the SMTP server's certificate, where the
    /// workloads that send email read it.
    pub fn smtp_ca_file(&self) -> PathBuf {
        match self.target {
            Target::Local => self.topology.smtp.home.join("tls").join("ca.pem"),
            Target::Compose => Path::new(COMPOSE_SECRETS_DIR).join(SMTP_CA_SECRET),
        }
    }

    /// The local SMTP server's Maildir (every message it accepted).
    pub fn maildir(&self) -> PathBuf {
        crate::mail::maildir(&self.topology.smtp.home)
    }

    /// SPIRE server as the agent dials it.
    pub fn spire_server_host(&self) -> String {
        self.host("spire-server")
    }

    // === paths ===

    /// The workload's private directory (mode 0700, owned by its user).
    pub fn workload_dir(&self, workload: &str) -> PathBuf {
        self.run_dir.join("workloads").join(workload)
    }

    /// Where a service listens, as its `[server] listen` setting.
    pub fn service_listen(&self, workload: &str) -> String {
        match self.target {
            Target::Local => format!("unix:{}", self.service_socket(workload).display()),
            Target::Compose => format!("127.0.0.1:{}", self.topology.targets.compose.service_port),
        }
    }

    /// The local mesh's service socket.
    pub fn service_socket(&self, workload: &str) -> PathBuf {
        self.workload_dir(workload).join("grpc.sock")
    }

    /// The local mesh's egress socket.
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

    /// An Envoy's configuration file, where that Envoy reads it.
    pub fn envoy_config(&self, workload: &str) -> PathBuf {
        match (self.target, workload) {
            (Target::Compose, _) => PathBuf::from("/etc/envoy/envoy.yaml"),
            (Target::Local, "edge") => self.edge_dir().join("envoy.yaml"),
            (Target::Local, w) => self.workload_dir(w).join("envoy.yaml"),
        }
    }

    /// A service's settings file, where the service reads it.
    pub fn service_config(&self, workload: &str) -> PathBuf {
        match self.target {
            Target::Local => self.workload_dir(workload).join("config.toml"),
            Target::Compose => self.run_dir.join("config.toml"),
        }
    }

    /// The FCM service account, where the workload that pushes reads it.
    pub fn service_account_file(&self, workload: &str) -> PathBuf {
        match self.target {
            Target::Local => self.workload_dir(workload).join("service-account.json"),
            Target::Compose => Path::new(COMPOSE_SECRETS_DIR).join(FCM_ACCOUNT_SECRET),
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

    pub fn log_dir(&self) -> PathBuf {
        self.run_dir.join("logs")
    }

    pub fn spire_dir(&self) -> PathBuf {
        self.run_dir.join("spire")
    }

    /// Where the SPIRE bootstrap leaves the agent's single-use join token
    /// (local: root only, deleted once the agent has attested).
    pub fn join_token_file(&self) -> PathBuf {
        match self.target {
            Target::Local => self.spire_dir().join("join").join("token"),
            Target::Compose => Path::new(COMPOSE_JOIN_DIR).join("token"),
        }
    }

    /// The trust bundle the bootstrap hands the agent.
    pub fn agent_bundle(&self) -> PathBuf {
        match self.target {
            Target::Local => self.spire_dir().join("bootstrap-bundle.pem"),
            Target::Compose => Path::new(COMPOSE_JOIN_DIR).join("bundle.pem"),
        }
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

    /// The SPIRE server's API socket (root only locally; in compose on a
    /// volume only the init step shares).
    pub fn server_socket(&self) -> PathBuf {
        match self.target {
            Target::Local => self
                .spire_dir()
                .join("server")
                .join("private")
                .join("api.sock"),
            Target::Compose => PathBuf::from("/tmp/spire-server/private/api.sock"),
        }
    }

    pub fn spire_server_data(&self) -> PathBuf {
        match self.target {
            Target::Local => self.spire_dir().join("server").join("data"),
            Target::Compose => PathBuf::from("/var/lib/spire/server"),
        }
    }

    pub fn spire_agent_data(&self) -> PathBuf {
        match self.target {
            Target::Local => self.spire_dir().join("agent").join("data"),
            Target::Compose => PathBuf::from("/var/lib/spire/agent"),
        }
    }

    /// A SPIRE configuration file or the bootstrap script, where SPIRE
    /// reads it.
    pub fn spire_file(&self, name: &str) -> PathBuf {
        match self.target {
            Target::Local => self.spire_dir().join(name),
            Target::Compose => Path::new("/etc/spire").join(name),
        }
    }

    /// The edge's TLS files.
    pub fn edge_dir(&self) -> PathBuf {
        self.run_dir.join("edge")
    }

    pub fn config_path(&self, name: &str) -> PathBuf {
        self.run_dir.join("config").join(name)
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// A workload's database and login role.
pub fn database_name(workload: &str) -> String {
    format!("interlock_{workload}")
}

/// The compose container of a workload's database.
pub fn compose_database(workload: &str) -> String {
    format!("postgres-{workload}")
}

/// A mesh of the repository's files (tests and tools).
pub fn repository_mesh(run_dir: &Path, bin_dir: &Path) -> anyhow::Result<Mesh> {
    Mesh::new(
        Topology::embedded(),
        Policy::embedded(),
        run_dir.to_owned(),
        bin_dir.to_owned(),
    )
}
