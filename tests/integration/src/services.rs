//! The services started in-process on 127.0.0.1, each with its own fresh
//! database, and clients that present a chosen peer and token.
//!
//! Without sidecars, the test plays the sidecar's part: a service's own
//! outbound calls carry an XFCC header for its SVID (see
//! `interlock_common::client::Outbound`).

use std::net::SocketAddr;

use interlock_common::client::Outbound;
use interlock_common::db::DatabaseSettings;
use interlock_common::peer::XFCC_HEADER;
use interlock_common::settings::{JwtSettings, PeerSettings, ServerSettings};
use interlock_common::telemetry::LogSettings;
use secrecy::SecretString;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::pg::{self, TestDb};
use crate::pki::Pki;
use crate::tokens::TokenIssuer;

/// A client channel with the caller's identity attached.
pub type Client = InterceptedService<Channel, Caller>;

/// Who a test request claims to be: the peer (as the sidecar would forward
/// it), the user's bearer token, and the client address the edge reports.
#[derive(Clone, Default)]
pub struct Caller {
    pub xfcc: Option<String>,
    pub bearer: Option<String>,
    pub address: Option<String>,
}

impl Caller {
    /// A call arriving from `workload` through the sidecar.
    pub fn peer(pki: &Pki, workload: &str) -> Self {
        Self {
            xfcc: Some(pki.xfcc(workload)),
            ..Default::default()
        }
    }

    /// A call from the edge carrying `token`.
    pub fn user(pki: &Pki, token: &str) -> Self {
        Self::peer(pki, "edge").with_token(token)
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    pub fn with_address(mut self, address: &str) -> Self {
        self.address = Some(address.to_owned());
        self
    }

    /// Opens a client to a service's Unix socket for this caller.
    pub fn to_unix(&self, path: &std::path::Path) -> Client {
        let path = path.to_owned();
        let channel = Endpoint::from_static("http://localhost").connect_with_connector_lazy(
            tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }),
        );
        InterceptedService::new(channel, self.clone())
    }

    /// Opens a client to `addr` for this caller.
    pub fn to(&self, addr: SocketAddr) -> Client {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        InterceptedService::new(channel, self.clone())
    }
}

impl Interceptor for Caller {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        if let Some(x) = &self.xfcc {
            md.insert(
                XFCC_HEADER,
                MetadataValue::try_from(x.as_str()).expect("ascii"),
            );
        }
        if let Some(t) = &self.bearer {
            md.insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {t}")).expect("ascii"),
            );
        }
        if let Some(a) = &self.address {
            md.insert(
                "x-envoy-external-address",
                MetadataValue::try_from(a.as_str()).expect("ascii"),
            );
        }
        Ok(req)
    }
}

fn outbound(pki: &Pki, workload: &str) -> Outbound {
    Outbound::with_header(XFCC_HEADER, &pki.xfcc(workload)).expect("xfcc header")
}

fn peer_settings(pki: &Pki) -> PeerSettings {
    PeerSettings {
        workload_api_socket: None,
        bundle_pem_file: Some(pki.bundle_path()),
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

fn listen(port: u16) -> ServerSettings {
    ServerSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], port)).into(),
        unix_peer_uids: None,
    }
}

/// A port that was free a moment ago (for a service whose address another
/// must know before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `run` in the background; the task ends with the test's runtime.
fn spawn<F>(run: F)
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = run.await {
            eprintln!("service stopped: {e:#}");
        }
    });
}

pub async fn spawn_roles(pki: &Pki, jwks_url: &str) -> (SocketAddr, TestDb) {
    let (app, db) = build_roles(pki, jwks_url, listen(0)).await;
    let addr = app.local_addr().expect("tests listen on TCP");
    spawn(app.run(std::future::pending()));
    (addr, db)
}

/// roles listening where `server` says (e.g. a Unix socket), running.
pub async fn spawn_roles_on(pki: &Pki, jwks_url: &str, server: ServerSettings) -> TestDb {
    let (app, db) = build_roles(pki, jwks_url, server).await;
    spawn(app.run(std::future::pending()));
    db
}

