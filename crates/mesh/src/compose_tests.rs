use std::path::Path;

use super::*;
use crate::topology::repository_mesh;

fn mesh() -> Mesh {
    repository_mesh(Path::new("/r"), Path::new("/r/bin")).unwrap()
}

/// compose.yaml, the Envoy configs, the SPIRE entries and the policy
/// agree: same workloads, SPIFFE IDs, ports and allowed peers.
#[test]
fn compose_envoy_spire_and_policy_agree() {
    let m = mesh();
    let c = m.for_compose();
    let project = project(&c);
    let services = project["services"].as_object().unwrap();
    let entries = crate::spire::entries(&c);
    for w in m.workloads().chain(std::iter::once("edge")) {
        // Every workload runs with its label, and SPIRE gives that label
        // exactly the policy's SPIFFE ID.
        assert_eq!(services[w]["labels"][WORKLOAD_LABEL], w, "{w} label");
        let selector = format!("docker:label:{WORKLOAD_LABEL}:{w}");
        let ids: Vec<_> = entries
            .iter()
            .filter(|e| e.selectors == [selector.clone()])
            .map(|e| e.spiffe_id.clone())
            .collect();
        assert_eq!(ids, vec![m.spiffe_id(w)], "{w} entry");
        if w == "edge" {
            continue;
        }
        let sidecar = &services[&format!("{w}-sidecar")];
        assert_eq!(
            sidecar["network_mode"],
            format!("service:{w}"),
            "{w} sidecar shares the namespace"
        );
        assert_eq!(sidecar["labels"][WORKLOAD_LABEL], w);
        // The sidecar listens on the topology's port, and peers dial it
        // by container name on that port.
        let cfg = crate::envoy::sidecar(&c, w);
        let text = cfg.to_string();
        if let Some(port) = m.workload(w).sidecar_port {
            let inbound = &cfg["static_resources"]["listeners"][0];
            assert_eq!(inbound["address"]["socket_address"]["port_value"], port);
            // Allowed peers in RBAC are the policy's callers.
            for (route, ids) in m.inbound_rules(w) {
                for id in ids {
                    assert!(text.contains(&id), "{w}: {route:?} misses {id}");
                }
            }
        }
        for peer in m.outbound_routes(w).keys() {
            assert!(
                text.contains(&format!("\"address\":\"{peer}\"")),
                "{w} dials {peer} by name"
            );
        }
    }
    // Only the edge and the Jaeger UI are published.
    let published: Vec<&str> = services
        .iter()
        .filter(|(_, s)| s.get("ports").is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(published, ["edge", "jaeger"]);
    // On the host's loopback, at ports a test run can move.
    assert_eq!(
        services["edge"]["ports"],
        json!(["127.0.0.1:${INTERLOCK_EDGE_PORT:-8443}:17443"])
    );
    assert_eq!(
        services["jaeger"]["ports"],
        json!(["127.0.0.1:${INTERLOCK_JAEGER_PORT:-16686}:16686"])
    );
}

/// Every image is a variable whose default is the upstream (or Dockerfile)
/// image: scripts/images.sh points them at local builds.
#[test]
fn images_are_variables_with_upstream_defaults() {
    let c = mesh().for_compose();
    let v = &c.versions;
    let project = project(&c);
    let services = project["services"].as_object().unwrap();
    for (name, service) in services {
        let image = service["image"].as_str().unwrap();
        assert!(image.starts_with("${INTERLOCK_IMAGE_"), "{name}: {image}");
    }
    assert_eq!(
        services["auth-sidecar"]["image"],
        format!("${{INTERLOCK_IMAGE_ENVOY:-{}}}", v.envoy_image())
    );
    assert_eq!(
        services["postgres-auth"]["image"],
        format!("${{INTERLOCK_IMAGE_POSTGRES:-{}}}", v.postgres_image())
    );
    assert_eq!(
        services["auth"]["image"],
        "${INTERLOCK_IMAGE_AUTH:-interlock-auth:local}"
    );
    // A sidecar follows its service's restarts (new network namespace).
    assert_eq!(
        services["auth-sidecar"]["depends_on"]["auth"]["restart"],
        true
    );
}

/// Each service gets exactly its topology's secrets, each as the
/// environment variable of its setting; its database container gets the
/// password; nothing secret is in the project itself.
#[test]
fn services_get_their_secrets_as_environment_variables() {
    let c = mesh().for_compose();
    let project = project(&c);
    assert_eq!(
        project["services"]["auth"]["secrets"],
        json!([
            { "source": "auth_database_url", "target": "INTERLOCK_AUTH__DATABASE__URL" },
            { "source": "auth_seal_secret", "target": "INTERLOCK_AUTH__KEYS__SEAL_SECRET" },
            { "source": "auth_pepper", "target": "INTERLOCK_AUTH__PASSWORDS__PEPPER" },
            // A file, not a setting: the SMTP server's CA (email.tls_ca_file).
            "smtp_ca",
        ])
    );
    // The SMTP server gets its certificate and key, and is not published.
    assert_eq!(
        project["services"]["smtp"]["secrets"],
        json!(["smtp_tls_cert", "smtp_tls_key"])
    );
    assert_eq!(
        project["services"]["auth"]["depends_on"]["smtp"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        project["services"]["postgres-users"]["secrets"],
        json!(["users_db_password"])
    );
    assert_eq!(
        project["services"]["sender"]["secrets"],
        json!(["fcm_service_account"])
    );
    for (name, s) in project["secrets"].as_object().unwrap() {
        assert!(
            s["file"]
                .as_str()
                .unwrap()
                .starts_with("./deploy/compose/secrets/"),
            "{name}"
        );
    }
}

/// Images are the pinned versions; every mounted file is a rendered one.
#[test]
fn images_are_pinned_and_mounts_are_rendered_files() {
    let c = mesh().for_compose();
    let text = yaml(&c);
    let v = &c.versions;
    for image in [
        v.envoy_image(),
        v.spire_server_image(),
        v.spire_agent_image(),
        v.postgres_image(),
        v.collector_image(),
        v.jaeger_image(),
    ] {
        assert!(text.contains(&image), "{image}");
    }
    let rendered = crate::render::files(&mesh());
    for line in text.lines() {
        let Some(mount) = line.trim().trim_start_matches("- ").strip_prefix("./") else {
            continue;
        };
        let file = mount.split(':').next().unwrap();
        if file.starts_with("observability/") {
            continue;
        }
        assert!(
            rendered.contains_key(file),
            "{file} is mounted but not rendered"
        );
    }
}

/// The image's own health check probes the compose target's service port.
#[test]
fn dockerfile_health_check_uses_the_service_port() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
            .unwrap();
    let port = mesh().topology.targets.compose.service_port;
    assert!(dockerfile.contains(&format!(
        "CMD [\"interlock-mesh\", \"health\", \"127.0.0.1:{port}\"]"
    )));
}
