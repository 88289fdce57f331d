//! The services started in-process on 127.0.0.1, each with its own fresh
//! database, and clients that present a chosen peer and token. Each is
//! built exactly as its binary builds it and runs on a listener the test
//! bound on port 0 and handed over.
//!
//! Without sidecars, the test plays the sidecar's part: a service's own
//! outbound calls carry an XFCC header for its SVID (see
//! `interlock_common::client::Outbound`).

use std::net::SocketAddr;

use interlock_common::client::Outbound;
use interlock_common::peer::XFCC_HEADER;
use interlock_common::server::{App, Listener};
use interlock_common::settings::{
    Absent, CommonSettings, DatabaseSettings, JwtSettings, LogSettings, PeerSettings,
    ServerSettings,
};
use secrecy::SecretString;

use crate::pg::{self, TestDb};
use crate::pki::Pki;
use crate::tokens::TokenIssuer;

/// Clients present a chosen peer, token and address: the shared test kit's
/// caller, with this kit's [`Pki`] issuing the SVIDs.
pub use interlock_testkit::{Caller, Client};

fn outbound(pki: &Pki, workload: &str) -> Outbound {
    Outbound::with_header(XFCC_HEADER, &pki.xfcc(workload)).expect("xfcc header")
}

/// The shared sections for a service under test. `[server]` is a
/// placeholder: tests bind the listener themselves and hand it over.
pub(crate) fn common<Db, Jwt>(pki: &Pki, database: Db, jwt: Jwt) -> CommonSettings<Db, Jwt> {
    CommonSettings {
        server: ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)).into(),
            unix_peer_uids: None,
        },
        peer: PeerSettings {
            workload_api_socket: None,
            bundle_pem_file: Some(pki.bundle_path()),
        },
        log: LogSettings::default(),
        database,
        jwt,
    }
}

fn jwt_settings(jwks_url: &str) -> JwtSettings {
    JwtSettings {
        jwks_url: jwks_url.to_owned(),
        issuer: crate::tokens::ISSUER.into(),
        audience: crate::tokens::AUDIENCE.into(),
        jwks_socket: None,
        leeway_secs: 0,
        min_refresh_secs: 1,
        max_age_secs: 300,
        revoked_sessions_url: None,
        // Fast, so a test sees a revocation quickly.
        revocation_refresh_ms: 100,
    }
}

/// A listener on 127.0.0.1:0 and the port it got: the address is known
/// before the service starts, and nobody else can take it meanwhile.
pub async fn bind_local() -> (Listener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    (listener.into(), addr)
}

/// A port nobody listened on a moment ago, for a peer address that must
/// refuse connections. Never for a service to listen on: bind with
/// [`bind_local`] and hand the listener over instead.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `app` on `listener` in the background; it stops with the test's
/// runtime.
fn spawn(app: App, listener: Listener) {
    tokio::spawn(async move {
        if let Err(e) = app.run(listener, std::future::pending()).await {
            eprintln!("service stopped: {e:#}");
        }
    });
}

pub async fn spawn_roles(pki: &Pki, jwks_url: &str) -> (SocketAddr, TestDb) {
    let (listener, addr) = bind_local().await;
    (addr, run_roles(pki, jwks_url, listener).await)
}

/// roles listening where `server` says (e.g. a Unix socket), running.
pub async fn spawn_roles_on(pki: &Pki, jwks_url: &str, server: ServerSettings) -> TestDb {
    let listener = Listener::bind(&server).await.expect("bind roles");
    run_roles(pki, jwks_url, listener).await
}

async fn run_roles(pki: &Pki, jwks_url: &str, listener: Listener) -> TestDb {
    let db = pg::create("roles").await;
    let settings = interlock_roles::Settings {
        common: common(
            pki,
            DatabaseSettings::from_url(db.url.clone()),
            jwt_settings(jwks_url),
        ),
        default_roles: vec!["user".into()],
    };
    let app = interlock_roles::build(settings, outbound(pki, "roles"))
        .await
        .expect("roles builds");
    spawn(app, listener);
    db
}

pub async fn spawn_users(pki: &Pki, jwks_url: &str, roles: SocketAddr) -> (SocketAddr, TestDb) {
    let (listener, addr) = bind_local().await;
    (addr, run_users(pki, jwks_url, roles, listener).await)
}

