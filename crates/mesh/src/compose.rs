//! The container deployment: `compose.yaml`, generated from the same
//! topology and policy as the local mesh. It mounts the compose target's
//! rendered files (`envoy/compose/`, `spire/compose/`,
//! `deploy/compose/config/`); see [`crate::render`] for how they are
//! written and kept exact.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::mesh::{
    COMPOSE_SMTP, COMPOSE_SMTP_PORT, FCM_ACCOUNT_SECRET, Mesh, SMTP_CA_SECRET, compose_database,
    database_name,
};
use crate::secrets;
use crate::services::{env_var, secret_settings};
use crate::spire::WORKLOAD_LABEL;

/// Where compose finds the secrets `deploy/compose/init-secrets.sh` makes.
pub const SECRETS_DIR: &str = "deploy/compose/secrets";
/// The local FCM server's test hooks, a Unix socket inside its container
/// (the end-to-end tests, as root on the host, reach it through
/// `/proc/<pid>/root`); nothing publishes them.
pub const FCM_CONTROL_SOCKET: &str = "/tmp/fcm-control.sock";
/// The Maildir inside the `smtp` container (its `smtp-mail` volume), where
/// the end-to-end tests read the codes auth mailed.
pub const SMTP_MAILDIR: &str = "/var/mail/interlock/Maildir";

/// A rendered file as compose mounts it: `./<path>:<target>:ro`.
fn mount(path: &str, target: &Path) -> Value {
    json!(format!("./{path}:{}:ro", target.display()))
}

fn secret(file: &str) -> Value {
    json!({ "file": format!("./{SECRETS_DIR}/{file}") })
}

fn label(w: &str) -> Value {
    json!({ WORKLOAD_LABEL: w })
}

fn parent(path: &Path) -> String {
    path.parent()
        .expect("a file in a directory")
        .display()
        .to_string()
}

/// An image reference compose interpolates: `${INTERLOCK_IMAGE_<NAME>:-default}`.
/// The default is the upstream (or locally built) image a user with a
/// registry runs; `scripts/images.sh` builds local ones without a registry
/// and the test run points these variables at them.
fn image(name: &str, default: &str) -> Value {
    let var = name.to_uppercase().replace('-', "_");
    json!(format!("${{INTERLOCK_IMAGE_{var}:-{default}}}"))
}

/// A published host port compose interpolates: `${VAR:-default}`, so a test
/// run can avoid ports in use on the host.
fn host_port(var: &str, default: u16) -> String {
    format!("${{{var}:-{default}}}")
}

/// The image build of one of this repository's programs.
fn build(binary: &str) -> Value {
    json!({ "context": ".", "target": "runtime", "args": { "BINARY": binary } })
}

