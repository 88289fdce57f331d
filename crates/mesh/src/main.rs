//! `interlock-mesh`: renders the mesh's configuration, writes a local run,
//! tells scripts the mesh's facts, and probes a service's health.
//!
//! ```text
//! interlock-mesh generate --run-dir DIR --bin-dir DIR --pg-admin-url URL [--sampling-ratio R]
//! interlock-mesh render [--write|--check]
//! interlock-mesh env [--target local|compose] [--run-dir DIR] [--bin-dir DIR]
//! interlock-mesh secrets --out DIR
//! interlock-mesh health SOCKET|HOST:PORT
//! interlock-mesh mail --to ADDRESS [--code] [--wait SECS]
//! ```

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use interlock_mesh::mesh::{DEFAULT_RUN_DIR, Target};
use interlock_mesh::setup::{self, write_private};
use interlock_mesh::topology::repository_mesh;
use interlock_mesh::{Mesh, envoy, orchestrator, render, secrets, services, spire};

const USAGE: &str = "usage: interlock-mesh generate --run-dir DIR --bin-dir DIR --pg-admin-url URL [--sampling-ratio R]
       interlock-mesh render [--write|--check]   (`compose` is the old name)
       interlock-mesh env [--target local|compose] [--run-dir DIR] [--bin-dir DIR]
       interlock-mesh secrets --out DIR          (compose's secrets)
       interlock-mesh health SOCKET|HOST:PORT
       interlock-mesh mail --to ADDRESS [--code] [--wait SECS]
                                                 (the newest mail the local SMTP server got for ADDRESS)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate(&args[1..]).await,
        Some("health") if args.len() == 2 => health(&args[1]).await,
        Some("render" | "compose") => render_files(args.get(1).map(String::as_str)),
        Some("env") => env(&args[1..]),
        Some("secrets") => compose_secrets(&args[1..]),
        Some("mail") => mail(&args[1..]),
        _ => Err(anyhow::anyhow!(USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interlock-mesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn required(args: &[String], name: &str) -> anyhow::Result<String> {
    flag(args, name).ok_or_else(|| anyhow::anyhow!("missing {name}\n{USAGE}"))
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
    let run_dir = PathBuf::from(required(args, "--run-dir")?);
    let bin_dir = PathBuf::from(required(args, "--bin-dir")?);
    let admin_url = required(args, "--pg-admin-url")?;
    let mut mesh = repository_mesh(&run_dir, &bin_dir)?;
    // The bench runs the mesh at more than one ratio (scripts/bench.sh).
    if let Some(ratio) = flag(args, "--sampling-ratio") {
        let ratio: f64 = ratio
            .parse()
            .map_err(|_| anyhow::anyhow!("--sampling-ratio {ratio:?}: not a number"))?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&ratio),
            "--sampling-ratio {ratio}: must be 0.0 to 1.0"
        );
        mesh.topology.tracing.sampling_ratio = ratio;
    }

    dir(&run_dir, 0o755, None)?;
    dir(&mesh.log_dir(), 0o755, None)?;
    dir(&run_dir.join("config"), 0o755, None)?;
    let store = run_dir.join("secrets");
    let secrets = secrets::load(&mesh, &store, 0o600)?;
    let account = secrets::fcm_service_account(&store, 0o600)?;
    setup::databases(&mesh, &admin_url, &secrets).await?;

    // SPIRE: fresh state on every generate (a new CA, new entries).
    let spire_dir = mesh.spire_dir();
    if spire_dir.exists() {
        fs::remove_dir_all(&spire_dir)?;
    }
    for private in [
        mesh.spire_server_data(),
        parent(&mesh.server_socket()),
        mesh.spire_agent_data(),
        // The join token: root only.
        parent(&mesh.join_token_file()),
    ] {
        dir(&private, 0o700, None)?;
    }
    dir(&parent(&mesh.agent_socket()), 0o755, None)?;
    // The supervisor's API socket: root only.
    dir(&parent(&mesh.control_socket()), 0o700, None)?;
    write_private(
        &mesh.spire_file("server.conf"),
        &spire::server_conf(&mesh),
        0o644,
    )?;
    write_private(
        &mesh.spire_file("agent.conf"),
        &spire::agent_conf(&mesh),
        0o644,
    )?;
    write_private(
        &mesh.spire_file("bootstrap.sh"),
        &spire::bootstrap_script(&mesh),
        0o755,
    )?;

    // The edge.
    dir(&mesh.edge_dir(), 0o700, None)?;
    if secrets::edge_tls(&mesh.edge_dir(), &store, 0o600)? == secrets::EdgeCert::Issued {
        println!(
            "edge certificate issued, valid {} days",
            secrets::EDGE_CERT_DAYS
        );
    }
    fs::copy(mesh.edge_dir().join("ca.pem"), run_dir.join("edge-ca.pem"))?;
    write_private(
        &mesh.envoy_config("edge"),
        &envoy::yaml(&mesh, &envoy::edge(&mesh)),
        0o600,
    )?;
    chown(&mesh.edge_dir(), &Mesh::unix_user("edge"))?;

    // One private directory per workload: sidecar config, service config,
    // the service's socket and its egress socket.
    for w in mesh.workloads() {
        let wd = mesh.workload_dir(w);
        dir(&wd, 0o700, None)?;
        write_private(
            &mesh.envoy_config(w),
            &envoy::yaml(&mesh, &envoy::sidecar(&mesh, w)),
            0o600,
        )?;
        write_private(
            &mesh.service_config(w),
            &services::config(&mesh, w, Some(&secrets)),
            0o600,
        )?;
        if mesh.workload(w).fcm {
            fs::copy(&account, mesh.service_account_file(w))?;
        }
        chown(&wd, &Mesh::unix_user(w))?;
    }
    let jaeger = include_str!("../../../observability/jaeger-local.yaml");
    write_private(&mesh.config_path("jaeger.yaml"), jaeger, 0o644)?;
    write_private(
        &run_dir.join("process-compose.yaml"),
        &orchestrator::yaml(&mesh),
        0o644,
    )?;
    println!("mesh configuration written to {}", run_dir.display());
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_owned).unwrap_or_default()
}

