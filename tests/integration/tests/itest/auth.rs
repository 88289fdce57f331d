//! auth end to end with the real users and roles: registration, login,
//! refresh rotation with reuse detection, logout, throttling, JWKS and key
//! rotation. Limits under concurrency (throttling races, floods) are in
//! [`limits`].

use std::time::{Duration, Instant};

use interlock_itest::services::{self, Tokens};
use interlock_itest::{Caller, Stack};
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::auth::v1::*;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{PASSWORD, login_request as login_req, register_request as register_req};
use tonic::Code;

use crate::assert_status;

mod accounts;
mod limits;

fn edge(s: &Stack) -> AuthServiceClient<services::Client> {
    AuthServiceClient::new(Caller::peer(&s.pki, "edge").to(s.auth()))
}

/// Registers `login` with the kit's password; `what` names the step in a
/// failure. Returns the new user's id.
async fn register(
    auth: &mut AuthServiceClient<services::Client>,
    login: &str,
    what: &str,
) -> String {
    auth.register(register_req(login))
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
        .into_inner()
        .user_id
}

/// Logs `who` (login or email) in with the kit's password; `what` names
/// the step in a failure.
async fn log_in(
    auth: &mut AuthServiceClient<services::Client>,
    who: &str,
    what: &str,
) -> TokenPair {
    auth.login(login_req(who, PASSWORD))
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
        .into_inner()
}

/// Register -> login (by login and by email) -> GetMe through users with the
/// token auth issued, roles included.
#[tokio::test]
async fn register_then_login_then_get_me_with_default_roles() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    let user_id = register(&mut auth, "grace", "register").await;

    let by_login = log_in(&mut auth, "grace", "login").await;
    let by_email = log_in(&mut auth, "GRACE@example.com", "email").await;
    assert_eq!(by_login.user_id, user_id);
    assert_eq!(by_email.user_id, user_id);
    assert_ne!(
        by_login.session_id, by_email.session_id,
        "each login is its own session"
    );
    assert_eq!(by_login.token_type, "Bearer");

    let me = UsersServiceClient::new(Caller::user(&s.pki, &by_login.access_token).to(s.users))
        .get_me(GetMeRequest {})
        .await
        .expect("get me")
        .into_inner();
    assert_eq!(
        (me.id.as_str(), me.login.as_str(), me.email.as_str()),
        (user_id.as_str(), "grace", "grace@example.com")
    );
    assert_eq!(me.roles, vec!["user".to_owned()]);
}

/// The access token carries the documented claims and an ES256 `kid` that
/// the JWKS (gRPC and HTTP) publishes.
#[tokio::test]
async fn access_token_claims_and_jwks() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    let user_id = register(&mut auth, "claims", "register").await;
    let pair = log_in(&mut auth, "claims", "login").await;
    let header = jsonwebtoken::decode_header(&pair.access_token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let kid = header.kid.expect("kid");
    let claims: interlock_common::jwt::AccessClaims =
        jsonwebtoken::dangerous::insecure_decode_claims(&pair.access_token).expect("claims");
    assert_eq!(
        (claims.sub.as_str(), claims.sid.as_str()),
        (user_id.as_str(), pair.session_id.as_str())
    );
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("interlock-auth", "interlock")
    );
    assert_eq!(claims.exp - claims.iat, 900, "15 minutes");
    assert!(!claims.jti.is_empty());

    let jwks = auth
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    assert!(jwks.key_ids.contains(&kid));
    assert!(!jwks.jwks_json.contains("\"d\""), "no private key material");
}

