//! Harness for the end-to-end tests: the running mesh's paths and ports
//! (from the same topology that generated it), TLS clients to the edge,
//! grpcurl, and running programs as a workload's Unix user.
//!
//! - [`admin`]: the suite's admin, made once with `bootstrap-admin`.
//! - [`probe`]: an Envoy run as a workload's user that asks SPIRE for an
//!   identity; Envoy admin requests over Unix sockets.
//! - [`signing`]: tokens signed with auth's real key (to prove expiry).
//! - [`logs`]: the supervisor's per-process logs, read from a mark on.
//!
//! Waiting, status assertions, the request [`Caller`] and
//! `register_and_login` are the shared kit's (`interlock_testkit`).
//!
//! The mesh must be up (`scripts/mesh.sh up`, done by `scripts/test.sh`);
//! the tests run as root on its machine.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use interlock_mesh::Mesh;
use interlock_mesh::topology::repository_mesh;
use interlock_testkit::{Caller, Client};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub mod admin;
pub mod logs;
pub mod probe;
pub mod signing;

pub use admin::admin_token;
pub use probe::{ProbeEnvoy, admin_get, curl_unix};

/// The mesh under test.
pub fn mesh() -> Mesh {
    let run = std::env::var("INTERLOCK_RUN_DIR")
        .expect("INTERLOCK_RUN_DIR is not set: run the end-to-end tests through scripts/test.sh");
    let run = PathBuf::from(run);
    repository_mesh(&run, &run.join("bin")).expect("repository mesh")
}

pub fn edge_addr(mesh: &Mesh) -> String {
    format!("localhost:{}", mesh.topology.edge.port)
}

/// A TLS channel to the edge, trusting the mesh's local edge CA.
pub async fn edge_channel(mesh: &Mesh) -> Channel {
    edge_channel_with(mesh, None).await
}

/// The same from a given loopback source address (the edge keys its rate
/// limits by client address, so a test can have a bucket of its own).
pub async fn edge_channel_from(mesh: &Mesh, source: std::net::IpAddr) -> Channel {
    edge_channel_with(mesh, Some(source)).await
}

async fn edge_channel_with(mesh: &Mesh, source: Option<std::net::IpAddr>) -> Channel {
    let ca = std::fs::read(mesh.run_dir.join("edge-ca.pem")).expect("edge CA");
    // From a chosen IPv4 source, connect to the edge's IPv4 address.
    let addr = match source {
        Some(_) => format!("127.0.0.1:{}", mesh.topology.edge.port),
        None => edge_addr(mesh),
    };
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .local_address(source)
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )
        .expect("tls")
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect to the edge")
}

/// A client of the edge, with the user's token when one is given.
pub async fn edge(mesh: &Mesh, token: Option<&str>) -> Client {
    let caller = match token {
        Some(t) => Caller::default().with_token(t),
        None => Caller::default(),
    };
    caller.over(edge_channel(mesh).await)
}

/// Runs the real grpcurl against the edge. `args` come before the address.
pub fn grpcurl(mesh: &Mesh, args: &[&str], method: &str) -> Output {
    let mut cmd = Command::new(tool("grpcurl"));
    cmd.arg("-cacert").arg(mesh.run_dir.join("edge-ca.pem"));
    cmd.args(args).arg(edge_addr(mesh));
    if !method.is_empty() {
        cmd.arg(method);
    }
    cmd.output().expect("run grpcurl")
}

/// A tool installed by scripts/install-tools.sh.
pub fn tool(name: &str) -> PathBuf {
    let cache = std::env::var("INTERLOCK_CACHE").expect("INTERLOCK_CACHE (set by scripts/lib.sh)");
    PathBuf::from(cache).join("tools").join("bin").join(name)
}

/// Runs `program args` as `workload`'s Unix user.
pub fn as_workload(workload: &str, program: &std::path::Path, args: &[&str]) -> Command {
    let user = Mesh::unix_user(workload);
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .arg("--init-groups")
        .arg("--")
        .arg(program)
        .args(args);
    cmd
}

/// A fresh user with a session, through the edge.
pub async fn register_and_login(mesh: &Mesh, login: &str) -> interlock_proto::auth::v1::TokenPair {
    interlock_testkit::register_and_login(edge(mesh, None).await, login).await
}

/// A unique login for a test user (the mesh's databases outlive a run).
pub fn unique_login(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