/// The mesh's facts as shell assignments (see `interlock_mesh::env`).
fn env(args: &[String]) -> anyhow::Result<()> {
    let run_dir = PathBuf::from(flag(args, "--run-dir").unwrap_or_else(|| DEFAULT_RUN_DIR.into()));
    let bin_dir = flag(args, "--bin-dir").map_or_else(|| run_dir.join("bin"), PathBuf::from);
    let target = match flag(args, "--target").as_deref() {
        None | Some("local") => Target::Local,
        Some("compose") => Target::Compose,
        Some(other) => anyhow::bail!("unknown target {other}\n{USAGE}"),
    };
    let mesh = repository_mesh(&run_dir, &bin_dir)?.for_target(target);
    print!("{}", interlock_mesh::env::assignments(&mesh));
    Ok(())
}

/// Compose's secrets into `--out` (deploy/compose/init-secrets.sh).
fn compose_secrets(args: &[String]) -> anyhow::Result<()> {
    let out = PathBuf::from(required(args, "--out")?);
    let mesh = repository_mesh(&out, &out)?;
    secrets::write_compose(&mesh, &out)?;
    println!("secrets ready in {}", out.display());
    Ok(())
}

/// Writes (or checks) every committed rendered file (`envoy/`, `spire/`,
/// compose.yaml, deploy/compose/config/).
fn render_files(mode: Option<&str>) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    let mesh = repository_mesh(Path::new(DEFAULT_RUN_DIR), Path::new(DEFAULT_RUN_DIR))?;
    let files = render::files(&mesh);
    match mode {
        Some("--write") => {
            let changed = render::write(&root, &files)?;
            println!("{} file(s) written or removed", changed.len());
        }
        None | Some("--check") => {
            let stale = render::stale(&root, &files);
            anyhow::ensure!(
                stale.is_empty(),
                "out of date (run `interlock-mesh render --write`): {}",
                stale.join(", ")
            );
            println!("rendered files are up to date");
        }
        Some(other) => anyhow::bail!("unknown option {other}\n{USAGE}"),
    }
    Ok(())
}

/// The newest message the local SMTP server delivered to `--to` (waiting
/// up to `--wait` seconds, 30 by default, for one): its text part, or with
/// `--code` only the code in it.
fn mail(args: &[String]) -> anyhow::Result<()> {
    let to = required(args, "--to")?;
    let wait = match flag(args, "--wait") {
        Some(secs) => secs
            .parse()
            .map_err(|_| anyhow::anyhow!("--wait {secs:?}: not a number of seconds"))?,
        None => 30,
    };
    let mesh = repository_mesh(Path::new(DEFAULT_RUN_DIR), Path::new(DEFAULT_RUN_DIR))?;
    let mails = interlock_mesh::mail::wait_for(
        &mesh.maildir(),
        &to,
        1,
        std::time::Duration::from_secs(wait),
    )
    .map_err(anyhow::Error::msg)?;
    let newest = mails.last().expect("wait_for returns at least one");
    if args.iter().any(|a| a == "--code") {
        let code = newest
            .code()
            .ok_or_else(|| anyhow::anyhow!("the newest mail to {to} has no code"))?;
        println!("{code}");
    } else {
        println!("Subject: {}\n\n{}", newest.subject, newest.text);
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
