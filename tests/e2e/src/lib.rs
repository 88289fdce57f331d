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
//! the wait on a delivered email and `register_and_login` (which confirms
//! the address with the mailed code) are here; waiting and the status
//! assertion are the shared kit's (`interlock_testkit`).
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

/// A fresh user with a session, through the edge: registered, its email
/// address confirmed with the code the local SMTP server received (the
/// mesh requires it), logged in.
pub async fn register_and_login(mesh: &Mesh, login: &str) -> interlock_proto::auth::v1::TokenPair {
    register_and_login_over(mesh, edge(mesh, None).await, login).await
}

/// [`register_and_login`] over `client` (a connection to the edge from a
/// chosen client address: the edge and auth limit public calls per
/// address).
pub async fn register_and_login_over(
    mesh: &Mesh,
    client: Client,
    login: &str,
) -> interlock_proto::auth::v1::TokenPair {
    use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
    use interlock_testkit::{PASSWORD, login_request, register_request};
    let mut auth = AuthServiceClient::new(client.clone());
    let out = auth
        .register(register_request(login))
        .await
        .unwrap_or_else(|s| panic!("register {login}: {s:?}"))
        .into_inner();
    if out.email_verification_required {
        confirm_email_over(mesh, client, login).await;
    }
    auth.login(login_request(login, PASSWORD))
        .await
        .unwrap_or_else(|s| panic!("log {login} in: {s:?}"))
        .into_inner()
}

/// Confirms the address of `login` (registered as `<login>@example.com`)
/// with the newest code mailed to it.
pub async fn confirm_email(mesh: &Mesh, login: &str) {
    confirm_email_over(mesh, edge(mesh, None).await, login).await;
}

async fn confirm_email_over(mesh: &Mesh, client: Client, login: &str) {
    use interlock_proto::auth::v1::ConfirmEmailRequest;
    use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
    let mails = wait_for_mail(mesh, &format!("{login}@example.com"), 1).await;
    let code = mails
        .last()
        .and_then(interlock_mesh::mail::Mail::code)
        .expect("a code in the mail");
    AuthServiceClient::new(client)
        .confirm_email(ConfirmEmailRequest {
            login_or_email: login.into(),
            code,
        })
        .await
        .unwrap_or_else(|s| panic!("confirm {login}: {s:?}"));
}

/// Every message to `to` in the local SMTP server's Maildir once there are
/// `n`, oldest first (at most 30 s).
pub async fn wait_for_mail(mesh: &Mesh, to: &str, n: usize) -> Vec<interlock_mesh::mail::Mail> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = interlock_mesh::mail::messages_to(&mesh.maildir(), to);
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} message(s) to {to} in {} after 30 s, expected {n}",
            found.len(),
            mesh.maildir().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A unique login for a test user (the mesh's databases outlive a run).
pub fn unique_login(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