/// Every refresh rotates; a used refresh token revokes the whole session.
#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    auth.register(register_req("rotor"))
        .await
        .expect("register");
    let first = log_in(&mut auth, "rotor", "login").await;
    let second = auth
        .refresh(RefreshRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .expect("refresh")
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.session_id, first.session_id);
    let third = auth
        .refresh(RefreshRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .expect("refresh again")
        .into_inner();

    // An attacker replays the first token: the family is revoked...
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: first.refresh_token,
        })
        .await,
        Code::Unauthenticated,
        "already used",
    );
    // ...so the legitimate newest token no longer works either.
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: third.refresh_token,
        })
        .await,
        Code::Unauthenticated,
        "not valid",
    );
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: "made-up".into(),
        })
        .await,
        Code::Unauthenticated,
        "not valid",
    );
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "refresh_token: is required",
    );
}

/// Logout needs the session's access token and ends its refresh tokens.
#[tokio::test]
async fn logout_ends_the_session() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    auth.register(register_req("leaver"))
        .await
        .expect("register");
    let pair = log_in(&mut auth, "leaver", "login").await;
    assert_status(
        auth.logout(LogoutRequest {}).await,
        Code::Unauthenticated,
        "missing access token",
    );
    let mut with_token =
        AuthServiceClient::new(Caller::user(&s.pki, &pair.access_token).to(s.auth()));
    let out = with_token
        .logout(LogoutRequest {})
        .await
        .expect("logout")
        .into_inner();
    assert_eq!(out.session_id, pair.session_id);
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: pair.refresh_token,
        })
        .await,
        Code::Unauthenticated,
        "not valid",
    );
}

/// Registration validates each field and refuses taken logins and emails;
/// an identical retry after success does not create a second user.
#[tokio::test]
async fn register_validates_and_refuses_duplicates() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    let cases = [
        (
            RegisterRequest {
                login: "x".into(),
                ..register_req("val")
            },
            "login: must be 3 to 32",
        ),
        (
            RegisterRequest {
                email: "nope".into(),
                ..register_req("val")
            },
            "email: must be an email",
        ),
        (
            RegisterRequest {
                password: "short".into(),
                ..register_req("val")
            },
            "password: must be at least 8",
        ),
        (
            RegisterRequest {
                first_name: " ".into(),
                ..register_req("val")
            },
            "first_name: is required",
        ),
        (
            RegisterRequest {
                last_name: "x".repeat(101),
                ..register_req("val")
            },
            "last_name: must be at most 100",
        ),
    ];
    for (req, msg) in cases {
        assert_status(auth.register(req).await, Code::InvalidArgument, msg);
    }
    let id = register(&mut auth, "dup", "first").await;
    assert_status(
        auth.register(register_req("dup")).await,
        Code::AlreadyExists,
        "login is already registered",
    );
    let same_email = RegisterRequest {
        login: "dup2".into(),
        ..register_req("dup")
    };
    assert_status(
        auth.register(same_email).await,
        Code::AlreadyExists,
        "email is already registered",
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM profiles")
        .fetch_one(
            &sqlx::PgPool::connect(&s.users_db.url)
                .await
                .expect("users db"),
        )
        .await
        .expect("count");
    assert_eq!(count, 1, "one user, {id}");
}

/// When roles cannot be reached, registration leaves nothing behind, and the
/// same registration succeeds once roles is back.
#[tokio::test]
async fn failed_registration_is_compensated_and_can_be_retried() {
    let s = Stack::with_auth().await;
    // A second auth replica on the same database whose roles address is dead.
    let mut settings = s.auth_settings.clone().expect("auth settings");
    settings.peers.roles_url = format!("http://127.0.0.1:{}", services::free_port());
    let broken = services::spawn_auth(&s.pki, settings).await;
    let mut via_broken = AuthServiceClient::new(Caller::peer(&s.pki, "edge").to(broken));
    assert_status(
        via_broken.register(register_req("phoenix")).await,
        Code::Unavailable,
        "roles is unavailable",
    );

    let profiles: i64 = sqlx::query_scalar("SELECT count(*) FROM profiles")
        .fetch_one(
            &sqlx::PgPool::connect(&s.users_db.url)
                .await
                .expect("users db"),
        )
        .await
        .expect("count");
    assert_eq!(profiles, 0, "the users profile was compensated");
    let mut auth = edge(&s);
    assert_status(
        auth.login(login_req("phoenix", "correct horse battery"))
            .await,
        Code::Unauthenticated,
        "invalid login",
    );

    let id = register(&mut auth, "phoenix", "retry succeeds").await;
    // The retry resumed the same registration to the end: it logs in, and
    // users serves the profile with the default roles.
    let pair = log_in(&mut auth, "phoenix", "login after the retry").await;
    assert_eq!(pair.user_id, id);
    let me = UsersServiceClient::new(Caller::user(&s.pki, &pair.access_token).to(s.users))
        .get_me(GetMeRequest {})
        .await
        .expect("profile")
        .into_inner();
    assert_eq!((me.id, me.roles), (id, vec!["user".to_owned()]));
}

