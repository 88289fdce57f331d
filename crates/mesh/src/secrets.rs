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

/// The longest the edge's certificate is valid: Mozilla's "intermediate"
/// profile allows at most 366 days; 90 keeps renewal routine.
pub const EDGE_CERT_DAYS: i64 = 90;
/// `generate` (every `mesh.sh up`) and the compose secrets script issue a
/// new edge certificate once the current one has less than this left.
pub const EDGE_CERT_RENEW_DAYS: i64 = 30;
/// The local edge CA's lifetime (it only signs the edge's certificates).
const EDGE_CA_DAYS: i64 = 10 * 365;

/// What [`edge_tls`] did to the edge's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeCert {
    /// The current one was signed by the CA and has long enough left.
    Kept,
    /// A new one was issued (none yet, close to expiry, too long-lived, or
    /// from another CA).
    Issued,
}

/// The edge's client-facing TLS in `dir`: `ca.pem` (given to grpcurl with
/// `-cacert`), and `server.pem` / `server-key.pem` (for `localhost` and
/// 127.0.0.1, valid [`EDGE_CERT_DAYS`], the key with `key_mode`). The CA's
/// key stays in `ca_store`, never in `dir`. A certificate with less than
/// [`EDGE_CERT_RENEW_DAYS`] left, or one longer-lived than the profile
/// allows (made before this rule), is replaced.
pub fn edge_tls(dir: &Path, ca_store: &Path, key_mode: u32) -> anyhow::Result<EdgeCert> {
    server_tls(
        dir,
        ca_store,
        ("edge-ca", "Interlock local edge CA"),
        &["localhost", "127.0.0.1"],
        key_mode,
    )
}

/// The compose SMTP server's STARTTLS certificate in `dir` (for the `smtp`
/// container's name), its CA beside the other secrets: auth trusts that
/// CA (`email.tls_ca_file`). Renewed like the edge's.
pub fn smtp_tls(dir: &Path, ca_store: &Path, key_mode: u32) -> anyhow::Result<EdgeCert> {
    server_tls(
        dir,
        ca_store,
        ("smtp-ca", "Interlock SMTP CA"),
        &[crate::mesh::COMPOSE_SMTP, "localhost"],
        key_mode,
    )
}

/// A CA kept in `ca_store` (`<name>.pem`, `<name>-key.pem`), and in `dir`
/// its certificate (`ca.pem`) and a server certificate for `names`
/// (`server.pem`, `server-key.pem`), issued or renewed as [`edge_tls`]
/// says.
fn server_tls(
    dir: &Path,
    ca_store: &Path,
    (ca_name, ca_cn): (&str, &str),
    names: &[&str],
    key_mode: u32,
) -> anyhow::Result<EdgeCert> {
    use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
    let now = time::OffsetDateTime::now_utc();
    let (ca_pem, ca_key) = local_ca(ca_store, (ca_name, ca_cn), key_mode, now)?;
    let ca_key = KeyPair::from_pem(&ca_key)?;
    write_private(&dir.join("ca.pem"), &ca_pem, 0o644)?;
    let server = dir.join("server.pem");
    if let Ok(current) = fs::read_to_string(&server)
        && dir.join("server-key.pem").exists()
        && edge_cert_is_current(&current, &ca_pem, now)
    {
        return Ok(EdgeCert::Kept);
    }
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(EDGE_CERT_DAYS);
    // What strict path validation (RFC 5280 as browsers and sslyze apply
    // it) expects of a server certificate.
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&dir.join("server-key.pem"), &key.serialize_pem(), key_mode)?;
    write_private(&server, &cert.pem(), 0o644)?;
    Ok(EdgeCert::Issued)
}

/// A local CA (certificate and key PEM) kept in `store`, made once.
fn local_ca(
    store: &Path,
    (name, common_name): (&str, &str),
    key_mode: u32,
    now: time::OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let (cert_file, key_file) = (
        store.join(format!("{name}.pem")),
        store.join(format!("{name}-key.pem")),
    );
    if let (Ok(cert), Ok(key)) = (
        fs::read_to_string(&cert_file),
        fs::read_to_string(&key_file),
    ) {
        return Ok((cert, key));
    }
    let key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(vec![])?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(DnType::CommonName, common_name);
    ca.not_before = now - time::Duration::minutes(5);
    ca.not_after = now + time::Duration::days(EDGE_CA_DAYS);
    let cert = ca.self_signed(&key)?.pem();
    write_private(&key_file, &key.serialize_pem(), key_mode)?;
    write_private(&cert_file, &cert, 0o644)?;
    Ok((cert, key.serialize_pem()))
}

