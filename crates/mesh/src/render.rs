//! Every file the generator commits to the repository, for both targets:
//!
//! - `envoy/<target>/edge.yaml`, `envoy/<target>/<workload>.yaml`
//! - `spire/<target>/server.conf`, `agent.conf`, `bootstrap.sh` (the
//!   registration entries)
//! - `compose.yaml` and `deploy/compose/config/<workload>.toml`
//!
//! The local target is rendered for the documented run directory
//! ([`DEFAULT_RUN_DIR`]); `interlock-mesh generate` writes the same files
//! for the run directory it is given. `interlock-mesh render --write`
//! regenerates them, and `--check` (run by the tests and CI) fails if a
//! committed file differs or a stale one is left in a rendered folder.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mesh::{DEFAULT_RUN_DIR, Mesh, Target};
use crate::{compose, envoy, services, spire};

/// Folders that hold only rendered files (a file there that is not
/// rendered any more is stale).
pub const RENDERED_DIRS: &[&str] = &[
    "envoy/local",
    "envoy/compose",
    "spire/local",
    "spire/compose",
    "deploy/compose/config",
];

/// `value` as YAML under a `#` comment `header`.
pub fn yaml(header: &str, value: &impl Serialize) -> String {
    let mut out: String = header.lines().map(|l| format!("# {l}\n")).collect();
    out.push_str(&yaml_serde::to_string(value).expect("configurations serialise to YAML"));
    out
}

/// The local mesh as rendered into the repository.
pub fn documented_local(mesh: &Mesh) -> Mesh {
    let run = PathBuf::from(DEFAULT_RUN_DIR);
    Mesh {
        target: Target::Local,
        bin_dir: run.join("bin"),
        run_dir: run,
        ..mesh.clone()
    }
}

/// Every committed file: path relative to the repository -> contents.
pub fn files(mesh: &Mesh) -> BTreeMap<String, String> {
    let local = documented_local(mesh);
    let mut out = BTreeMap::new();
    for target in Target::ALL {
        let m = local.for_target(target);
        let t = target.name();
        out.insert(
            format!("envoy/{t}/edge.yaml"),
            envoy::yaml(&m, &envoy::edge(&m)),
        );
        for w in m.workloads() {
            out.insert(
                format!("envoy/{t}/{w}.yaml"),
                envoy::yaml(&m, &envoy::sidecar(&m, w)),
            );
        }
        out.insert(format!("spire/{t}/server.conf"), spire::server_conf(&m));
        out.insert(format!("spire/{t}/agent.conf"), spire::agent_conf(&m));
        out.insert(
            format!("spire/{t}/bootstrap.sh"),
            spire::bootstrap_script(&m),
        );
    }
    let c = local.for_compose();
    out.insert("compose.yaml".into(), compose::yaml(&c));
    for w in c.workloads() {
        out.insert(
            format!("deploy/compose/config/{w}.toml"),
            services::config(&c, w, None),
        );
    }
    out
}

/// Committed files that differ from `files`, and files left in a rendered
/// folder that are not rendered any more.
pub fn stale(root: &Path, files: &BTreeMap<String, String>) -> Vec<String> {
    let mut stale: Vec<String> = files
        .iter()
        .filter(|(path, contents)| {
            fs::read_to_string(root.join(path)).ok().as_deref() != Some(contents.as_str())
        })
        .map(|(path, _)| path.clone())
        .collect();
    stale.extend(leftovers(root, files));
    stale
}

fn leftovers(root: &Path, files: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for dir in RENDERED_DIRS {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if !files.contains_key(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Writes what is stale and removes leftovers; returns what changed.
pub fn write(root: &Path, files: &BTreeMap<String, String>) -> anyhow::Result<Vec<String>> {
    let changed = stale(root, files);
    for path in &changed {
        let full = root.join(path);
        match files.get(path) {
            Some(contents) => {
                if let Some(dir) = full.parent() {
                    fs::create_dir_all(dir)?;
                }
                fs::write(&full, contents)?;
                if path.ends_with(".sh") {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&full, fs::Permissions::from_mode(0o755))?;
                }
            }
            None => fs::remove_file(&full)?,
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::repository_mesh;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The committed envoy/, spire/, compose.yaml and deploy/compose/config
    /// are exactly what the topology, policy and versions generate, with no
    /// stale file beside them (regenerate with `interlock-mesh render
    /// --write`).
    #[test]
    fn committed_rendered_files_match_the_description() {
        let mesh = repository_mesh(Path::new("/r"), Path::new("/r/bin")).unwrap();
        let stale = stale(&repo(), &files(&mesh));
        assert!(
            stale.is_empty(),
            "out of date (run `interlock-mesh render --write`): {stale:?}"
        );
    }

    /// Both targets are rendered, an Envoy per workload and the edge, and
    /// the rendered YAML reads back as the configuration it was made from.
    #[test]
    fn both_targets_are_rendered_as_yaml_that_reads_back() {
        let mesh = repository_mesh(Path::new("/r"), Path::new("/r/bin")).unwrap();
        let files = files(&mesh);
        for target in Target::ALL {
            let m = documented_local(&mesh).for_target(target);
            let text = &files[&format!("envoy/{}/users.yaml", target.name())];
            let back: serde_json::Value = yaml_serde::from_str(text).unwrap();
            assert_eq!(back, envoy::sidecar(&m, "users"));
            assert!(files.contains_key(&format!("envoy/{}/edge.yaml", target.name())));
            assert!(files.contains_key(&format!("spire/{}/bootstrap.sh", target.name())));
        }
        assert!(
            files["envoy/local/users.yaml"]
                .contains("/var/lib/interlock/mesh/workloads/users/grpc.sock")
        );
    }
}
