//! `interlock-mesh`: writes the local mesh's configuration, and probes a
//! service's health over its Unix socket.
//!
//! ```text
//! interlock-mesh generate --run-dir DIR --bin-dir DIR --pg-admin-url URL
//! interlock-mesh health /path/to/grpc.sock
//! ```

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use interlock_mesh::setup::{self, write_private};
use interlock_mesh::topology::repository_mesh;
use interlock_mesh::{Mesh, envoy, orchestrator, services, spire};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate(&args[1..]).await,
        Some("health") if args.len() == 2 => health(&args[1]).await,
        Some("compose") => compose(args.get(1).map(String::as_str)),
        Some("certs") if args.len() == 3 && args[1] == "--out" => certs(Path::new(&args[2])),
        _ => Err(anyhow::anyhow!(
            "usage: interlock-mesh generate --run-dir DIR --bin-dir DIR --pg-admin-url URL\n       interlock-mesh health SOCKET|HOST:PORT\n       interlock-mesh compose [--write|--check]"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interlock-mesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> anyhow::Result<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("missing {name}"))
}

fn dir(path: &Path, mode: u32, owner: Option<&str>) -> anyhow::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    if let Some(user) = owner {
        chown(path, user)?;
    }
    Ok(())
}

fn chown(path: &Path, user: &str) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "chown {} to {user} failed",
        path.display()
    );
    Ok(())
}

async fn generate(args: &[String]) -> anyhow::Result<()> {
    let run_dir = PathBuf::from(flag(args, "--run-dir")?);
    let bin_dir = PathBuf::from(flag(args, "--bin-dir")?);
    let admin_url = flag(args, "--pg-admin-url")?;
    let mesh = repository_mesh(&run_dir, &bin_dir)?;

    dir(&run_dir, 0o755, None)?;
    dir(&run_dir.join("logs"), 0o755, None)?;
    dir(&run_dir.join("config"), 0o755, None)?;
    let secrets = setup::secrets(&mesh)?;
    let account = setup::fcm_service_account(&mesh)?;
    setup::databases(&mesh, &admin_url, &secrets).await?;

    // SPIRE: fresh state on every generate (a new CA, new entries).
    let spire_dir = mesh.spire_dir();
    if spire_dir.exists() {
        fs::remove_dir_all(&spire_dir)?;
    }
    dir(&spire_dir.join("server").join("data"), 0o700, None)?;
    dir(&spire_dir.join("server").join("private"), 0o700, None)?;
    dir(&spire_dir.join("agent").join("data"), 0o700, None)?;
    dir(&spire_dir.join("agent").join("public"), 0o755, None)?;
    if let Some(join) = mesh.join_token_file().parent() {
        dir(join, 0o700, None)?;
    }
    // The supervisor's API socket: root only.
    if let Some(control) = mesh.control_socket().parent() {
        dir(control, 0o700, None)?;
    }
    write_private(
        &spire_dir.join("server.conf"),
        &spire::server_conf(&mesh),
        0o644,
    )?;
    write_private(
        &spire_dir.join("agent.conf"),
        &spire::agent_conf(&mesh),
        0o644,
    )?;
    write_private(
        &spire_dir.join("bootstrap.sh"),
        &spire::bootstrap_script(&mesh),
        0o755,
    )?;

    // The edge.
    dir(&mesh.edge_dir(), 0o700, None)?;
    setup::edge_tls(&mesh)?;
    fs::copy(mesh.edge_dir().join("ca.pem"), run_dir.join("edge-ca.pem"))?;
    write_private(
        &mesh.edge_dir().join("envoy.json"),
        &pretty(&envoy::edge(&mesh))?,
        0o600,
    )?;
    chown(&mesh.edge_dir(), &Mesh::unix_user("edge"))?;

    // One private directory per workload: sidecar config, service config,
    // the service's socket and its egress socket.
    for w in mesh.workloads() {
        let wd = mesh.workload_dir(w);
        dir(&wd, 0o700, None)?;
        write_private(
            &wd.join("envoy.json"),
            &pretty(&envoy::sidecar(&mesh, w))?,
            0o600,
        )?;
        write_private(
            &wd.join("config.toml"),
            &services::config(&mesh, w, &secrets),
            0o600,
        )?;
        if w == "sender" {
            fs::copy(&account, wd.join("service-account.json"))?;
        }
        chown(&wd, &Mesh::unix_user(w))?;
    }
    let jaeger = include_str!("../../../observability/jaeger-local.yaml");
    write_private(&run_dir.join("config").join("jaeger.yaml"), jaeger, 0o644)?;
    write_private(
        &run_dir.join("process-compose.yaml"),
        &pretty(&orchestrator::project(&mesh))?,
        0o644,
    )?;
    println!("mesh configuration written to {}", run_dir.display());
    Ok(())
}

fn pretty(v: &serde_json::Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}

/// The edge's TLS files and the sender's service account, into `out`
/// (compose's secrets are made from these; see deploy/compose/init-secrets.sh).
fn certs(out: &Path) -> anyhow::Result<()> {
    let mesh = repository_mesh(out, out)?;
    fs::create_dir_all(mesh.edge_dir())?;
    setup::edge_tls(&mesh)?;
    setup::fcm_service_account(&mesh)?;
    Ok(())
}

/// Writes (or checks) compose.yaml and deploy/compose/ from the topology.
fn compose(mode: Option<&str>) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    let mesh = repository_mesh(Path::new("/unused"), Path::new("/unused"))?;
    let files = interlock_mesh::compose::files(&mesh);
    let mut stale = Vec::new();
    for (path, contents) in &files {
        let full = root.join(path);
        if fs::read_to_string(&full).ok().as_deref() != Some(contents.as_str()) {
            stale.push(path.clone());
            if mode == Some("--write") {
                if let Some(dir) = full.parent() {
                    fs::create_dir_all(dir)?;
                }
                fs::write(&full, contents)?;
            }
        }
    }
    match mode {
        Some("--write") => println!("{} file(s) written", stale.len()),
        _ if stale.is_empty() => println!("compose files are up to date"),
        _ => anyhow::bail!(
            "out of date (run `interlock-mesh compose --write`): {}",
            stale.join(", ")
        ),
    }
    Ok(())
}

/// Health of a service at a Unix socket path or `host:port`.
async fn health(target: &str) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let url = if target.starts_with('/') {
        format!("unix:{target}")
    } else {
        format!("http://{target}")
    };
    let channel =
        interlock_common::client::channel(&url, interlock_common::client::Outbound::default())
            .map_err(anyhow::Error::msg)?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    anyhow::ensure!(resp.into_inner().status == 1, "not serving");
    Ok(())
}
