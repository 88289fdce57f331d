//! A probe: an Envoy run as a workload's Unix user that asks the SPIRE
//! agent (SDS) for an identity and forwards a local port to a sidecar with
//! it — how the suite shows what SPIRE hands out and what a sidecar lets
//! in. And HTTP over Unix sockets, for Envoy's and the supervisor's admin
//! APIs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use interlock_mesh::Mesh;
use tonic::transport::{Channel, Endpoint};

use crate::as_workload;

/// A free TCP port on 127.0.0.1 (the probe's Envoy binds it itself).
fn free_port() -> u16 {
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
    dir: PathBuf,
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
        let mode = |p: &Path, m: u32| {
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start probe envoy");
        Self {
            child,
            listen_port,
            admin_socket,
            dir,
        }
    }

    /// The Envoy's process id (setpriv execs it): what the SPIRE agent
    /// attests, and names in its log.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

impl Drop for ProbeEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET on an Envoy admin socket (these tests run as root, which may open
/// every workload's socket); empty on any failure.
pub async fn admin_get(socket: &Path, path: &str) -> String {
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
    socket: &Path,
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
        Some(w) => as_workload(w, Path::new("curl"), &args),
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