/// Whether `cert_pem` was issued by `ca_pem`, lives at most
/// [`EDGE_CERT_DAYS`] and has more than [`EDGE_CERT_RENEW_DAYS`] left.
fn edge_cert_is_current(cert_pem: &str, ca_pem: &str, now: time::OffsetDateTime) -> bool {
    use x509_parser::pem::parse_x509_pem;
    let (Ok((_, cert)), Ok((_, ca))) = (
        parse_x509_pem(cert_pem.as_bytes()),
        parse_x509_pem(ca_pem.as_bytes()),
    ) else {
        return false;
    };
    let (Ok(cert), Ok(ca)) = (cert.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    let from = cert.validity().not_before.timestamp();
    let until = cert.validity().not_after.timestamp();
    let day = 24 * 3600;
    cert.verify_signature(Some(ca.public_key())).is_ok()
        && until - from <= EDGE_CERT_DAYS * day + 3600
        && until - now.unix_timestamp() > EDGE_CERT_RENEW_DAYS * day
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
    edge_tls(&store.join("edge"), store, MODE)?;
    smtp_tls(&store.join("smtp"), store, MODE)?;
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

    /// The edge's certificate lives at most 90 days (Mozilla's profile
    /// allows 366), chains to the CA written beside it, and is kept while
    /// it has more than 30 days left; one about to expire, or one of the
    /// old 2,000-year kind, is replaced by the next run, under the same CA.
    #[test]
    fn edge_certificate_is_short_lived_and_renewed_before_expiry() {
        use x509_parser::pem::parse_x509_pem;
        let dir = store("edge-tls");
        let ca_store = dir.join("secrets");
        let edge = dir.join("edge");
        let validity = |path: &Path| {
            let pem = fs::read(path).unwrap();
            let (_, pem) = parse_x509_pem(&pem).unwrap();
            let cert = pem.parse_x509().unwrap();
            let v = cert.validity();
            (v.not_before.timestamp(), v.not_after.timestamp())
        };
        assert_eq!(edge_tls(&edge, &ca_store, 0o600).unwrap(), EdgeCert::Issued);
        let (from, until) = validity(&edge.join("server.pem"));
        assert!(until - from <= 366 * 24 * 3600, "at most 366 days");
        assert!(until - from >= 89 * 24 * 3600, "about 90 days");
        let pem = fs::read(edge.join("server.pem")).unwrap();
        let (_, pem) = parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert!(
            cert.extensions().iter().any(|e| {
                e.oid == x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
            }) && cert
                .extended_key_usage()
                .is_ok_and(|e| e.is_some_and(|e| e.value.server_auth)),
            "what strict path validation wants of a server certificate"
        );
        assert!(!edge.join("edge-ca-key.pem").exists() && !edge.join("ca-key.pem").exists());
        let ca = fs::read_to_string(edge.join("ca.pem")).unwrap();
        let server = fs::read_to_string(edge.join("server.pem")).unwrap();
        let now = time::OffsetDateTime::now_utc();
        assert!(edge_cert_is_current(&server, &ca, now));

        assert_eq!(edge_tls(&edge, &ca_store, 0o600).unwrap(), EdgeCert::Kept);
        assert_eq!(fs::read_to_string(edge.join("server.pem")).unwrap(), server);
        // 61 days on, 29 are left: renewed, by the same CA.
        let later = now + time::Duration::days(61);
        assert!(!edge_cert_is_current(&server, &ca, later));
        assert!(edge_cert_is_current(
            &server,
            &ca,
            now + time::Duration::days(59)
        ));

        // A certificate valid for millennia (what earlier runs made) is replaced.
        let old_key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(
            &ca,
            rcgen::KeyPair::from_pem(
                &fs::read_to_string(ca_store.join("edge-ca-key.pem")).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let ancient = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&old_key, &issuer)
            .unwrap();
        assert!(!edge_cert_is_current(&ancient.pem(), &ca, now));
        fs::write(edge.join("server.pem"), ancient.pem()).unwrap();
        assert_eq!(edge_tls(&edge, &ca_store, 0o600).unwrap(), EdgeCert::Issued);
        assert_eq!(
            fs::read_to_string(edge.join("ca.pem")).unwrap(),
            ca,
            "same CA"
        );
        fs::remove_dir_all(&dir).unwrap();
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
