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
pub mod jaeger;
pub mod logs;
pub mod probe;
pub mod signing;

pub use admin::admin_token;
pub use probe::{ProbeEnvoy, admin_get, curl_unix};

/// The local mesh under test (`INTERLOCK_RUN_DIR`).
pub fn mesh() -> Mesh {
    let run = std::env::var("INTERLOCK_RUN_DIR")
        .expect("INTERLOCK_RUN_DIR is not set: run the end-to-end tests through scripts/test.sh");
    let run = PathBuf::from(run);
    repository_mesh(&run, &run.join("bin")).expect("repository mesh")
}

/// The deployment under test: the local mesh or the compose stack,
/// chosen by `INTERLOCK_E2E_TARGET` (`local`, the default, or `compose`).
/// The suite in `tests/e2e` runs against either; `tests/e2e_local` and
/// `tests/e2e_compose` hold what only one of them has.
pub fn target() -> Target {
    match std::env::var("INTERLOCK_E2E_TARGET").as_deref() {
        Ok("compose") => Target::Compose(Compose::from_env()),
        Ok("local") | Err(_) => Target::Local(mesh()),
        Ok(other) => panic!("INTERLOCK_E2E_TARGET={other}: expected local or compose"),
    }
}

/// Where the suite's tests reach the deployment.
pub enum Target {
    /// `scripts/mesh.sh up`: processes on this machine, Unix sockets.
    Local(Mesh),
    /// `scripts/compose-e2e.sh up`: containers on the project's engine.
    Compose(Compose),
}

impl Target {
    /// The mesh as this target renders it (ports, identities, topology).
    pub fn mesh(&self) -> &Mesh {
        match self {
            Target::Local(mesh) => mesh,
            Target::Compose(compose) => &compose.mesh,
        }
    }

    /// The local mesh, for the tests only it has (Unix users, the
    /// supervisor, SPIRE's short local TTL).
    pub fn local(&self) -> &Mesh {
        match self {
            Target::Local(mesh) => mesh,
            Target::Compose(_) => panic!("a local-mesh test run against compose"),
        }
    }

    /// The compose stack, for the container-only tests.
    pub fn compose(&self) -> &Compose {
        match self {
            Target::Compose(compose) => compose,
            Target::Local(_) => panic!("a compose test run against the local mesh"),
        }
    }

    /// The edge's port on this machine's loopback.
    pub fn edge_port(&self) -> u16 {
        match self {
            Target::Local(mesh) => mesh.topology.edge.port,
            Target::Compose(compose) => compose.edge_port,
        }
    }

    pub fn edge_addr(&self) -> String {
        format!("localhost:{}", self.edge_port())
    }

    /// The CA the edge's certificate chains to (made at set-up).
    pub fn edge_ca(&self) -> PathBuf {
        match self {
            Target::Local(mesh) => mesh.run_dir.join("edge-ca.pem"),
            Target::Compose(compose) => compose.secrets().join("edge").join("ca.pem"),
        }
    }

    /// Jaeger's query API, e.g. `http://localhost:16686`.
    pub fn jaeger(&self) -> String {
        match self {
            Target::Local(mesh) => format!("http://localhost:{}", mesh.topology.tracing.query_port),
            Target::Compose(compose) => format!("http://127.0.0.1:{}", compose.jaeger_port),
        }
    }

    /// A gRPC channel that leaves through `workload`'s egress sidecar, so
    /// peers see `workload`'s SVID: its egress socket locally; in compose
    /// the egress listener on loopback inside the workload's network
    /// namespace.
    pub fn egress(&self, workload: &str) -> Channel {
        match self {
            Target::Local(mesh) => interlock_common::client::plain_channel(&format!(
                "unix:{}",
                mesh.egress_socket(workload).display()
            ))
            .expect("egress channel"),
            Target::Compose(compose) => compose.egress(workload),
        }
    }