/// Wrong password and unknown login look the same, and the unknown login
/// still pays for a bcrypt verification (it is not answered instantly).
#[tokio::test]
async fn unknown_login_and_wrong_password_are_indistinguishable() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    auth.register(register_req("known"))
        .await
        .expect("register");
    let timed = |r: Result<tonic::Response<TokenPair>, tonic::Status>, started: Instant| {
        let e = r.expect_err("must fail");
        (e.code(), e.message().to_owned(), started.elapsed())
    };
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        wrong.push(timed(
            auth.login(login_req("known", &format!("wrong password {i}")))
                .await,
            t,
        ));
        let t = Instant::now();
        unknown.push(timed(
            auth.login(login_req(&format!("ghost{i}"), "wrong password"))
                .await,
            t,
        ));
    }
    assert_eq!((wrong[0].0, &wrong[0].1), (unknown[0].0, &unknown[0].1));
    assert_eq!(wrong[0].0, Code::Unauthenticated);
    let min = |v: &[(Code, String, Duration)]| v.iter().map(|x| x.2).min().expect("samples");
    // bcrypt cost 10 takes tens of milliseconds; answering an unknown login
    // without it would take about one.
    assert!(
        min(&unknown) * 3 > min(&wrong),
        "unknown {:?} vs wrong {:?}",
        min(&unknown),
        min(&wrong)
    );
}

/// Five failures lock the account (even for the right password) with a
/// retry hint; a flood from one address locks the address.
#[tokio::test]
async fn login_is_throttled_per_account_and_per_address() {
    let s = Stack::start(Tokens::FromAuth, |c| {
        c.throttle.max_failures_per_address = 8
    })
    .await;
    let mut auth = edge(&s);
    auth.register(register_req("target"))
        .await
        .expect("register");
    auth.register(register_req("bystander"))
        .await
        .expect("register");
    let from = |addr: &str| {
        AuthServiceClient::new(Caller::peer(&s.pki, "edge").with_address(addr).to(s.auth()))
    };
    let mut attacker = from("203.0.113.7");
    for _ in 0..5 {
        assert_status(
            attacker.login(login_req("target", "guess")).await,
            Code::Unauthenticated,
            "invalid login",
        );
    }
    let throttled = attacker
        .login(login_req("target", "correct horse battery"))
        .await
        .expect_err("throttled");
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    assert!(
        throttled.message().contains("retry in"),
        "{}",
        throttled.message()
    );
    let retry_after: u64 = throttled
        .metadata()
        .get("retry-after")
        .expect("hint")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after));

    // The address has 5 failures; 3 more on other accounts reach its limit of 8.
    for _ in 0..3 {
        let _ = attacker.login(login_req("nobody", "guess")).await;
    }
    assert_status(
        attacker
            .login(login_req("bystander", "correct horse battery"))
            .await,
        Code::ResourceExhausted,
        "retry in",
    );
    // Another address is not affected.
    from("198.51.100.1")
        .login(login_req("bystander", "correct horse battery"))
        .await
        .expect("other address logs in");
}

