//! The process-compose project (written as JSON, which is YAML) that starts
//! the mesh in dependency order with readiness checks:
//! SPIRE server -> bootstrap (entries, join token) -> agent -> sidecars and
//! services -> edge. PostgreSQL is started before, by scripts/postgres.sh.

use serde_json::{Value, json};

use crate::topology::Mesh;

const PROBE_FAILURES: u32 = 120;

fn probe(action: Value) -> Value {
    let mut p = json!({
        "initial_delay_seconds": 0,
        "period_seconds": 1,
        "timeout_seconds": 3,
        "success_threshold": 1,
        "failure_threshold": PROBE_FAILURES
    });
    if let (Some(p), Some(a)) = (p.as_object_mut(), action.as_object()) {
        p.extend(a.clone());
    }
    p
}

fn exec_probe(command: String) -> Value {
    probe(json!({ "exec": { "command": command } }))
}

/// Envoy's `/ready`, asked over its admin socket (root can open it).
fn admin_probe(socket: &std::path::Path) -> Value {
    exec_probe(format!(
        "curl -sf --max-time 2 --unix-socket {} http://localhost/ready",
        socket.display()
    ))
}

fn http_probe(port: u16, path: &str) -> Value {
    probe(
        json!({ "http_get": { "host": "127.0.0.1", "port": port, "path": path, "scheme": "http" } }),
    )
}

/// Runs `command` as the workload's Unix user (what SPIRE attests).
fn as_user(workload: &str, command: &str) -> String {
    let user = Mesh::unix_user(workload);
    format!("setpriv --reuid={user} --regid={user} --init-groups -- {command}")
}

fn process(
    mesh: &Mesh,
    name: &str,
    command: String,
    depends: Value,
    readiness: Option<Value>,
    restart: &str,
) -> Value {
    let mut p = json!({
        "command": command,
        "working_dir": mesh.run_dir,
        "log_location": mesh.run_dir.join("logs").join(format!("{name}.log")),
        // Per process: written line by line, as the process printed it.
        "log_configuration": { "flush_each_line": true, "disable_json": true, "no_metadata": true, "no_color": true },
        "depends_on": depends,
        "availability": { "restart": restart, "backoff_seconds": 1, "max_restarts": 5 },
        "shutdown": { "signal": 15, "timeout_seconds": 10 }
    });
    if let Some(r) = readiness {
        p["readiness_probe"] = r;
    }
    p
}

fn healthy(names: &[&str]) -> Value {
    let map: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| ((*n).to_owned(), json!({ "condition": "process_healthy" })))
        .collect();
    Value::Object(map)
}

/// Hot restart is not used (process-compose restarts Envoy), so it is
/// disabled: no shared-memory region that could collide between instances.
fn envoy_command(mesh: &Mesh, config: &std::path::Path) -> String {
    format!(
        "{} -c {} --disable-hot-restart --log-level warn --drain-time-s 5",
        mesh.bin("envoy").display(),
        config.display()
    )
}