/// The compose project of `mesh` (which must be the compose target).
pub fn project(mesh: &Mesh) -> Value {
    let v = &mesh.versions;
    let compose = &mesh.topology.targets.compose;
    let spire_socket = format!("spire-agent-socket:{}:ro", parent(&mesh.agent_socket()));
    let server_socket = format!("spire-server-socket:{}", parent(&mesh.server_socket()));
    let join = format!("spire-join:{}", parent(&mesh.join_token_file()));
    let mut services = Map::new();
    let mut secrets = Map::new();
    let mut volumes = Map::new();
    for v in [
        "spire-server-data",
        "spire-server-socket",
        "spire-agent-socket",
        "spire-join",
        "spire-agent-data",
    ] {
        volumes.insert(v.into(), json!({}));
    }

    services.insert(
        "spire-server".into(),
        json!({
            "image": image("spire-server", &v.spire_server_image()),
            "command": ["-config", mesh.spire_file("server.conf")],
            "volumes": [
                mount("spire/compose/server.conf", &mesh.spire_file("server.conf")),
                format!("spire-server-data:{}", mesh.spire_server_data().display()),
                server_socket
            ],
            "healthcheck": {
                "test": ["CMD", "/opt/spire/bin/spire-server", "healthcheck"],
                "interval": "5s", "timeout": "3s", "retries": 30
            }
        }),
    );
    services.insert(
        "spire-init".into(),
        json!({
            "image": image("spire-init", "interlock-spire-init:local"),
            "build": {
                "context": ".", "target": "spire-init",
                "args": { "SPIRE_SERVER_IMAGE": v.spire_server_image() }
            },
            "command": ["sh", mesh.spire_file("bootstrap.sh")],
            "volumes": [
                mount("spire/compose/bootstrap.sh", &mesh.spire_file("bootstrap.sh")),
                server_socket,
                join
            ],
            "depends_on": { "spire-server": { "condition": "service_healthy" } }
        }),
    );
    services.insert("spire-agent".into(), json!({
        "image": image("spire-agent", &v.spire_agent_image()),
        "command": ["-config", mesh.spire_file("agent.conf")],
        // The docker attestor maps callers' PIDs to containers.
        "pid": "host",
        "volumes": [
            mount("spire/compose/agent.conf", &mesh.spire_file("agent.conf")),
            // The engine's socket (scripts/docker.sh runs one with its own).
            "${INTERLOCK_DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock:ro",
            format!("{join}:ro"),
            format!("spire-agent-data:{}", mesh.spire_agent_data().display()),
            format!("spire-agent-socket:{}", parent(&mesh.agent_socket()))
        ],
        "depends_on": { "spire-init": { "condition": "service_completed_successfully" } },
        "healthcheck": {
            "test": ["CMD", "/opt/spire/bin/spire-agent", "healthcheck", "-socketPath", mesh.agent_socket()],
            "interval": "5s", "timeout": "3s", "retries": 30
        }
    }));

    for w in mesh.workloads() {
        let workload = mesh.workload(w);
        let mut depends = Map::new();
        depends.insert(
            "spire-agent".into(),
            json!({ "condition": "service_healthy" }),
        );
        if workload.database {
            let db = compose_database(w);
            let password = secrets::db_password(w);
            volumes.insert(format!("{db}-data"), json!({}));
            secrets.insert(password.clone(), secret(&password));
            services.insert(db.clone(), json!({
                "image": image("postgres", &v.postgres_image()),
                "environment": {
                    "POSTGRES_USER": database_name(w),
                    "POSTGRES_DB": database_name(w),
                    "POSTGRES_PASSWORD_FILE": format!("/run/secrets/{password}")
                },
                "secrets": [password],
                "volumes": [format!("{db}-data:/var/lib/postgresql/data")],
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "-U", database_name(w), "-d", database_name(w)],
                    "interval": "3s", "timeout": "3s", "retries": 30
                }
            }));
            depends.insert(db, json!({ "condition": "service_healthy" }));
        }
        // Secret settings arrive as environment variables: each secret is
        // mounted under the variable's name (docker-entrypoint.sh).
        let mut service_secrets: Vec<Value> = secret_settings(mesh, w)
            .into_iter()
            .map(|(key, name)| {
                secrets.insert(name.clone(), secret(&name));
                json!({ "source": name, "target": env_var(w, &key) })
            })
            .collect();
        if workload.fcm {
            secrets.insert(
                FCM_ACCOUNT_SECRET.into(),
                secret(&format!("{FCM_ACCOUNT_SECRET}.json")),
            );
            service_secrets.push(json!(FCM_ACCOUNT_SECRET));
        }
        if workload.email {
            // The CA auth trusts for the SMTP server's STARTTLS certificate.
            secrets.insert(SMTP_CA_SECRET.into(), secret("smtp-ca.pem"));
            service_secrets.push(json!(SMTP_CA_SECRET));
            depends.insert(
                COMPOSE_SMTP.into(),
                json!({ "condition": "service_healthy" }),
            );
        }
        services.insert(w.into(), json!({
            "build": build(&workload.binary),
            "image": image(w, &format!("{}:local", workload.binary)),
            "labels": label(w),
            "environment": { "INTERLOCK_CONFIG": mesh.service_config(w) },
            "volumes": [
                mount(&format!("deploy/compose/config/{w}.toml"), &mesh.service_config(w)),
                spire_socket
            ],
            "secrets": service_secrets,
            "depends_on": depends,
            "healthcheck": {
                "test": ["CMD", crate::mesh::GENERATOR_BINARY, "health", format!("127.0.0.1:{}", compose.service_port)],
                "interval": "5s", "timeout": "3s", "retries": 30
            },
            "restart": "unless-stopped"
        }));
        // The sidecar shares the service's network namespace: the service
        // listens on loopback and is reachable only through it.
        services.insert(format!("{w}-sidecar"), json!({
            "image": image("envoy", &v.envoy_image()),
            "network_mode": format!("service:{w}"),
            "labels": label(w),
            "command": envoy_command(mesh, w),
            "volumes": [mount(&format!("envoy/compose/{w}.yaml"), &mesh.envoy_config(w)), spire_socket],
            // Restarted with its service: a restarted container has a new
            // network namespace, and the sidecar must join it.
            "depends_on": { w: { "condition": "service_started", "restart": true }, "spire-agent": { "condition": "service_healthy" } },
            "restart": "unless-stopped"
        }));
    }
    let mut edge_depends = Map::new();
    edge_depends.insert(
        "spire-agent".into(),
        json!({ "condition": "service_healthy" }),
    );
    for (_, module) in mesh.external_services() {
        edge_depends.insert(
            format!("{module}-sidecar"),
            json!({ "condition": "service_started" }),
        );
        edge_depends.insert(module, json!({ "condition": "service_healthy" }));
    }
    secrets.insert("edge_tls_cert".into(), secret("edge/server.pem"));
    secrets.insert("edge_tls_key".into(), secret("edge/server-key.pem"));
    services.insert(
        "edge".into(),
        json!({
            "image": image("envoy", &v.envoy_image()),
            "labels": label("edge"),
            "command": envoy_command(mesh, "edge"),
            // Published on the host's loopback only; a user who wants the edge
            // reachable from elsewhere changes this deliberately.
            "ports": [format!("127.0.0.1:{}:{}", host_port("INTERLOCK_EDGE_PORT", compose.edge_host_port), mesh.topology.edge.port)],
            "volumes": [mount("envoy/compose/edge.yaml", &mesh.envoy_config("edge")), spire_socket],
            "secrets": [
                { "source": "edge_tls_cert", "target": mesh.edge_dir().join("server.pem") },
                { "source": "edge_tls_key", "target": mesh.edge_dir().join("server-key.pem") }
            ],
            "depends_on": edge_depends,
            "restart": "unless-stopped"
        }),
    );
    services.insert(
        "otel-collector".into(),
        json!({
            "image": image("otel-collector", &v.collector_image()),
            "command": ["--config=/etc/otelcol/config.yaml"],
            "volumes": ["./observability/otel-collector.yaml:/etc/otelcol/config.yaml:ro"],
            "depends_on": { "jaeger": { "condition": "service_started" } }
        }),
    );
    services.insert(
        "jaeger".into(),
        json!({
            "image": image("jaeger", &v.jaeger_image()),
            // Traces name users and calls: loopback only.
            "ports": [format!("127.0.0.1:{}:{}", host_port("INTERLOCK_JAEGER_PORT", compose.jaeger_ui_host_port), mesh.topology.tracing.query_port)]
        }),
    );
    // The SMTP server auth sends through (verification and reset codes):
    // Postfix from Debian in the image's `smtp` stage, STARTTLS with a
    // certificate from the secrets, every message in the `smtp-mail`
    // volume's Maildir. Not published: only the compose network reaches
    // it, and it relays nothing.
    secrets.insert("smtp_tls_cert".into(), secret("smtp/server.pem"));
    secrets.insert("smtp_tls_key".into(), secret("smtp/server-key.pem"));
    volumes.insert("smtp-mail".into(), json!({}));
    services.insert(
        COMPOSE_SMTP.into(),
        json!({
            "build": { "context": ".", "target": "smtp" },
            "image": image("smtp", "interlock-smtp:local"),
            "environment": { "SMTP_PORT": COMPOSE_SMTP_PORT.to_string() },
            "secrets": ["smtp_tls_cert", "smtp_tls_key"],
            "volumes": ["smtp-mail:/var/mail/interlock"],
            "healthcheck": {
                "test": ["CMD", "postfix", "-c", "/etc/postfix-interlock", "status"],
                "interval": "5s", "timeout": "3s", "retries": 30
            },
            "restart": "unless-stopped"
        }),
    );
    let fcm = &mesh.topology.fcm_local;
    services.insert(
        "fcm-local".into(),
        json!({
            "build": build(&fcm.binary),
            "image": image("fcm-local", &format!("{}:local", fcm.binary)),
            "profiles": ["fcm-local"],
            // The sender reaches it by its service name: the token URI (the
            // assertion's audience) says so.
            // Its test hooks only on a socket inside its own container.
            "command": [fcm.binary, "--listen", format!("0.0.0.0:{}", fcm.port),
                        "--service-account", format!("/run/secrets/{FCM_ACCOUNT_SECRET}"),
                        "--token-uri", format!("http://{}/token", mesh.fcm_local_addr()),
                        "--control-socket", FCM_CONTROL_SOCKET],
            "secrets": [FCM_ACCOUNT_SECRET]
        }),
    );
    json!({
        "name": "interlock",
        "services": services,
        "volumes": volumes,
        "secrets": secrets
    })
}

/// Envoy in its official image, without hot restart (compose restarts it).
fn envoy_command(mesh: &Mesh, workload: &str) -> Value {
    json!([
        "envoy",
        "-c",
        mesh.envoy_config(workload),
        "--disable-hot-restart",
        "--log-level",
        "warn"
    ])
}

/// `compose.yaml`'s text.
pub fn yaml(mesh: &Mesh) -> String {
    crate::render::yaml(
        "Generated by `interlock-mesh render --write` from mesh/topology.toml,\n\
         mesh/policy.toml and mesh/versions.toml. Do not edit: change those and\n\
         regenerate.",
        &project(mesh),
    )
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