/// Login input is validated before anything else.
#[tokio::test]
async fn login_validates_its_fields() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    assert_status(
        auth.login(login_req("", "x")).await,
        Code::InvalidArgument,
        "login_or_email: is required",
    );
    assert_status(
        auth.login(login_req("a", "")).await,
        Code::InvalidArgument,
        "password: is required",
    );
    assert_status(
        auth.login(login_req("a", &"p".repeat(129))).await,
        Code::InvalidArgument,
        "password: must be at most 128",
    );
}

/// auth's external API is for the edge only.
#[tokio::test]
async fn auth_external_api_refuses_other_peers() {
    let s = Stack::with_auth().await;
    let mut c = AuthServiceClient::new(Caller::peer(&s.pki, "users").to(s.auth()));
    assert_status(
        c.register(register_req("sneaky")).await,
        Code::PermissionDenied,
        "may not call",
    );
    let mut c = AuthServiceClient::new(Caller::default().to(s.auth()));
    assert_status(
        c.login(login_req("a", "b")).await,
        Code::Unauthenticated,
        "missing x-forwarded-client-cert",
    );
}

/// Keys are published before they sign and stay published until the tokens
/// they signed have expired (simulated clock, real database).
#[tokio::test]
async fn signing_keys_rotate_with_overlap() {
    use chrono::{Duration as D, Utc};
    use interlock_auth::keys::{KeyPolicy, KeyRing};
    let db = interlock_itest::pg::create("auth").await;
    let pool = interlock_common::db::connect(
        &interlock_common::db::DatabaseSettings::from_url(db.url.clone()),
        &interlock_auth::MIGRATOR,
    )
    .await
    .expect("db");
    let policy = KeyPolicy {
        rotation_interval: D::hours(24),
        publish_lead: D::minutes(10),
        retire_after: D::minutes(16),
    };
    let secret = secrecy::SecretString::from("a-seal-secret-of-at-least-32-characters".to_owned());
    let ring = KeyRing::new(pool.clone(), &secret, policy);
    let kids = |set: jsonwebtoken::jwk::JwkSet| {
        set.keys
            .into_iter()
            .filter_map(|k| k.common.key_id)
            .collect::<Vec<_>>()
    };
    let t0 = Utc::now();

    ring.maintain(t0).await.expect("bootstrap");
    let k1 = ring.signing_key(t0).await.expect("a key").0;
    assert_eq!(kids(ring.jwks().await), vec![k1.clone()]);

    // Just before the lead: nothing new. At the lead: K2 is published, K1 signs.
    ring.maintain(t0 + D::hours(24) - D::minutes(11))
        .await
        .expect("early");
    assert_eq!(ring.jwks().await.keys.len(), 1);
    let t_pub = t0 + D::hours(24) - D::minutes(10);
    ring.maintain(t_pub).await.expect("publish");
    let published = kids(ring.jwks().await);
    assert_eq!(published.len(), 2);
    let k2 = published.iter().find(|k| **k != k1).expect("k2").clone();
    assert_eq!(
        ring.signing_key(t_pub).await.expect("k").0,
        k1,
        "K2 does not sign yet"
    );

    // K2 signs from its time; K1 stays published for tokens it signed.
    let t_switch = t0 + D::hours(24);
    ring.maintain(t_switch).await.expect("switch");
    assert_eq!(ring.signing_key(t_switch).await.expect("k").0, k2);
    assert!(kids(ring.jwks().await).contains(&k1));

    // Once K1's last tokens have expired, K1 is gone.
    ring.maintain(t_switch + D::minutes(17))
        .await
        .expect("retire");
    assert_eq!(kids(ring.jwks().await), vec![k2]);

    // A replica with the wrong seal secret cannot load the keys.
    let wrong = KeyRing::new(
        pool,
        &secrecy::SecretString::from("another-secret-of-32-characters-or-more".to_owned()),
        policy,
    );
    let err = wrong
        .maintain(t_switch + D::minutes(18))
        .await
        .expect_err("cannot unseal");
    assert!(err.to_string().contains("cannot be unsealed"), "{err}");
}