async fn run_users(pki: &Pki, jwks_url: &str, roles: SocketAddr, listener: Listener) -> TestDb {
    let db = pg::create("users").await;
    let settings = interlock_users::Settings {
        common: common(
            pki,
            DatabaseSettings::from_url(db.url.clone()),
            jwt_settings(jwks_url),
        ),
        peers: interlock_users::config::PeersConfig {
            roles_url: format!("http://{roles}"),
        },
    };
    let app = interlock_users::build(settings, outbound(pki, "users"))
        .await
        .expect("users builds");
    spawn(app, listener);
    db
}

pub async fn spawn_notifications(pki: &Pki, jwks_url: &str) -> (SocketAddr, TestDb) {
    let db = pg::create("notifications").await;
    let settings = interlock_notifications::Settings {
        common: common(
            pki,
            DatabaseSettings::from_url(db.url.clone()),
            jwt_settings(jwks_url),
        ),
    };
    let app = interlock_notifications::build(settings, outbound(pki, "notifications"))
        .await
        .expect("notifications builds");
    let (listener, addr) = bind_local().await;
    spawn(app, listener);
    (addr, db)
}

/// The test SMTP server, scripts/smtp.sh's Postfix (shared by every test,
/// like the PostgreSQL cluster; each test mails its own addresses):
/// `INTERLOCK_TEST_SMTP_ADDR`, `_CA` and `INTERLOCK_TEST_MAILDIR` (printed
/// by `scripts/smtp.sh env`), by default the topology's.
#[derive(Debug, Clone)]
pub struct TestSmtp {
    pub host: String,
    pub port: u16,
    pub ca: std::path::PathBuf,
    pub maildir: std::path::PathBuf,
}

impl TestSmtp {
    /// The server, if its CA exists (i.e. scripts/smtp.sh has run).
    pub fn find() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let addr = var("INTERLOCK_TEST_SMTP_ADDR").unwrap_or_else(|| "127.0.0.1:17025".into());
        let (host, port) = addr.rsplit_once(':')?;
        let home = std::path::Path::new("/var/lib/interlock/smtp");
        let ca = var("INTERLOCK_TEST_SMTP_CA")
            .map_or_else(|| home.join("tls").join("ca.pem"), Into::into);
        let maildir = var("INTERLOCK_TEST_MAILDIR")
            .map_or_else(|| home.join("mail").join("Maildir"), Into::into);
        let port = port.parse().ok()?;
        ca.is_file().then(|| Self {
            host: host.to_owned(),
            port,
            ca,
            maildir,
        })
    }

    /// The server, or a panic saying how to start it.
    pub fn required() -> Self {
        Self::find()
            .expect("no test SMTP server: run `bash scripts/smtp.sh start` (scripts/test.sh does)")
    }

    /// auth's `[email]` for it: STARTTLS, trusting its CA.
    pub fn email_config(&self) -> interlock_auth::config::EmailConfig {
        interlock_auth::config::EmailConfig {
            smtp_host: self.host.clone(),
            smtp_port: self.port,
            tls: interlock_auth::config::SmtpTls::Starttls,
            tls_ca_file: Some(self.ca.clone()),
            tls_server_name: Some("localhost".into()),
            username: None,
            password: None,
            from: "Interlock <no-reply@interlock.local>".into(),
            product_name: "Interlock".into(),
            max_attempts: 3,
            timeout_secs: 10,
        }
    }

    /// Every message to `to` once there are `n`, oldest first. Waits
    /// without blocking the runtime: auth delivers on it.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<interlock_mesh::mail::Mail> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let found = interlock_mesh::mail::messages_to(&self.maildir, to);
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} message(s) to {to} in {} after 20 s, expected {n}",
                found.len(),
                self.maildir.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// auth's settings for tests: bcrypt at the minimum cost, secrets random;
/// email verification off (tests of it turn it on), email through the
/// test SMTP server when it runs.
pub fn auth_settings(pki: &Pki, db: &TestDb, users: &str, roles: &str) -> interlock_auth::Settings {
    use interlock_auth::config::*;
    let secret = || {
        SecretString::from(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    };
    interlock_auth::Settings {
        common: common(pki, DatabaseSettings::from_url(db.url.clone()), Absent),
        tokens: TokensConfig::default(),
        keys: KeysConfig {
            seal_secret: secret(),
            rotation_interval_secs: 7 * 24 * 3600,
            publish_lead_secs: 600,
        },
        passwords: PasswordsConfig {
            pepper: secret(),
            bcrypt_cost: 10,
        },
        throttle: ThrottleConfig::default(),
        peers: PeersConfig {
            users_url: users.to_owned(),
            roles_url: roles.to_owned(),
        },
        accounts: AccountsConfig {
            require_email_verification: false,
            ..AccountsConfig::default()
        },
        email: TestSmtp::find().map(|smtp| smtp.email_config()),
    }
}

/// An auth replica with `settings`, on a port of its own.
pub async fn spawn_auth(pki: &Pki, settings: interlock_auth::Settings) -> SocketAddr {
    let (listener, addr) = bind_local().await;
    run_auth(pki, settings, listener).await;
    addr
}

async fn run_auth(pki: &Pki, settings: interlock_auth::Settings, listener: Listener) {
    let app = interlock_auth::build(settings, outbound(pki, "auth"))
        .await
        .expect("auth builds");
    spawn(app, listener);
}

/// Whose keys the services trust for user tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// The real auth service's JWKS.
    FromAuth,
    /// The test [`TokenIssuer`], to forge good and bad tokens at will.
    FromTestIssuer,
}

