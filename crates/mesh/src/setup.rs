//! What a run needs before configs can be written: secrets (generated once
//! per run directory, never in the repository), the edge's TLS CA and
//! certificate, and one PostgreSQL role and database per service.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rand::Rng;
use rand::distributions::Alphanumeric;
use sqlx::{Connection, PgConnection};

use crate::topology::Mesh;

/// Secrets of a run, read from (or first written to) `<run>/secrets`.
#[derive(Clone)]
pub struct Secrets {
    pub pepper: String,
    pub seal: String,
    db: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl Secrets {
    pub fn db_password(&self, workload: &str) -> String {
        self.db.get(workload).cloned().unwrap_or_default()
    }
}

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Writes `contents` to `path` with `mode`.
pub fn write_private(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn secret_file(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    if let Ok(v) = fs::read_to_string(&path) {
        return Ok(v.trim().to_owned());
    }
    let v = random(48);
    write_private(&path, &v, 0o600)?;
    Ok(v)
}

/// Loads the run's secrets, creating missing ones.
pub fn secrets(mesh: &Mesh) -> anyhow::Result<Secrets> {
    let dir = mesh.run_dir.join("secrets");
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let mut db = BTreeMap::new();
    for w in mesh.workloads().filter(|w| mesh.has_database(w)) {
        db.insert(w.to_owned(), secret_file(&dir, &format!("db-{w}"))?);
    }
    Ok(Secrets {
        pepper: secret_file(&dir, "auth-pepper")?,
        seal: secret_file(&dir, "auth-seal")?,
        db,
    })
}

/// The sender's Google-style service account (an RSA key generated here),
/// shared with the local FCM server, which verifies the sender's OAuth
/// assertions with its public key. Returns the file's path.
pub fn fcm_service_account(mesh: &Mesh) -> anyhow::Result<std::path::PathBuf> {
    let path = mesh
        .run_dir
        .join("secrets")
        .join("fcm-service-account.json");
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
    write_private(&path, &serde_json::to_string_pretty(&json)?, 0o600)?;
    Ok(path)
}

/// The edge's client-facing TLS: a local CA (given to grpcurl with
/// `-cacert`) and a server certificate for `localhost` / 127.0.0.1.
pub fn edge_tls(mesh: &Mesh) -> anyhow::Result<()> {
    let dir = mesh.edge_dir();
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
    write_private(&dir.join("server-key.pem"), &key.serialize_pem(), 0o600)?;
    Ok(())
}

/// One login role and database per service, each closed to the others.
/// Idempotent: passwords are (re)set to the run's secrets.
pub async fn databases(mesh: &Mesh, admin_url: &str, secrets: &Secrets) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    for w in mesh.workloads().filter(|w| mesh.has_database(w)) {
        let name = format!("interlock_{w}");
        let password = secrets.db_password(w);
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        // Names are ours and passwords alphanumeric, so formatting is safe.
        let role_sql = if exists {
            format!("ALTER ROLE {name} LOGIN PASSWORD '{password}'")
        } else {
            format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(role_sql))
            .execute(&mut conn)
            .await?;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        if !db_exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name} OWNER {name}"
            )))
            .execute(&mut conn)
            .await?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REVOKE ALL ON DATABASE {name} FROM PUBLIC"
        )))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}
