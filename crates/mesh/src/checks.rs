//! Topology and policy must agree before anything is rendered: every
//! problem is collected and reported at once by [`crate::Mesh::new`].

use std::collections::BTreeMap;

use crate::mesh::{Mesh, database_name};

/// Everything wrong with `mesh`'s topology against its policy.
pub fn problems(mesh: &Mesh) -> Vec<String> {
    let mut p = Vec::new();
    identities(mesh, &mut p);
    apis(mesh, &mut p);
    peers(mesh, &mut p);
    tokens(mesh, &mut p);
    secrets(mesh, &mut p);
    ports(mesh, &mut p);
    p
}

fn identities(mesh: &Mesh, p: &mut Vec<String>) {
    for name in mesh.workloads().chain(std::iter::once("edge")) {
        if mesh.policy.spiffe_id(name).is_none() {
            p.push(format!("workload {name} has no SPIFFE ID in the policy"));
        }
    }
}

/// A workload has an inbound listener exactly when the policy gives it
/// something to serve.
fn apis(mesh: &Mesh, p: &mut Vec<String>) {
    let t = &mesh.topology;
    let mut served: Vec<(&str, &str)> = mesh
        .policy
        .services()
        .map(|r| (r.module.as_str(), r.name.as_str()))
        .collect();
    served.extend(
        mesh.policy
            .http_rules()
            .map(|r| (r.module.as_str(), r.path.as_str())),
    );
    for (module, what) in &served {
        match t.workloads.get(*module) {
            None => p.push(format!(
                "{what} is served by {module}, which the topology does not run"
            )),
            Some(w) if w.sidecar_port.is_none() => {
                p.push(format!("{module} serves {what} but has no sidecar_port"))
            }
            Some(_) => {}
        }
    }
    for (name, w) in &t.workloads {
        if w.sidecar_port.is_some() && !served.iter().any(|(m, _)| m == name) {
            p.push(format!(
                "{name} has a sidecar_port but the policy gives it nothing to serve"
            ));
        }
    }
    match t.workloads.get(&t.edge.reflection) {
        Some(w) if w.sidecar_port.is_some() => {}
        _ => p.push(format!(
            "edge.reflection: {} is not a workload with an API",
            t.edge.reflection
        )),
    }
}

/// Every `[peers]` URL a service gets leads somewhere the policy lets it
/// call.
fn peers(mesh: &Mesh, p: &mut Vec<String>) {
    for name in mesh.workloads() {
        let allowed = mesh.outbound_routes(name);
        for peer in &mesh.workload(name).peers {
            if !allowed.contains_key(peer) {
                p.push(format!(
                    "{name} lists peer {peer}, but the policy allows it no call to {peer}"
                ));
            }
        }
    }
}

/// One token issuer; the edge and every verifier may fetch its JWKS, and
/// every verifier its revoked sessions.
fn tokens(mesh: &Mesh, p: &mut Vec<String>) {
    let issuers: Vec<_> = mesh
        .topology
        .workloads
        .iter()
        .filter(|(_, w)| w.jwks_path.is_some() || w.revoked_sessions_path.is_some())
        .collect();
    let [(issuer, w)] = issuers.as_slice() else {
        p.push(format!(
            "exactly one workload must set jwks_path and revoked_sessions_path (found {})",
            issuers.len()
        ));
        return;
    };
    let (Some(jwks), Some(revoked)) = (&w.jwks_path, &w.revoked_sessions_path) else {
        p.push(format!(
            "{issuer}: set both jwks_path and revoked_sessions_path"
        ));
        return;
    };
    let callers = |path: &str| {
        mesh.policy
            .http_rules()
            .find(|r| r.path == path && &r.module == *issuer)
            .map(|r| r.callers.clone())
    };
    let (Some(jwks_callers), Some(revoked_callers)) = (callers(jwks), callers(revoked)) else {
        p.push(format!(
            "the policy has no [[http]] rules for {issuer}'s {jwks} and {revoked}"
        ));
        return;
    };
    if !jwks_callers.iter().any(|c| c == "edge") {
        p.push(format!("the policy does not let the edge fetch {jwks}"));
    }
    for (name, w) in &mesh.topology.workloads {
        if !w.verifies_tokens {
            continue;
        }
        for (path, callers) in [(jwks, &jwks_callers), (revoked, &revoked_callers)] {
            if !callers.contains(name) {
                p.push(format!(
                    "{name} verifies tokens, but the policy does not let it fetch {path}"
                ));
            }
        }
    }
}

