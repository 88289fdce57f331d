//! The suite's admin, made the one way the product offers to make a first
//! admin: register through the edge, then `interlock-roles bootstrap-admin`
//! run by the operator (locally as roles' Unix user with roles' own
//! configuration; in compose with `docker exec` in roles' container). Its
//! credentials are kept in the deployment's root-only secrets, so later
//! runs against the same mesh log in as the same admin.

use std::path::{Path, PathBuf};

use interlock_proto::auth::v1::RegisterRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_testkit::{login_request, register_request};
use tokio::sync::OnceCell;
use tonic::Code;

use crate::{Compose, Target, as_workload, edge, unique_login};

/// A login and its password, saved as `login:password`.
struct Credentials {
    login: String,
    password: String,
}

/// An access token of the e2e admin; the admin is made on first use.
pub async fn admin_token(target: &Target) -> String {
    // Tests run concurrently: one of them makes the admin, the rest wait.
    static ADMIN: OnceCell<Credentials> = OnceCell::const_new();
    let admin = ADMIN.get_or_init(|| admin(target)).await;
    AuthServiceClient::new(edge(target, None).await)
        .login(login_request(&admin.login, &admin.password))
        .await
        .expect("the e2e admin logs in")
        .into_inner()
        .access_token
}

fn credentials_file(target: &Target) -> PathBuf {
    match target {
        Target::Local(mesh) => mesh.run_dir.join("secrets").join("e2e-admin"),
        Target::Compose(compose) => compose.secrets().join("e2e-admin"),
    }
}

/// An admin that can log in: the saved one, or a new one.
async fn admin(target: &Target) -> Credentials {
    let file = credentials_file(target);
    let saved = std::fs::read_to_string(&file).ok().and_then(|c| {
        let (login, password) = c.trim().split_once(':')?;
        Some(Credentials {
            login: login.to_owned(),
            password: password.to_owned(),
        })
    });
    if let Some(saved) = saved {
        let login = AuthServiceClient::new(edge(target, None).await)
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
    let registered = AuthServiceClient::new(edge(target, None).await)
        .register(RegisterRequest {
            password: made.password.clone(),
            ..register_request(&made.login)
        })
        .await
        .expect("register the e2e admin")
        .into_inner();
    if registered.email_verification_required {
        crate::confirm_email(target, &made.login, &made.password).await;
    }
    bootstrap_admin(target, &registered.user_id);
    write_secret(&file, &format!("{}:{}", made.login, made.password));
    made
}

/// Makes `user_id` the first admin with the documented command. It refuses
/// when an admin exists already; the suite then stops, because the other
/// ways to an admin (somebody else's credentials, writing to roles'
/// database) are not the suite's to take.
fn bootstrap_admin(target: &Target, user_id: &str) {
    let mut cmd = match target {
        Target::Local(mesh) => {
            let mut cmd = as_workload(
                "roles",
                &mesh.bin("interlock-roles"),
                &["bootstrap-admin", user_id],
            );
            cmd.env(
                "INTERLOCK_CONFIG",
                mesh.workload_dir("roles").join("config.toml"),
            );
            cmd
        }
        Target::Compose(compose) => {
            let mut cmd = compose.docker();
            // Through the image's entrypoint, which turns the compose
            // secrets (roles' database URL) into its environment.
            cmd.args(["exec", &Compose::container("roles")])
                .args(["docker-entrypoint.sh", "interlock-roles"])
                .args(["bootstrap-admin", user_id]);
            cmd
        }
    };
    let out = cmd.output().expect("run bootstrap-admin");
    assert!(
        out.status.success(),
        "interlock-roles bootstrap-admin failed: {}\n\
         An admin this suite did not make (it saves its own in {}) already exists: \
         restore that file, or run the suite against a fresh mesh.",
        String::from_utf8_lossy(&out.stderr),
        credentials_file(target).display()
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
