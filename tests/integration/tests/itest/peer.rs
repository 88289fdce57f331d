//! The peer check, through real RPCs: who may call an internal API is
//! proven only by a forwarded SVID that chains to the bundle and that the
//! policy allows.

use std::time::Duration;

use interlock_itest::{Caller, Stack};
use interlock_proto::roles::v1::GetRolesRequest;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_testkit::{Patience, wait_until};
use tonic::Code;

use crate::assert_status;

fn get_roles() -> GetRolesRequest {
    GetRolesRequest {
        user_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// An allowed peer with a good SVID gets an answer (NOT_FOUND: nobody has
/// registered this user), proving the checks passed.
#[tokio::test]
async fn allowed_peer_with_a_current_svid_is_served() {
    let s = Stack::with_test_tokens().await;
    let mut c = RolesInternalClient::new(s.as_peer("users").to(s.roles));
    assert_status(c.get_roles(get_roles()).await, Code::NotFound, "not found");
}

/// Missing, malformed, untrusted and expired certificates are
/// UNAUTHENTICATED, each with its reason.
#[tokio::test]
async fn unprovable_peers_are_unauthenticated() {
    let s = Stack::with_test_tokens().await;
    let cases = [
        (Caller::default(), "missing x-forwarded-client-cert"),
        (
            Caller {
                xfcc: Some("By=spiffe://interlock.local/svc/users;Cert=\"garbage\"".into()),
                ..Default::default()
            },
            "malformed",
        ),
        (
            Caller {
                xfcc: Some(s.pki.untrusted_xfcc("users")),
                ..Default::default()
            },
            "untrusted",
        ),
        (
            Caller {
                xfcc: Some(s.pki.expired_xfcc("users")),
                ..Default::default()
            },
            "expired",
        ),
        (
            Caller {
                xfcc: Some(format!("{},{}", s.pki.xfcc("users"), s.pki.xfcc("edge"))),
                ..Default::default()
            },
            "more than one element",
        ),
    ];
    for (caller, reason) in cases {
        let mut c = RolesInternalClient::new(caller.to(s.roles));
        assert_status(
            c.get_roles(get_roles()).await,
            Code::Unauthenticated,
            reason,
        );
    }
}

/// A trusted peer that the policy does not list is PERMISSION_DENIED, and
/// so is the edge on an internal API.
#[tokio::test]
async fn trusted_but_disallowed_peers_are_denied() {
    let s = Stack::with_test_tokens().await;
    for workload in ["sender", "edge", "roles"] {
        let mut c = RolesInternalClient::new(s.as_peer(workload).to(s.roles));
        assert_status(
            c.get_roles(get_roles()).await,
            Code::PermissionDenied,
            &format!(
                "spiffe://interlock.local/{} may not call",
                if workload == "edge" {
                    "edge".to_owned()
                } else {
                    format!("svc/{workload}")
                }
            ),
        );
    }
}

/// Health answers without a peer certificate (probes do not go through the
/// sidecar) and reports the service SERVING.
#[tokio::test]
async fn health_is_served_without_peer_checks() {
    use tonic_health_proto::*;
    let s = Stack::with_test_tokens().await;
    let mut c = HealthClient::new(Caller::default().to(s.roles));
    let resp = c
        .check(HealthCheckRequest {
            service: "interlock.roles.v1.RolesInternal".into(),
        })
        .await
        .expect("health answers");
    assert_eq!(resp.into_inner().status, 1, "SERVING");
}

/// While a service's database refuses it, health turns NOT_SERVING; once
/// the database lets it in again, SERVING — with no restart (the pool
/// reconnects). The database is taken away the way an outage would: the
/// service's login is disabled and its connections are terminated.
#[tokio::test]
async fn health_follows_the_database_without_a_restart() {
    use tonic_health_proto::*;
    let s = Stack::with_test_tokens().await;
    let mut c = HealthClient::new(Caller::default().to(s.roles));
    let status = |c: &mut HealthClient<_>| {
        let mut c = c.clone();
        async move {
            c.check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|e| e.code())
        }
    };
    assert_eq!(status(&mut c).await, Ok(1), "SERVING at first");
    let admin = sqlx::PgPool::connect(&interlock_itest::pg::admin_url())
        .await
        .expect("admin");
    let role = &s.roles_db.role;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {role} NOLOGIN; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    )))
    .execute(&admin)
    .await
    .expect("take the database away");
    let c2 = c.clone();
    wait_until(
        "health turns NOT_SERVING",
        Patience::secs(15).every(Duration::from_millis(200)),
        || {
            let mut c = c2.clone();
            async move {
                match status(&mut c).await {
                    Ok(2) => Ok(()),
                    other => Err(other),
                }
            }
        },
    )
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER ROLE {role} LOGIN")))
        .execute(&admin)
        .await
        .expect("give the database back");
    wait_until(
        "health is SERVING again",
        Patience::secs(15).every(Duration::from_millis(200)),
        || {
            let mut c = c.clone();
            async move {
                match status(&mut c).await {
                    Ok(1) => Ok(()),
                    other => Err(other),
                }
            }
        },
    )
    .await;
}

mod tonic_health_proto {
    pub use tonic_health::pb::HealthCheckRequest;
    pub use tonic_health::pb::health_client::HealthClient;
}

/// The service's Unix socket admits only its own sidecar's Unix user
/// (SO_PEERCRED): a caller running as any other user is cut off before a
/// byte is read, even with a genuine, allowed SVID in the header — SVID
/// certificates are public, so the header alone proves nothing.
#[tokio::test]
async fn forged_xfcc_from_another_unix_user_is_refused_even_with_a_genuine_certificate() {
    let s = Stack::with_test_tokens().await;
    let dir = std::env::temp_dir().join(format!("il-peercred-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let me = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&dir).expect("dir").uid()
    };
    let on_socket =
        |name: &str, uids: Option<Vec<u32>>| interlock_common::settings::ServerSettings {
            listen: interlock_common::settings::ListenAddr::Unix(dir.join(name)),
            unix_peer_uids: uids,
        };
    // Only some other user may connect: this test's process is a stranger.
    let _db = interlock_itest::services::spawn_roles_on(
        &s.pki,
        &s.issuer.jwks_url,
        on_socket("other.sock", Some(vec![me + 1])),
    )
    .await;
    // The default: the socket's owner (this test's user, as the sidecar).
    let _db2 = interlock_itest::services::spawn_roles_on(
        &s.pki,
        &s.issuer.jwks_url,
        on_socket("own.sock", None),
    )
    .await;

    let genuine = s.as_peer("users");
    let refused = RolesInternalClient::new(genuine.to_unix(&dir.join("other.sock")))
        .get_roles(get_roles())
        .await
        .expect_err("a stranger's connection is dropped");
    // The connection is closed unread: a transport failure, never an answer.
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::Unknown),
        "{refused:?}"
    );
    assert!(refused.message().contains("transport"), "{refused:?}");

    let mut own = RolesInternalClient::new(genuine.to_unix(&dir.join("own.sock")));
    assert_status(
        own.get_roles(get_roles()).await,
        Code::NotFound,
        "not found",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