/// The HTTP JWKS answers allowed peers and refuses others.
#[tokio::test]
async fn http_jwks_is_served_to_allowed_peers_only() {
    let s = Stack::with_auth().await;
    let url = format!("http://{}/.well-known/jwks.json", s.auth());
    let get = |xfcc: Option<String>| {
        let url = url.clone();
        async move {
            interlock_common::client::install_crypto_provider();
            let mut req = reqwest::Client::new().get(&url);
            if let Some(x) = xfcc {
                req = req.header("x-forwarded-client-cert", x);
            }
            let resp = req.send().await.expect("GET jwks");
            (resp.status().as_u16(), resp.text().await.expect("body"))
        }
    };
    let ok = get(Some(s.pki.xfcc("users"))).await;
    assert_eq!(ok.0, 200);
    assert!(
        ok.1.contains("\"kid\"") && ok.1.contains("\"P-256\""),
        "{}",
        ok.1
    );
    assert_eq!(get(None).await.0, 401);
    assert_eq!(get(Some(s.pki.untrusted_xfcc("users"))).await.0, 401);
}

/// The discovery document names the issuer, the JWKS at the configured
/// public URL and ES256; it is served to the edge only (the edge makes it
/// public), cacheable, and revalidates with its ETag; the JWKS is cached
/// for half the publish lead at most.
#[tokio::test]
async fn discovery_document_is_served_to_the_edge_with_cache_headers() {
    let s = Stack::start(Tokens::FromAuth, |a| {
        a.tokens.public_url = "https://auth.example.test:8443/".into();
    })
    .await;
    let base = format!("http://{}", s.auth());
    interlock_common::client::install_crypto_provider();
    let get = |path: &str, xfcc: Option<String>, etag: Option<&str>| {
        let mut req = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(x) = xfcc {
            req = req.header("x-forwarded-client-cert", x);
        }
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        req.send()
    };
    let resp = get(
        "/.well-known/openid-configuration",
        Some(s.pki.xfcc("edge")),
        None,
    )
    .await
    .expect("GET discovery");
    assert_eq!(resp.status().as_u16(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(&resp, "cache-control").as_deref(),
        Some("public, max-age=3600")
    );
    let etag = header(&resp, "etag").expect("etag");
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["issuer"], "interlock-auth");
    assert_eq!(
        doc["jwks_uri"],
        "https://auth.example.test:8443/.well-known/jwks.json"
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let again = get(
        "/.well-known/openid-configuration",
        Some(s.pki.xfcc("edge")),
        Some(&etag),
    )
    .await
    .expect("revalidate");
    assert_eq!(again.status().as_u16(), 304);
    // Only the edge may fetch it (the policy); users may not.
    let refused = get(
        "/.well-known/openid-configuration",
        Some(s.pki.xfcc("users")),
        None,
    )
    .await
    .expect("GET as users");
    assert_eq!(refused.status().as_u16(), 403);
    let jwks = get("/.well-known/jwks.json", Some(s.pki.xfcc("edge")), None)
        .await
        .expect("GET jwks");
    assert_eq!(
        header(&jwks, "cache-control").as_deref(),
        Some("public, max-age=300"),
        "half the 600 s publish lead, at most 300"
    );
}

/// A 100-character non-ASCII password (200 bytes) that Register accepts
/// also logs in: both count characters against one limit.
#[tokio::test]
async fn long_non_ascii_password_registers_and_logs_in() {
    let s = Stack::with_auth().await;
    let mut auth = edge(&s);
    let password = "ü".repeat(100);
    let user_id = auth
        .register(RegisterRequest {
            password: password.clone(),
            ..register_req("umlaut")
        })
        .await
        .expect("register")
        .into_inner()
        .user_id;
    let pair = auth
        .login(login_req("umlaut", &password))
        .await
        .expect("login with the registered password")
        .into_inner();
    assert_eq!(pair.user_id, user_id);
}
