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
        _ => Err(anyhow::anyhow!(
            "usage: interlock-mesh generate --run-dir DIR --bin-dir DIR --pg-admin-url URL\n       interlock-mesh health SOCKET"
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

async fn health(socket: &str) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = interlock_common::client::channel(
        &format!("unix:{socket}"),
        interlock_common::client::Outbound::default(),
    )
    .map_err(anyhow::Error::msg)?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    anyhow::ensure!(resp.into_inner().status == 1, "not serving");
    Ok(())
}
