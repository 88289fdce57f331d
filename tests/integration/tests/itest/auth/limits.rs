//! auth's limits under concurrency: login throttling cannot be raced,
//! registrations are limited per client address, and a registration flood
//! neither exhausts the database pool nor shuts logins out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use interlock_itest::services::{self, Client, Tokens};
use interlock_itest::{Caller, Stack};
use interlock_proto::auth::v1::TokenPair;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::roles_internal_server::{RolesInternal, RolesInternalServer};
use interlock_proto::roles::v1::*;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tonic::{Code, Request, Response, Status};

use super::{edge, login_req, register_req};
use crate::assert_status;

/// How a batch of concurrent calls ended: `(code, message, retry-after)`
/// per call, `Code::Ok` for successes.
async fn outcomes<T: Send + 'static>(
    mut calls: JoinSet<Result<Response<T>, Status>>,
) -> Vec<(Code, String, Option<u64>)> {
    let mut out = Vec::new();
    while let Some(done) = calls.join_next().await {
        out.push(match done.expect("call task") {
            Ok(_) => (Code::Ok, String::new(), None),
            Err(s) => {
                let retry_after = s
                    .metadata()
                    .get("retry-after")
                    .map(|v| v.to_str().expect("ascii").parse().expect("seconds"));
                (s.code(), s.message().to_owned(), retry_after)
            }
        });
    }
    out
}

fn count(outcomes: &[(Code, String, Option<u64>)], code: Code) -> usize {
    outcomes.iter().filter(|o| o.0 == code).count()
}

/// `n` concurrent logins as `who(i)` with a wrong password, from one address.
async fn concurrent_wrong_logins(
    s: &Stack,
    n: usize,
    who: impl Fn(usize) -> String,
) -> Vec<(Code, String, Option<u64>)> {
    let client = AuthServiceClient::new(
        Caller::peer(&s.pki, "edge")
            .with_address("203.0.113.9")
            .to(s.auth()),
    );
    let mut calls = JoinSet::new();
    for i in 0..n {
        let mut c = client.clone();
        let req = login_req(&who(i), &format!("guess number {i}"));
        calls.spawn(async move { c.login(req).await });
    }
    outcomes(calls).await
}

/// 50 concurrent wrong passwords for one account, half typed as its login
/// and half as its email: only the account's limit (5) of them get a
/// password check ("invalid login"); the others are refused before bcrypt
/// with RESOURCE_EXHAUSTED and a retry hint. Login and email share the
/// bucket, so afterwards even the right password is refused both ways.
#[tokio::test]
async fn concurrent_wrong_passwords_verify_at_most_the_account_limit() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    auth.register(register_req("victim"))
        .await
        .expect("register");
    let results = concurrent_wrong_logins(&s, 50, |i| {
        if i % 2 == 0 {
            "victim".into()
        } else {
            " VICTIM@Example.com ".into()
        }
    })
    .await;

    assert_eq!(
        count(&results, Code::Unauthenticated),
        5,
        "password checks: {results:?}"
    );
    assert_eq!(count(&results, Code::ResourceExhausted), 45, "{results:?}");
    for (code, message, retry_after) in &results {
        if *code == Code::ResourceExhausted {
            assert!(message.contains("retry in"), "{message}");
            assert!((1..=900).contains(&retry_after.expect("retry-after")));
        }
    }
    for who in ["victim", "victim@example.com"] {
        assert_status(
            auth.login(login_req(who, "correct horse battery")).await,
            Code::ResourceExhausted,
            "retry in",
        );
    }
}

/// Guesses at a login nobody has are throttled exactly like guesses at a
/// real account, so the answers do not reveal which one it is.
#[tokio::test]
async fn unknown_logins_are_throttled_exactly_like_known_ones() {
    let s = Stack::with_auth().await;
    let results = concurrent_wrong_logins(&s, 20, |_| "Nobody-Here".into()).await;
    assert_eq!(count(&results, Code::Unauthenticated), 5, "{results:?}");
    assert_eq!(count(&results, Code::ResourceExhausted), 15, "{results:?}");
    let first = results
        .iter()
        .find(|r| r.0 == Code::Unauthenticated)
        .expect("a checked guess");
    assert_eq!(first.1, "invalid login or password");
}

/// Registrations are limited per client address; another address is not
/// affected.
#[tokio::test]
async fn registrations_are_throttled_per_client_address() {
    let s = Stack::start(Tokens::FromAuth, |c| {
        c.throttle.max_registrations_per_address = 3
    })
    .await;
    let from = |addr: &str| {
        AuthServiceClient::new(Caller::peer(&s.pki, "edge").with_address(addr).to(s.auth()))
    };
    let mut busy = from("192.0.2.10");
    for login in ["reg-one", "reg-two", "reg-three"] {
        busy.register(register_req(login)).await.expect(login);
    }
    let refused = busy
        .register(register_req("reg-four"))
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("too many registrations, retry in"),
        "{}",
        refused.message()
    );
    assert!(refused.metadata().get("retry-after").is_some());
    from("192.0.2.11")
        .register(register_req("reg-four"))
        .await
        .expect("another address registers");
}

