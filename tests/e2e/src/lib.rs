//! Harness for the end-to-end tests: the running mesh's paths and ports
//! (from the same topology that generated it), TLS clients to the edge,
//! grpcurl, and running programs as a workload's Unix user.
//!
//! The mesh must be up (`scripts/mesh.sh up`, done by `scripts/test.sh`).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use interlock_mesh::Mesh;
use interlock_mesh::topology::repository_mesh;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

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

/// Adds `authorization: Bearer <token>` when a token is set.
#[derive(Clone, Default)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {t}")).expect("ascii"),
            );
        }
        Ok(req)
    }
}

pub type EdgeClient = InterceptedService<Channel, Bearer>;

/// A client of the edge with an optional token.
pub async fn edge(mesh: &Mesh, token: Option<&str>) -> EdgeClient {
    InterceptedService::new(edge_channel(mesh).await, Bearer(token.map(str::to_owned)))
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

/// A unique login for a test user.
pub fn unique_login(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// The credentials of the e2e admin, kept in the run's secrets: created
/// (register + `interlock-roles bootstrap-admin`) on first use.
pub async fn admin_token(mesh: &Mesh) -> String {
    use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
    use interlock_proto::auth::v1::{LoginRequest, RegisterRequest};
    let file = mesh.run_dir.join("secrets").join("e2e-admin");
    let creds = std::fs::read_to_string(&file).ok();
    let (login, password) = match creds.as_deref().and_then(|c| c.trim().split_once(':')) {
        Some((l, p)) => (l.to_owned(), p.to_owned()),
        None => {
            let login = unique_login("e2eadmin");
            let password = uuid::Uuid::new_v4().simple().to_string();
            let id = AuthServiceClient::new(edge(mesh, None).await)
                .register(RegisterRequest {
                    login: login.clone(),
                    email: format!("{login}@example.com"),
                    password: password.clone(),
                    first_name: "E2E".into(),
                    last_name: "Admin".into(),
                })
                .await
                .expect("register the e2e admin")
                .into_inner()
                .user_id;
            bootstrap_admin(mesh, &id).await;
            std::fs::write(&file, format!("{login}:{password}")).expect("save e2e admin");
            (login, password)
        }
    };
    AuthServiceClient::new(edge(mesh, None).await)
        .login(LoginRequest {
            login_or_email: login,
            password,
        })
        .await
        .expect("e2e admin logs in")
        .into_inner()
        .access_token
}

/// Makes `user_id` an admin with the documented bootstrap command, run as
/// the roles workload with its own configuration. If an admin made by hand
/// already exists, the bootstrap refuses (as designed) and the test grants
/// the role through the database as the cluster superuser.
async fn bootstrap_admin(mesh: &Mesh, user_id: &str) {
    let out = as_workload(
        "roles",
        &mesh.bin("interlock-roles"),
        &["bootstrap-admin", user_id],
    )
    .env(
        "INTERLOCK_CONFIG",
        mesh.workload_dir("roles").join("config.toml"),
    )
    .output()
    .expect("run bootstrap-admin");
    if out.status.success() {
        return;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("an admin already exists"),
        "bootstrap-admin failed: {stderr}"
    );
    let admin = std::env::var("INTERLOCK_TEST_PG_URL").expect("INTERLOCK_TEST_PG_URL");
    let (server, _) = admin.rsplit_once('/').expect("url");
    let pool = sqlx::PgPool::connect(&format!("{server}/interlock_roles"))
        .await
        .expect("roles db");
    sqlx::query("INSERT INTO role_assignments (user_id, role, granted_by) VALUES ($1::uuid, 'admin', 'e2e') ON CONFLICT DO NOTHING")
        .bind(user_id)
        .execute(&pool)
        .await
        .expect("grant admin");
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// An Envoy run as `workload`'s Unix user that asks the SPIRE agent (SDS)
/// for the certificate of `requested_id` and forwards a local port to
/// `target`'s sidecar with it. Killed on drop.
pub struct ProbeEnvoy {
    child: std::process::Child,
    pub listen_port: u16,
    pub admin_socket: PathBuf,
    _dir: PathBuf,
}

impl ProbeEnvoy {
    pub fn start(mesh: &Mesh, workload: &str, requested_id: &str, target: &str) -> Self {
        let listen_port = free_port();
        let dir =
            std::env::temp_dir().join(format!("interlock-probe-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let admin_socket = dir.join("admin.sock");
        let config = interlock_mesh::envoy::forwarder(
            mesh,
            &format!("probe-{workload}"),
            requested_id,
            target,
            listen_port,
            &admin_socket,
        );
        let path = dir.join("envoy.json");
        std::fs::write(&path, config.to_string()).expect("config");
        let mode = |p: &std::path::Path, m: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
        };
        // The probe's own user creates its admin socket here.
        mode(&dir, 0o700);
        mode(&path, 0o600);
        let user = Mesh::unix_user(workload);
        let chowned = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:{user}"))
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(chowned.success(), "chown the probe's directory");
        let child = as_workload(
            workload,
            &mesh.bin("envoy"),
            &[
                "-c",
                path.to_str().expect("utf8"),
                "--disable-hot-restart",
                "--log-level",
                "error",
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start probe envoy");
        Self {
            child,
            listen_port,
            admin_socket,
            _dir: dir,
        }
    }

    /// A gRPC channel into the probe (plain HTTP/2 to its listener).
    pub fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://127.0.0.1:{}", self.listen_port))
            .expect("endpoint")
            .connect_lazy()
    }

    /// Envoy's `/certs`: the certificates it holds right now (empty if its
    /// admin is not up yet).
    pub async fn certs(&self) -> String {
        admin_get(&self.admin_socket, "/certs").await
    }
}

/// GET on an Envoy admin socket (these tests run as root, which may open
/// every workload's socket); empty on any failure.
pub async fn admin_get(socket: &std::path::Path, path: &str) -> String {
    curl_unix(None, socket, "GET", path)
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// An HTTP request over a Unix socket with the real curl, optionally as a
/// workload's Unix user: `Ok((HTTP status, body))`, or `Err(curl's exit
/// code)` when it could not even connect (7: refused, e.g. no permission).
pub async fn curl_unix(
    as_user: Option<&str>,
    socket: &std::path::Path,
    method: &str,
    path: &str,
) -> Result<(u16, String), i32> {
    let socket_arg = socket.to_str().expect("utf8 path").to_owned();
    let url = format!("http://localhost{path}");
    let args = [
        "-s",
        "--max-time",
        "5",
        "-X",
        method,
        "-w",
        "\\n%{http_code}",
        "--unix-socket",
        &socket_arg,
        &url,
    ];
    let mut cmd = match as_user {
        Some(w) => as_workload(w, std::path::Path::new("curl"), &args),
        None => {
            let mut c = Command::new("curl");
            c.args(args);
            c
        }
    };
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run curl");
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_owned()))
}

impl Drop for ProbeEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Calls `attempt` until it returns `Some`, every 300 ms, for at most 30 s
/// (a probe Envoy needs a moment to get its SVID from SPIRE).
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(last) if std::time::Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}
