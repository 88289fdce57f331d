//! `interlock-mesh env`: the mesh's facts as shell assignments, so scripts
//! (scripts/mesh.sh, the Dockerfile) use the topology's ports, sockets,
//! workloads and binaries instead of repeating them.

use std::path::Path;

use crate::mesh::{Mesh, TOOLS, Target};

/// `'value'` for a POSIX shell.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `NAME='value'` lines, in a stable order.
pub fn assignments(mesh: &Mesh) -> String {
    let t = &mesh.topology;
    let (edge_port, jaeger_port) = match mesh.target {
        Target::Local => (t.edge.port, t.tracing.query_port),
        Target::Compose => (
            t.targets.compose.edge_host_port,
            t.targets.compose.jaeger_ui_host_port,
        ),
    };
    let users: Vec<String> = std::iter::once("edge")
        .chain(mesh.workloads())
        .map(Mesh::unix_user)
        .collect();
    let vars: Vec<(&str, String)> = vec![
        ("MESH_TARGET", mesh.target.name().into()),
        ("MESH_RUN_DIR", path(&mesh.run_dir)),
        ("MESH_BIN_DIR", path(&mesh.bin_dir)),
        ("MESH_LOG_DIR", path(&mesh.log_dir())),
        ("MESH_CONTROL_SOCKET", path(&mesh.control_socket())),
        (
            "MESH_PROCESS_COMPOSE",
            path(&mesh.run_dir.join("process-compose.yaml")),
        ),
        ("MESH_EDGE_PORT", edge_port.to_string()),
        ("MESH_EDGE_CA", path(&mesh.run_dir.join("edge-ca.pem"))),
        ("MESH_EDGE_ADMIN_SOCKET", path(&mesh.admin_socket("edge"))),
        ("MESH_JAEGER_PORT", jaeger_port.to_string()),
        ("MESH_POSTGRES_PORT", t.postgres.port.to_string()),
        (
            "MESH_WORKLOADS",
            mesh.workloads().collect::<Vec<_>>().join(" "),
        ),
        ("MESH_UNIX_USERS", users.join(" ")),
        ("MESH_BINARIES", mesh.binaries().join(" ")),
        ("MESH_TOOLS", TOOLS.join(" ")),
    ];
    vars.into_iter()
        .map(|(k, v)| format!("{k}={}\n", quote(&v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::repository_mesh;

    /// The assignments evaluate in a shell to the topology's values, and
    /// quoting survives awkward paths.
    #[test]
    fn assignments_evaluate_to_the_topology() {
        let mesh = repository_mesh("/r/it's here".as_ref(), "/r/bin".as_ref()).unwrap();
        let script = format!(
            "{}printf '%s|%s|%s|%s' \"$MESH_EDGE_PORT\" \"$MESH_CONTROL_SOCKET\" \"$MESH_WORKLOADS\" \"$MESH_BINARIES\"",
            assignments(&mesh)
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!(
                "{}|/r/it's here/control/process-compose.sock|auth notifications roles sender users|\
                 interlock-auth interlock-notifications interlock-roles interlock-sender interlock-users \
                 interlock-fcm-local interlock-mesh",
                mesh.topology.edge.port
            )
        );
    }

    /// Compose publishes the edge on its host port.
    #[test]
    fn compose_reports_the_published_ports() {
        let mesh = repository_mesh("/r".as_ref(), "/r/bin".as_ref()).unwrap();
        let text = assignments(&mesh.for_compose());
        assert!(text.contains("MESH_EDGE_PORT='8443'\n"), "{text}");
    }

    /// scripts/postgres.sh, which runs before anything is built, reads the
    /// same port from the topology as the generator.
    #[test]
    fn lib_sh_reads_the_topology_like_the_generator() {
        let mesh = repository_mesh("/r".as_ref(), "/r/bin".as_ref()).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("source scripts/lib.sh && topology_value postgres port")
            .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            mesh.topology.postgres.port.to_string()
        );
    }
}