/// A stand-in for roles' internal API that holds every AssignDefaultRoles
/// until the test releases it, then forwards to the real roles.
#[derive(Clone)]
struct StallingRoles {
    upstream: RolesInternalClient<Client>,
    arrived: Arc<(std::sync::atomic::AtomicUsize, Notify)>,
    release: watch::Receiver<bool>,
}

impl StallingRoles {
    /// Starts it on a free port; returns its address and the release switch.
    async fn start(s: &Stack) -> (SocketAddr, Self, watch::Sender<bool>) {
        let (release_tx, release) = watch::channel(false);
        let roles = Self {
            upstream: RolesInternalClient::new(Caller::peer(&s.pki, "auth").to(s.roles)),
            arrived: Arc::default(),
            release,
        };
        let incoming =
            tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .expect("bind");
        let addr = incoming.local_addr().expect("addr");
        let server = tonic::transport::Server::builder()
            .add_service(RolesInternalServer::new(roles.clone()))
            .serve_with_incoming(incoming);
        tokio::spawn(server);
        (addr, roles, release_tx)
    }

    /// Resolves once at least `n` calls are being held.
    async fn held(&self, n: usize) {
        let (count, notify) = &*self.arrived;
        loop {
            let changed = notify.notified();
            if count.load(std::sync::atomic::Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }
}

#[tonic::async_trait]
impl RolesInternal for StallingRoles {
    async fn get_roles(
        &self,
        req: Request<GetRolesRequest>,
    ) -> Result<Response<GetRolesResponse>, Status> {
        self.upstream.clone().get_roles(req.into_inner()).await
    }

    async fn batch_get_roles(
        &self,
        req: Request<BatchGetRolesRequest>,
    ) -> Result<Response<BatchGetRolesResponse>, Status> {
        self.upstream
            .clone()
            .batch_get_roles(req.into_inner())
            .await
    }

    async fn assign_default_roles(
        &self,
        req: Request<AssignDefaultRolesRequest>,
    ) -> Result<Response<AssignDefaultRolesResponse>, Status> {
        let (count, notify) = &*self.arrived;
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        notify.notify_waiters();
        let mut release = self.release.clone();
        release.wait_for(|go| *go).await.expect("switch kept");
        self.upstream
            .clone()
            .assign_default_roles(req.into_inner())
            .await
    }

    async fn remove_user(
        &self,
        req: Request<RemoveUserRequest>,
    ) -> Result<Response<RemoveUserResponse>, Status> {
        self.upstream.clone().remove_user(req.into_inner()).await
    }
}

/// Many concurrent registrations, each stuck in its call to roles, hold no
/// database connection meanwhile: a login on the same auth still gets
/// through (it used to wait out the pool and fail UNAVAILABLE). Once roles
/// answers, every registration completes.
#[tokio::test]
async fn stalled_registrations_do_not_make_a_concurrent_login_unavailable() {
    let s = Stack::start(Tokens::FromAuth, |c| {
        // Nobody gives up waiting for bcrypt in this test: all of them must
        // reach roles and complete.
        c.throttle.hash_queue_timeout_ms = 60_000;
    })
    .await;
    edge(&s)
        .register(register_req("steady"))
        .await
        .expect("register");
    let (roles, stalling, release) = StallingRoles::start(&s).await;
    // A replica on the same database whose roles is the stand-in.
    let mut settings = s.auth_settings.clone().expect("auth settings");
    settings.peers.roles_url = format!("http://{roles}");
    let pool_size = settings.common.database.max_connections as usize;
    let auth = services::spawn_auth(&s.pki, settings).await;

    let registrations = 5 * pool_size;
    let mut calls = JoinSet::new();
    for i in 0..registrations {
        let mut c = AuthServiceClient::new(
            Caller::peer(&s.pki, "edge")
                .with_address(&format!("198.18.0.{i}"))
                .to(auth),
        );
        let req = register_req(&format!("flood{i}"));
        calls.spawn(async move { c.register(req).await });
    }
    // As many registrations are inside their roles call as the pool has
    // connections (before the fix each held one there).
    tokio::time::timeout(Duration::from_secs(120), stalling.held(pool_size))
        .await
        .expect("registrations reach roles");

    let login: Result<Response<TokenPair>, Status> = AuthServiceClient::new(
        Caller::peer(&s.pki, "edge")
            .with_address("198.19.0.1")
            .to(auth),
    )
    .login(login_req("steady", "correct horse battery"))
    .await;
    release.send(true).expect("stand-in running");
    let login = login.expect("login during the flood");
    assert!(!login.get_ref().access_token.is_empty());

    let results = outcomes(calls).await;
    assert_eq!(count(&results, Code::Ok), registrations, "{results:?}");
}
