use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::*;
use crate::topology::repository_mesh;

fn mesh() -> Mesh {
    repository_mesh("/r".as_ref(), "/r/bin".as_ref()).unwrap()
}

/// Stand-ins for the run's secrets (long enough for every rule).
fn secrets(mesh: &Mesh) -> Secrets {
    Secrets::from_values(
        crate::secrets::random_names(mesh)
            .into_iter()
            .map(|n| (n, "s".repeat(40)))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn parse<S: DeserializeOwned>(text: &str) -> anyhow::Result<S> {
    Ok(toml::from_str(text)?)
}

/// Parses `text` with the service's own settings type and validates it,
/// as the service does at start.
fn validate(workload: &str, text: &str) -> anyhow::Result<()> {
    match workload {
        "auth" => parse::<interlock_auth::config::Settings>(text)?.validate(),
        "roles" => parse::<interlock_roles::config::Settings>(text)?.validate(),
        "users" => parse::<interlock_users::config::Settings>(text)?.validate(),
        "notifications" => parse::<interlock_notifications::config::Settings>(text)?.validate(),
        "sender" => parse::<interlock_sender::config::Settings>(text)?.validate(),
        other => panic!("no settings type known for workload {other}: add it to this test"),
    }
}

/// The settings a service ends up with: the file, plus (compose) the
/// secrets its entrypoint exports; the service account replaced by an
/// existing file, since validation checks that it exists (and so the
/// SMTP server's CA).
fn effective(mesh: &Mesh, workload: &str, text: &str, account: &Path) -> String {
    let mut table: Table = toml::from_str(text).expect("generated TOML parses");
    if mesh.target == Target::Compose {
        for (key, _) in secret_settings(mesh, workload) {
            let value = if key == "database.url" {
                mesh.database_url(workload, "password")
            } else {
                "s".repeat(40)
            };
            set(&mut table, &key, value);
        }
    }
    if mesh.workload(workload).fcm {
        set(&mut table, "fcm.service_account_file", path(account));
    }
    if mesh.workload(workload).email {
        set(&mut table, "email.tls_ca_file", path(account));
    }
    toml::to_string(&table).unwrap()
}

/// Every generated settings file, for both targets, is accepted by that
/// service's own `Settings` and passes its validation.
#[test]
fn every_generated_config_is_valid_for_its_service() {
    let local = mesh();
    let account = std::env::temp_dir().join(format!("interlock-account-{}", std::process::id()));
    std::fs::write(&account, "{}").unwrap();
    for target in Target::ALL {
        let mesh = local.for_target(target);
        let given = (target == Target::Local).then(|| secrets(&mesh));
        for w in mesh.workloads() {
            let text = config(&mesh, w, given.as_ref());
            let settings = effective(&mesh, w, &text, &account);
            if let Err(e) = validate(w, &settings) {
                panic!("{} config of {w} is invalid: {e:#}\n{text}", target.name());
            }
        }
    }
    std::fs::remove_file(&account).unwrap();
}

/// A misspelt key in a generated file would be refused by the service:
/// the check above is not vacuous.
#[test]
fn a_misspelt_setting_is_refused_by_the_service() {
    let m = mesh();
    let text = config(&m, "users", Some(&secrets(&m))).replace("roles_url", "role_url");
    assert!(validate("users", &text).is_err());
}

/// Both targets set the same settings; only the local egress socket and
/// the secrets written into local files differ.
#[test]
fn both_targets_set_the_same_settings() {
    fn keys(text: &str) -> Vec<String> {
        let t: Table = toml::from_str(text).unwrap();
        t.iter()
            .flat_map(|(s, v)| {
                v.as_table()
                    .unwrap()
                    .keys()
                    .map(move |k| format!("{s}.{k}"))
            })
            .collect()
    }
    let local = mesh();
    let compose = local.for_compose();
    for w in local.workloads() {
        let mut l = keys(&config(&local, w, None));
        l.retain(|k| k != "jwt.jwks_socket");
        assert_eq!(l, keys(&config(&compose, w, None)), "{w}");
    }
}

/// Locally the database URL carries the run's password and the cluster's
/// port; the service listens on its private socket and reaches peers and
/// the JWKS through its egress socket. Compose files hold no secret.
#[test]
fn local_config_uses_private_sockets_and_the_run_secrets() {
    let m = mesh();
    let text = config(&m, "users", Some(&secrets(&m)));
    let t: Table = toml::from_str(&text).unwrap();
    assert_eq!(
        t["server"]["listen"].as_str(),
        Some("unix:/r/workloads/users/grpc.sock")
    );
    assert_eq!(
        t["database"]["url"].as_str().unwrap(),
        format!(
            "postgres://interlock_users:{}@127.0.0.1:{}/interlock_users",
            "s".repeat(40),
            m.topology.postgres.port
        )
    );
    assert_eq!(
        t["peers"]["roles_url"].as_str(),
        Some("unix:/r/workloads/users/egress.sock")
    );
    assert_eq!(
        t["jwt"]["jwks_socket"].as_str(),
        Some("/r/workloads/users/egress.sock")
    );
    assert_eq!(
        t["jwt"]["jwks_url"].as_str(),
        Some("http://auth/.well-known/jwks.json")
    );
    let compose = config(&m.for_compose(), "auth", None);
    assert!(
        !compose.contains("pepper"),
        "compose configs hold no secrets"
    );
}