async fn build_roles(
    pki: &Pki,
    jwks_url: &str,
    server: ServerSettings,
) -> (interlock_common::server::App, TestDb) {
    let db = pg::create("roles").await;
    let settings = interlock_roles::Settings {
        server,
        database: DatabaseSettings::from_url(db.url.clone()),
        peer: peer_settings(pki),
        jwt: jwt_settings(jwks_url),
        log: LogSettings::default(),
        default_roles: vec!["user".into()],
    };
    let app = interlock_roles::Application::build_with(settings, outbound(pki, "roles"))
        .await
        .expect("roles builds");
    (app, db)
}

pub async fn spawn_users(pki: &Pki, jwks_url: &str, roles: SocketAddr) -> (SocketAddr, TestDb) {
    let db = pg::create("users").await;
    let settings = interlock_users::Settings {
        server: listen(0),
        database: DatabaseSettings::from_url(db.url.clone()),
        peer: peer_settings(pki),
        jwt: jwt_settings(jwks_url),
        log: LogSettings::default(),
        peers: interlock_users::config::PeersConfig {
            roles_url: format!("http://{roles}"),
        },
    };
    let app = interlock_users::Application::build_with(settings, outbound(pki, "users"))
        .await
        .expect("users builds");
    let addr = app.local_addr().expect("tests listen on TCP");
    spawn(app.run(std::future::pending()));
    (addr, db)
}

pub async fn spawn_notifications(pki: &Pki, jwks_url: &str) -> (SocketAddr, TestDb) {
    let db = pg::create("notifications").await;
    let settings = interlock_notifications::Settings {
        server: listen(0),
        database: DatabaseSettings::from_url(db.url.clone()),
        peer: peer_settings(pki),
        jwt: jwt_settings(jwks_url),
        log: LogSettings::default(),
    };
    let app =
        interlock_notifications::Application::build_with(settings, outbound(pki, "notifications"))
            .await
            .expect("notifications builds");
    let addr = app.local_addr().expect("tests listen on TCP");
    spawn(app.run(std::future::pending()));
    (addr, db)
}

/// auth's settings for tests: bcrypt at the minimum cost, secrets random.
pub fn auth_settings(
    pki: &Pki,
    db: &TestDb,
    port: u16,
    users: &str,
    roles: &str,
) -> interlock_auth::Settings {
    use interlock_auth::config::*;
    let secret = || {
        SecretString::from(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    };
    interlock_auth::Settings {
        server: listen(port),
        database: DatabaseSettings::from_url(db.url.clone()),
        peer: peer_settings(pki),
        log: LogSettings::default(),
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
    }
}

pub async fn spawn_auth(pki: &Pki, settings: interlock_auth::Settings) -> SocketAddr {
    let app = interlock_auth::Application::build_with(settings, outbound(pki, "auth"))
        .await
        .expect("auth builds");
    let addr = app.local_addr().expect("tests listen on TCP");
    spawn(app.run(std::future::pending()));
    addr
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
        let auth_port = free_port();
        let jwks = match tokens {
            Tokens::FromAuth => format!("http://127.0.0.1:{auth_port}/.well-known/jwks.json"),
            Tokens::FromTestIssuer => issuer.jwks_url.clone(),
        };
        let (roles, roles_db) = spawn_roles(&pki, &jwks).await;
        let (users, users_db) = spawn_users(&pki, &jwks, roles).await;
        let (notifications, notifications_db) = spawn_notifications(&pki, &jwks).await;
        let (auth, auth_db, auth_settings) = if tokens == Tokens::FromAuth {
            let db = pg::create("auth").await;
            let mut settings = auth_settings(
                &pki,
                &db,
                auth_port,
                &format!("http://{users}"),
                &format!("http://{roles}"),
            );
            tweak(&mut settings);
            (
                Some(spawn_auth(&pki, settings.clone()).await),
                Some(db),
                Some(settings),
            )
        } else {
            (None, None, None)
        };
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