    /// The real grpcurl calling `method` through `workload`'s egress
    /// sidecar (plaintext to the sidecar, which adds mTLS), with the
    /// repository's protos (internal services have no reflection).
    pub fn grpcurl_as(&self, workload: &str, proto: &str, data: &str, method: &str) -> Output {
        let protos = repository_root().join("proto");
        let (mut cmd, addr) = match self {
            Target::Local(mesh) => (
                Command::new(tool("grpcurl")),
                format!("unix://{}", mesh.egress_socket(workload).display()),
            ),
            Target::Compose(compose) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net=/proc/{}/ns/net", compose.pid(workload)))
                    .arg("--")
                    .arg(tool("grpcurl"));
                (cmd, format!("127.0.0.1:{}", compose.egress_port()))
            }
        };
        cmd.arg("-plaintext")
            .arg("-import-path")
            .arg(protos)
            .args(["-proto", proto, "-d", data])
            .arg(addr)
            .arg(method)
            .output()
            .expect("run grpcurl")
    }

    /// What the local FCM server received (its test hook `GET
    /// /control/received`, on a control socket only root can open: in the
    /// run directory locally, inside fcm-local's container in compose).
    pub async fn fcm_received(&self) -> Result<serde_json::Value, i32> {
        let socket = match self {
            Target::Local(mesh) => mesh.fcm_control_socket(),
            Target::Compose(compose) => PathBuf::from(format!(
                "/proc/{}/root{}",
                compose.pid("fcm-local"),
                interlock_mesh::compose::FCM_CONTROL_SOCKET
            )),
        };
        let (_, body) = curl_unix(None, &socket, "GET", "/control/received").await?;
        Ok(serde_json::from_str(&body).expect("the local FCM server's JSON"))
    }

    /// The SMTP server's Maildir: the local Postfix's, or the one in the
    /// `smtp` container's volume (through its root, as root).
    pub fn maildir(&self) -> PathBuf {
        match self {
            Target::Local(mesh) => mesh.maildir(),
            Target::Compose(compose) => PathBuf::from(format!(
                "/proc/{}/root{}",
                compose.pid("smtp"),
                interlock_mesh::compose::SMTP_MAILDIR
            )),
        }
    }
}

/// The compose stack (project `interlock` of the repository's
/// compose.yaml) on the engine of scripts/docker.sh.
pub struct Compose {
    pub mesh: Mesh,
    edge_port: u16,
    jaeger_port: u16,
}

impl Compose {
    /// From what `scripts/compose-e2e.sh env` exports (DOCKER_HOST,
    /// DOCKER_CONFIG, the image variables, the published ports).
    fn from_env() -> Self {
        let port = |var: &str| -> u16 {
            std::env::var(var)
                .unwrap_or_else(|_| {
                    panic!("{var} is not set: eval \"$(bash scripts/compose-e2e.sh env)\"")
                })
                .parse()
                .unwrap_or_else(|e| panic!("{var}: {e}"))
        };
        let unused = std::env::temp_dir();
        let mesh = repository_mesh(&unused, &unused)
            .expect("repository mesh")
            .for_compose();
        Self {
            mesh,
            edge_port: port("INTERLOCK_EDGE_PORT"),
            jaeger_port: port("INTERLOCK_JAEGER_PORT"),
        }
    }

    /// Where compose-e2e.sh wrote the stack's secrets (root-only, outside
    /// git).
    pub fn secrets(&self) -> PathBuf {
        repository_root().join("deploy/compose/secrets")
    }

    fn egress_port(&self) -> u16 {
        self.mesh.topology.targets.compose.egress_port
    }

    /// The container of compose service `service` (one replica).
    pub fn container(service: &str) -> String {
        format!("interlock-{service}-1")
    }

    /// `docker` with the engine of scripts/docker.sh (from the
    /// environment).
    pub fn docker(&self) -> Command {
        Command::new(if std::path::Path::new("/usr/bin/docker").exists() {
            "/usr/bin/docker"
        } else {
            "docker"
        })
    }

    /// `docker compose` on the repository's compose.yaml, with the local
    /// FCM server's profile.
    pub fn compose(&self) -> Command {
        let mut cmd = self.docker();
        cmd.current_dir(repository_root())
            .args(["compose", "--profile", "fcm-local"]);
        cmd
    }