/// The four services wired together.
pub struct Stack {
    pub pki: Pki,
    pub issuer: TokenIssuer,
    pub auth: Option<SocketAddr>,
    pub auth_db: Option<TestDb>,
    /// The settings auth was started with (secrets included).
    pub auth_settings: Option<interlock_auth::Settings>,
    pub roles: SocketAddr,
    pub roles_db: TestDb,
    pub users: SocketAddr,
    pub users_db: TestDb,
    pub notifications: SocketAddr,
    pub notifications_db: TestDb,
}

impl Stack {
    /// Starts roles, users and notifications, plus auth with
    /// [`Tokens::FromAuth`]; `tweak` adjusts auth's settings.
    pub async fn start(tokens: Tokens, tweak: impl FnOnce(&mut interlock_auth::Settings)) -> Self {
        let pki = Pki::new();
        let issuer = TokenIssuer::start().await;
        // Every address is known before anything starts, so auth (which
        // calls users and roles) runs first, and the others' first fetch of
        // its JWKS and revoked sessions finds it answering.
        let (roles_listener, roles) = bind_local().await;
        let (users_listener, users) = bind_local().await;
        let (auth, auth_db, auth_settings, jwks) = match tokens {
            Tokens::FromAuth => {
                let (listener, addr) = bind_local().await;
                let db = pg::create("auth").await;
                let mut settings = auth_settings(
                    &pki,
                    &db,
                    &format!("http://{users}"),
                    &format!("http://{roles}"),
                );
                tweak(&mut settings);
                run_auth(&pki, settings.clone(), listener).await;
                let jwks = format!("http://{addr}/.well-known/jwks.json");
                (Some(addr), Some(db), Some(settings), jwks)
            }
            Tokens::FromTestIssuer => (None, None, None, issuer.jwks_url.clone()),
        };
        let roles_db = run_roles(&pki, &jwks, roles_listener).await;
        let users_db = run_users(&pki, &jwks, roles, users_listener).await;
        let (notifications, notifications_db) = spawn_notifications(&pki, &jwks).await;
        Self {
            pki,
            issuer,
            auth,
            auth_db,
            auth_settings,
            roles,
            roles_db,
            users,
            users_db,
            notifications,
            notifications_db,
        }
    }

    /// The stack with test-issued tokens and no auth.
    pub async fn with_test_tokens() -> Self {
        Self::start(Tokens::FromTestIssuer, |_| {}).await
    }

    /// The stack with the real auth.
    pub async fn with_auth() -> Self {
        Self::start(Tokens::FromAuth, |_| {}).await
    }

    pub fn auth(&self) -> SocketAddr {
        self.auth.expect("this stack runs auth")
    }

    /// Registers an Android device with `token` for `user` (through the
    /// external API, as the edge would); returns the device id.
    pub async fn register_device(&self, user: uuid::Uuid, token: &str) -> String {
        use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
        use interlock_proto::notifications::v1::{Platform, RegisterDeviceRequest};
        NotificationsServiceClient::new(self.as_user(user).to(self.notifications))
            .register_device(RegisterDeviceRequest {
                fcm_token: token.into(),
                platform: Platform::Android as i32,
            })
            .await
            .expect("register device")
            .into_inner()
            .id
    }

    /// Caller from the edge with a valid test token for `user_id`.
    pub fn as_user(&self, user_id: uuid::Uuid) -> Caller {
        Caller::user(&self.pki, &self.issuer.token(user_id))
    }

    /// Caller `workload` (its SVID via XFCC), no user token.
    pub fn as_peer(&self, workload: &str) -> Caller {
        Caller::peer(&self.pki, workload)
    }
}
