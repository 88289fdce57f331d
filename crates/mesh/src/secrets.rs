//! The mesh's secrets, generated once per store and never committed: the
//! local run's `secrets/` (mode 0600, root only) or compose's
//! `deploy/compose/secrets/`. Names come from the topology (each
//! workload's `secrets`, plus a password and URL per database), so both
//! targets have the same secrets under the same names, made by the same
//! code.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distributions::Alphanumeric;

use crate::mesh::{FCM_ACCOUNT_SECRET, Mesh};
use crate::setup::write_private;

/// The secret holding a workload's database password.
pub fn db_password(workload: &str) -> String {
    format!("{workload}_db_password")
}

/// The secret holding a workload's database URL (compose only: locally the
/// URL is written into the workload's private config).
pub fn database_url(workload: &str) -> String {
    format!("{workload}_database_url")
}

/// The FCM service account's file in a store.
pub fn fcm_account_file(store: &Path) -> PathBuf {
    store.join(format!("{FCM_ACCOUNT_SECRET}.json"))
}

/// Local secret files written before the topology named them; renamed on
/// first load so a run keeps its pepper and sealing secret (new ones would
/// lock out every user and signing key in the database).
const LEGACY_NAMES: &[(&str, &str)] = &[
    ("auth-pepper", "auth_pepper"),
    ("auth-seal", "auth_seal_secret"),
    ("fcm-service-account.json", "fcm_service_account.json"),
];

/// Random secrets of a store, by name.
#[derive(Clone)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl Secrets {
    /// The value of `name`; every name from [`random_names`] is present.
    pub fn get(&self, name: &str) -> &str {
        self.values
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("secret {name} was not generated"))
    }

    /// The given values (tests).
    pub fn from_values(values: BTreeMap<String, String>) -> Self {
        Self { values }
    }
}

/// Every random secret the mesh needs: each database's password and each
/// workload's listed secrets.
pub fn random_names(mesh: &Mesh) -> Vec<String> {
    let mut names = Vec::new();
    for (name, w) in &mesh.topology.workloads {
        if w.database {
            names.push(db_password(name));
        }
        names.extend(w.secrets.values().cloned());
    }
    names
}

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Loads the secrets in `store` (a private directory), creating missing
/// ones with `mode`.
pub fn load(mesh: &Mesh, store: &Path, mode: u32) -> anyhow::Result<Secrets> {
    fs::create_dir_all(store)?;
    fs::set_permissions(store, fs::Permissions::from_mode(0o700))?;
    for (old, new) in LEGACY_NAMES {
        if store.join(old).exists() && !store.join(new).exists() {
            fs::rename(store.join(old), store.join(new))?;
        }
    }
    let mut values = BTreeMap::new();
    for name in random_names(mesh) {
        let path = store.join(&name);
        let value = match fs::read_to_string(&path) {
            Ok(v) => v.trim().to_owned(),
            Err(_) => {
                let v = random(48);
                write_private(&path, &v, mode)?;
                v
            }
        };
        values.insert(name, value);
    }
    Ok(Secrets { values })
}

/// The sender's Google-style service account (an RSA key generated here),
/// shared with the local FCM server, which verifies the sender's OAuth
/// assertions with its public key. Returns the file's path.
pub fn fcm_service_account(store: &Path, mode: u32) -> anyhow::Result<PathBuf> {
    let path = fcm_account_file(store);
    if path.exists() {
        return Ok(path);
    }
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
    let pem = key.to_pkcs8_pem(LineEnding::LF)?.to_string();
    let project = "interlock-local";
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": random(16),
        "private_key": pem,
        "client_email": format!("sender@{project}.iam.gserviceaccount.com"),
        "client_id": "0",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token"
    });
    write_private(&path, &serde_json::to_string_pretty(&json)?, mode)?;
    Ok(path)
}

/// The edge's client-facing TLS in `dir`: a local CA (given to grpcurl
/// with `-cacert`) and a server certificate for `localhost` / 127.0.0.1;
/// the private key gets `key_mode`.
pub fn edge_tls(dir: &Path, key_mode: u32) -> anyhow::Result<()> {
    if dir.join("server.pem").exists() && dir.join("ca.pem").exists() {
        return Ok(());
    }
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(vec![])?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Interlock local edge CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let issuer = Issuer::new(ca, ca_key);
    let cert = server.signed_by(&key, &issuer)?;
    write_private(&dir.join("ca.pem"), &ca_cert.pem(), 0o644)?;
    write_private(&dir.join("server.pem"), &cert.pem(), 0o644)?;
    write_private(&dir.join("server-key.pem"), &key.serialize_pem(), key_mode)?;
    Ok(())
}

/// Every secret compose.yaml references, into `store` (existing ones are
/// kept). The directory is private to its owner; the files in it are
/// world-readable because compose bind-mounts file secrets with their host
/// permissions and the containers run as other users (services 10001,
/// postgres 999, envoy 101).
pub fn write_compose(local: &Mesh, store: &Path) -> anyhow::Result<()> {
    const MODE: u32 = 0o644;
    let mesh = local.for_compose();
    let secrets = load(&mesh, store, MODE)?;
    for w in mesh.workloads().filter(|w| mesh.has_database(w)) {
        let path = store.join(database_url(w));
        if !path.exists() {
            let url = mesh.database_url(w, secrets.get(&db_password(w)));
            write_private(&path, &url, MODE)?;
        }
    }
    fcm_service_account(store, MODE)?;
    edge_tls(&store.join("edge"), MODE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::repository_mesh;

    fn store(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("interlock-{name}-{}", std::process::id()))
    }

    /// Compose gets every secret its project names, each database URL
    /// pointing at that service's own database container with its password;
    /// a second run keeps them.
    #[test]
    fn compose_secrets_cover_the_project_and_are_kept() {
        let mesh = repository_mesh("/r".as_ref(), "/r/bin".as_ref()).unwrap();
        let store = store("compose-secrets");
        write_compose(&mesh, &store).unwrap();
        let project = crate::compose::project(&mesh.for_compose());
        for (_, secret) in project["secrets"].as_object().unwrap() {
            let file = secret["file"].as_str().unwrap();
            let path = store.join(file.trim_start_matches("./deploy/compose/secrets/"));
            assert!(path.is_file(), "{file} missing");
        }
        let url = fs::read_to_string(store.join("users_database_url")).unwrap();
        let password = fs::read_to_string(store.join("users_db_password")).unwrap();
        assert_eq!(
            url,
            format!("postgres://interlock_users:{password}@postgres-users:5432/interlock_users")
        );
        let pepper = fs::read_to_string(store.join("auth_pepper")).unwrap();
        write_compose(&mesh, &store).unwrap();
        assert_eq!(
            fs::read_to_string(store.join("auth_pepper")).unwrap(),
            pepper
        );
        fs::remove_dir_all(&store).unwrap();
    }

    /// A local run directory made before secrets were named by the topology
    /// keeps its pepper and sealing secret.
    #[test]
    fn legacy_local_secret_names_are_kept() {
        let mesh = repository_mesh("/r".as_ref(), "/r/bin".as_ref()).unwrap();
        let store = store("legacy-secrets");
        fs::create_dir_all(&store).unwrap();
        fs::write(store.join("auth-pepper"), "old-pepper").unwrap();
        let secrets = load(&mesh, &store, 0o600).unwrap();
        assert_eq!(secrets.get("auth_pepper"), "old-pepper");
        assert!(!store.join("auth-pepper").exists());
        fs::remove_dir_all(&store).unwrap();
    }
}