pub fn project(mesh: &Mesh) -> Value {
    let spire = mesh.spire_dir();
    let server = mesh.bin("spire-server");
    let agent = mesh.bin("spire-agent");
    let mut processes = serde_json::Map::new();
    processes.insert(
        "spire-server".into(),
        process(
            mesh,
            "spire-server",
            format!(
                "{} run -config {}",
                server.display(),
                spire.join("server.conf").display()
            ),
            json!({}),
            Some(exec_probe(format!(
                "{} healthcheck -socketPath {}",
                server.display(),
                mesh.server_socket().display()
            ))),
            "on_failure",
        ),
    );
    processes.insert(
        "spire-bootstrap".into(),
        process(
            mesh,
            "spire-bootstrap",
            format!("sh {}", spire.join("bootstrap.sh").display()),
            healthy(&["spire-server"]),
            None,
            "no",
        ),
    );
    processes.insert(
        "spire-agent".into(),
        process(
            mesh,
            "spire-agent",
            // The single-use join token is read from a root-only file (never
            // the command line); once the agent has attested, the file is
            // gone and a restarted agent comes back on its stored SVID.
            format!(
                "sh -c 'if [ -s {token} ]; then exec {agent} run -config {conf} -joinTokenFile {token}; else exec {agent} run -config {conf}; fi'",
                agent = agent.display(),
                conf = spire.join("agent.conf").display(),
                token = mesh.join_token_file().display()
            ),
            json!({ "spire-bootstrap": { "condition": "process_completed_successfully" } }),
            Some(exec_probe(format!(
                "{} healthcheck -socketPath {}",
                agent.display(),
                mesh.agent_socket().display()
            ))),
            "on_failure",
        ),
    );
    processes.insert(
        "spire-join-cleanup".into(),
        process(
            mesh,
            "spire-join-cleanup",
            format!("rm -f {}", mesh.join_token_file().display()),
            healthy(&["spire-agent"]),
            None,
            "no",
        ),
    );
    processes.insert(
        "jaeger".into(),
        process(
            mesh,
            "jaeger",
            format!(
                "{} --config {}",
                mesh.bin("jaeger").display(),
                mesh.run_dir.join("config").join("jaeger.yaml").display()
            ),
            json!({}),
            Some(http_probe(mesh.topology.tracing.health_port, "/status")),
            "on_failure",
        ),
    );
    processes.insert(
        "fcm-local".into(),
        process(
            mesh,
            "fcm-local",
            // Its test hooks reveal every push and device token: they are
            // served only on a socket in the root-only control directory.
            format!(
                "{} --listen 127.0.0.1:{} --service-account {} --control-socket {}",
                mesh.bin("interlock-fcm-local").display(),
                mesh.topology.fcm_local.port,
                mesh.run_dir
                    .join("secrets")
                    .join("fcm-service-account.json")
                    .display(),
                mesh.fcm_control_socket().display()
            ),
            json!({}),
            Some(exec_probe(format!(
                "curl -sf --max-time 2 --unix-socket {} http://localhost/control/received",
                mesh.fcm_control_socket().display()
            ))),
            "on_failure",
        ),
    );
    let mut ready_services = Vec::new();
    for w in mesh.workloads() {
        let sidecar = format!("sidecar-{w}");
        let dir = mesh.workload_dir(w);
        processes.insert(
            sidecar.clone(),
            process(
                mesh,
                &sidecar,
                as_user(w, &envoy_command(mesh, &dir.join("envoy.json"))),
                healthy(&["spire-agent"]),
                Some(admin_probe(&mesh.admin_socket(w))),
                "on_failure",
            ),
        );
        let mut p = process(
            mesh,
            w,
            as_user(
                w,
                &mesh.bin(&format!("interlock-{w}")).display().to_string(),
            ),
            healthy(&["spire-agent", &sidecar]),
            Some(exec_probe(format!(
                "{} health {}",
                mesh.bin("interlock-mesh").display(),
                mesh.service_socket(w).display()
            ))),
            "on_failure",
        );
        p["environment"] = json!([format!(
            "INTERLOCK_CONFIG={}",
            dir.join("config.toml").display()
        )]);
        processes.insert(w.to_owned(), p);
        ready_services.push(w.to_owned());
    }
    let mut edge_deps: Vec<&str> = ready_services.iter().map(String::as_str).collect();
    let sidecars: Vec<String> = mesh.workloads().map(|w| format!("sidecar-{w}")).collect();
    edge_deps.extend(sidecars.iter().map(String::as_str));
    processes.insert(
        "edge".into(),
        process(
            mesh,
            "edge",
            as_user(
                "edge",
                &envoy_command(mesh, &mesh.edge_dir().join("envoy.json")),
            ),
            healthy(&edge_deps),
            Some(admin_probe(&mesh.admin_socket("edge"))),
            "on_failure",
        ),
    );
    json!({
        "version": "0.5",
        "log_location": mesh.run_dir.join("logs").join("process-compose.log"),
        "log_level": "info",
        "processes": processes
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::repository_mesh;
    use std::path::Path;

    /// The join token never appears on a command line: the agent reads it
    /// from the root-only file, which a one-shot step deletes once the
    /// agent is healthy.
    #[test]
    fn join_token_is_read_from_a_file_and_deleted_after_attestation() {
        let mesh = repository_mesh(Path::new("/r"), Path::new("/r/bin")).unwrap();
        let project = project(&mesh);
        let agent = project["processes"]["spire-agent"]["command"]
            .as_str()
            .unwrap();
        assert!(!agent.contains("-joinToken "), "{agent}");
        assert!(!agent.contains("$(cat"), "{agent}");
        assert!(agent.contains(&format!(
            "-joinTokenFile {}",
            mesh.join_token_file().display()
        )));
        let cleanup = &project["processes"]["spire-join-cleanup"];
        assert_eq!(
            cleanup["command"],
            format!("rm -f {}", mesh.join_token_file().display())
        );
        assert_eq!(
            cleanup["depends_on"]["spire-agent"]["condition"],
            "process_healthy"
        );
    }

    /// Envoys are probed over their admin sockets, never a TCP port.
    #[test]
    fn envoy_readiness_uses_the_admin_socket() {
        let mesh = repository_mesh(Path::new("/r"), Path::new("/r/bin")).unwrap();
        let project = project(&mesh);
        let probe = project["processes"]["edge"]["readiness_probe"]["exec"]["command"]
            .as_str()
            .unwrap();
        assert!(probe.contains(&format!(
            "--unix-socket {}",
            mesh.admin_socket("edge").display()
        )));
        assert_eq!(
            project.to_string().matches("http_get").count(),
            1,
            "only Jaeger's health endpoint is probed over TCP"
        );
    }
}