/// Secret names are file names in one directory: no two may collide.
fn secrets(mesh: &Mesh, p: &mut Vec<String>) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, w) in &mesh.topology.workloads {
        let mut names: Vec<String> = w.secrets.values().cloned().collect();
        if w.database {
            names.push(crate::secrets::db_password(name));
            names.push(crate::secrets::database_url(name));
        }
        for secret in names {
            if let Some(other) = seen.insert(secret.clone(), name.clone()) {
                p.push(format!("secret {secret} is used by {other} and {name}"));
            }
        }
        if w.secrets.contains_key("database.url") {
            p.push(format!(
                "{name}: database.url is derived from `database = true`, not listed"
            ));
        }
        if database_name(name).len() > 63 {
            p.push(format!("{name}: name too long for a PostgreSQL role"));
        }
    }
}

/// No two listeners of the local mesh share a port.
fn ports(mesh: &Mesh, p: &mut Vec<String>) {
    let t = &mesh.topology;
    let mut ports: Vec<(u16, String)> = vec![
        (t.edge.port, "edge".into()),
        (t.spire.server_port, "spire".into()),
        (t.postgres.port, "postgres".into()),
        (t.tracing.otlp_port, "tracing.otlp".into()),
        (t.tracing.query_port, "tracing.query".into()),
        (t.tracing.health_port, "tracing.health".into()),
        (t.fcm_local.port, "fcm_local".into()),
    ];
    ports.extend(
        t.workloads
            .iter()
            .filter_map(|(n, w)| Some((w.sidecar_port?, format!("workloads.{n}")))),
    );
    ports.sort();
    for pair in ports.windows(2) {
        if pair[0].0 == pair[1].0 {
            p.push(format!(
                "{} and {} both use port {}",
                pair[0].1, pair[1].1, pair[0].0
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;
    use interlock_common::policy::Policy;

    fn check(edit: impl FnOnce(&mut Topology)) -> Vec<String> {
        let mut t = Topology::embedded();
        edit(&mut t);
        let mesh = Mesh {
            target: crate::Target::Local,
            topology: t,
            policy: Policy::embedded(),
            versions: crate::versions::Versions::embedded(),
            run_dir: "/r".into(),
            bin_dir: "/r/bin".into(),
        };
        problems(&mesh)
    }

    /// The repository's topology and policy agree.
    #[test]
    fn repository_topology_agrees_with_the_policy() {
        assert_eq!(check(|_| {}), Vec::<String>::new());
    }

    /// A peer the policy does not let a workload call, a verifier the
    /// policy keeps from the revoked sessions, a served API without a
    /// listener and a reused port are all reported, together.
    #[test]
    fn disagreements_are_all_reported() {
        let p = check(|t| {
            t.workloads
                .get_mut("roles")
                .unwrap()
                .peers
                .push("users".into());
            t.workloads.get_mut("sender").unwrap().verifies_tokens = true;
            t.workloads.get_mut("notifications").unwrap().sidecar_port = None;
            t.fcm_local.port = t.edge.port;
        });
        let text = p.join("\n");
        assert!(text.contains("roles lists peer users"), "{text}");
        assert!(text.contains("sender verifies tokens"), "{text}");
        assert!(text.contains("notifications serves"), "{text}");
        assert!(text.contains("both use port"), "{text}");
    }

    /// The issuer's revoked-sessions path is where auth's code serves it.
    #[test]
    fn revoked_sessions_path_is_the_one_auth_serves() {
        let mesh = crate::topology::repository_mesh("/r".as_ref(), "/r/bin".as_ref()).unwrap();
        assert_eq!(
            mesh.token_issuer().2,
            interlock_common::revocation::REVOKED_SESSIONS_PATH
        );
    }
}
