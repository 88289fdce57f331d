//! The suite's admin, made the one way the product offers to make a first
//! admin: register through the edge, then `interlock-roles bootstrap-admin`
//! run by the operator (here: as roles' Unix user, with roles' own
//! configuration). Its credentials are kept in the run's root-only
//! secrets, so later runs against the same mesh log in as the same admin.

use std::path::{Path, PathBuf};

use interlock_mesh::Mesh;
use interlock_proto::auth::v1::RegisterRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_testkit::{login_request, register_request};
use tokio::sync::OnceCell;
use tonic::Code;

use crate::{as_workload, edge, unique_login};

/// A login and its password, saved as `login:password`.
struct Credentials {
    login: String,
    password: String,
}

/// An access token of the e2e admin; the admin is made on first use.
pub async fn admin_token(mesh: &Mesh) -> String {
    // Tests run concurrently: one of them makes the admin, the rest wait.
    static ADMIN: OnceCell<Credentials> = OnceCell::const_new();
    let admin = ADMIN.get_or_init(|| admin(mesh)).await;
    AuthServiceClient::new(edge(mesh, None).await)
        .login(login_request(&admin.login, &admin.password))
        .await
        .expect("the e2e admin logs in")
        .into_inner()
        .access_token
}

fn credentials_file(mesh: &Mesh) -> PathBuf {
    mesh.run_dir.join("secrets").join("e2e-admin")
}

/// An admin that can log in: the saved one, or a new one.
async fn admin(mesh: &Mesh) -> Credentials {
    let file = credentials_file(mesh);
    let saved = std::fs::read_to_string(&file).ok().and_then(|c| {
        let (login, password) = c.trim().split_once(':')?;
        Some(Credentials {
            login: login.to_owned(),
            password: password.to_owned(),
        })
    });
    if let Some(saved) = saved {
        let login = AuthServiceClient::new(edge(mesh, None).await)
            .login(login_request(&saved.login, &saved.password))
            .await;
        match login {
            Ok(_) => return saved,
            // The mesh's databases were reset since the admin was saved.
            Err(s) if s.code() == Code::Unauthenticated => {}
            Err(s) => panic!("the saved e2e admin cannot log in: {s:?}"),
        }
    }
    let made = Credentials {
        login: unique_login("e2eadmin"),
        password: uuid::Uuid::new_v4().simple().to_string(),
    };
    let registered = AuthServiceClient::new(edge(mesh, None).await)
        .register(RegisterRequest {
            password: made.password.clone(),
            ..register_request(&made.login)
        })
        .await
        .expect("register the e2e admin")
        .into_inner();
    if registered.email_verification_required {
        crate::confirm_email(mesh, &made.login).await;
    }
    let user_id = registered.user_id;
    bootstrap_admin(mesh, &user_id);
    write_secret(&file, &format!("{}:{}", made.login, made.password));
    made
}

/// Makes `user_id` the first admin with the documented command. It refuses
/// when an admin exists already; the suite then stops, because the other
/// ways to an admin (somebody else's credentials, writing to roles'
/// database) are not the suite's to take.
fn bootstrap_admin(mesh: &Mesh, user_id: &str) {
    let out = as_workload(
        "roles",
        &mesh.bin("interlock-roles"),
        &["bootstrap-admin", user_id],
    )
    .env(
        "INTERLOCK_CONFIG",
        mesh.workload_dir("roles").join("config.toml"),
    )
    .output()
    .expect("run bootstrap-admin");
    assert!(
        out.status.success(),
        "interlock-roles bootstrap-admin failed: {}\n\
         An admin this suite did not make (it saves its own in {}) already exists: \
         restore that file, or run the suite against a fresh mesh.",
        String::from_utf8_lossy(&out.stderr),
        credentials_file(mesh).display()
    );
}

/// Writes a root-only file.
fn write_secret(file: &Path, contents: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .unwrap_or_else(|e| panic!("save the e2e admin in {}: {e}", file.display()));
}