    /// Runs `cmd`, panicking with its stderr when it fails; its stdout.
    pub fn run(&self, mut cmd: Command) -> String {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The host pid of `service`'s main process (for its namespaces).
    pub fn pid(&self, service: &str) -> u32 {
        let mut cmd = self.docker();
        cmd.args(["inspect", "-f", "{{.State.Pid}}", &Self::container(service)]);
        let pid: u32 = self.run(cmd).trim().parse().expect("a pid");
        assert!(pid > 0, "{service} is not running");
        pid
    }

    /// A channel to `workload`'s egress listener: each connection is a
    /// TCP socket opened inside the workload's network namespace (a socket
    /// stays in the namespace it was made in).
    fn egress(&self, workload: &str) -> Channel {
        let netns = PathBuf::from(format!("/proc/{}/ns/net", self.pid(workload)));
        let port = self.egress_port();
        Endpoint::from_static("http://localhost")
            .timeout(Duration::from_secs(20))
            .connect_with_connector_lazy(tower::service_fn(move |_: tonic::transport::Uri| {
                let netns = netns.clone();
                async move {
                    let stream = tokio::task::spawn_blocking(move || connect_in(&netns, port))
                        .await
                        .map_err(std::io::Error::other)??;
                    stream.set_nonblocking(true)?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::TcpStream::from_std(stream)?,
                    ))
                }
            }))
    }
}

/// Connects to 127.0.0.1:`port` in the network namespace `netns`, from a
/// thread of its own that enters it and then ends.
fn connect_in(netns: &std::path::Path, port: u16) -> std::io::Result<std::net::TcpStream> {
    let ns = std::fs::File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            std::net::TcpStream::connect(("127.0.0.1", port))
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    })
}

/// The repository (compose.yaml, proto/).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A TLS channel to the edge, trusting the deployment's edge CA.
pub async fn edge_channel(target: &Target) -> Channel {
    edge_channel_with(target, None).await
}

/// The same from a given loopback source address (the edge keys its rate
/// limits by client address, so a test can have a bucket of its own).
pub async fn edge_channel_from(target: &Target, source: std::net::IpAddr) -> Channel {
    edge_channel_with(target, Some(source)).await
}

async fn edge_channel_with(target: &Target, source: Option<std::net::IpAddr>) -> Channel {
    let ca = std::fs::read(target.edge_ca()).expect("edge CA");
    // From a chosen IPv4 source, connect to the edge's IPv4 address.
    let addr = match source {
        Some(_) => format!("127.0.0.1:{}", target.edge_port()),
        None => target.edge_addr(),
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
pub async fn edge(target: &Target, token: Option<&str>) -> Client {
    let caller = match token {
        Some(t) => Caller::default().with_token(t),
        None => Caller::default(),
    };
    caller.over(edge_channel(target).await)
}

/// Runs the real grpcurl against the edge. `args` come before the address.
pub fn grpcurl(target: &Target, args: &[&str], method: &str) -> Output {
    let mut cmd = Command::new(tool("grpcurl"));
    cmd.arg("-cacert").arg(target.edge_ca());
    cmd.args(args).arg(target.edge_addr());
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
pub async fn register_and_login(
    target: &Target,
    login: &str,
) -> interlock_proto::auth::v1::TokenPair {
    register_and_login_over(target, edge(target, None).await, login).await
}

/// [`register_and_login`] over `client` (a connection to the edge from a
/// chosen client address: the edge and auth limit public calls per
/// address).
pub async fn register_and_login_over(
    target: &Target,
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
        confirm_email_over(target, client, login, PASSWORD).await;
    }
    auth.login(login_request(login, PASSWORD))
        .await
        .unwrap_or_else(|s| panic!("log {login} in: {s:?}"))
        .into_inner()
}

/// Confirms the address of `login` (registered as `<login>@example.com`)
/// with the newest code mailed to it.
pub async fn confirm_email(target: &Target, login: &str, password: &str) {
    confirm_email_over(target, edge(target, None).await, login, password).await;
}

async fn confirm_email_over(target: &Target, client: Client, login: &str, password: &str) {
    use interlock_proto::auth::v1::ConfirmEmailRequest;
    use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
    let mails = wait_for_mail(target, &format!("{login}@example.com"), 1).await;
    let code = mails
        .last()
        .and_then(interlock_mesh::mail::Mail::code)
        .expect("a code in the mail");
    AuthServiceClient::new(client)
        .confirm_email(ConfirmEmailRequest {
            login_or_email: login.into(),
            code,
            password: password.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("confirm {login}: {s:?}"));
}

/// Every message to `to` in the local SMTP server's Maildir once there are
/// `n`, oldest first (at most 30 s).
pub async fn wait_for_mail(target: &Target, to: &str, n: usize) -> Vec<interlock_mesh::mail::Mail> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = interlock_mesh::mail::messages_to(&target.maildir(), to);
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} message(s) to {to} in {} after 30 s, expected {n}",
            found.len(),
            target.maildir().display()
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
