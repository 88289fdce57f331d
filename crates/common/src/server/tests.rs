//! The skeleton on a real port: health from the policy, background tasks
//! stopped and awaited at shutdown.

use std::sync::Arc;

use tokio::sync::oneshot;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Status;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::guard::GuardConfig;
use crate::peer::PeerVerifier;
use crate::peer::bundle::{Roots, TrustBundle};
use crate::policy::Policy;

/// Health and reflection are exempt from peer checks: no bundle needed.
struct NoBundle;

impl TrustBundle for NoBundle {
    fn roots(&self) -> Result<Arc<Roots>, String> {
        Err("no bundle in this test".into())
    }
}

fn guard() -> Guard {
    let policy = Arc::new(Policy::embedded());
    let peers = PeerVerifier::new(Arc::new(NoBundle), policy.trust_domain());
    Guard::new(GuardConfig {
        policy,
        peers: Arc::new(peers),
        jwt: None,
    })
}

/// Each module's health lists what the policy says it serves, so a service
/// added to the policy is reported without touching its startup.
#[test]
fn health_names_come_from_the_policy() {
    let users = App::new("users", guard(), Routes::default());
    assert_eq!(
        users.health_services(),
        [
            "interlock.users.v1.UsersInternal",
            "interlock.users.v1.UsersService"
        ]
    );
    assert!(
        App::new("sender", guard(), Routes::default())
            .health_services()
            .is_empty()
    );
}

/// On a listener bound to port 0 and handed over, health answers SERVING
/// for the module's services (NOT_FOUND for another's); at shutdown the
/// background task is told to stop and `run` returns only after it has.
#[tokio::test]
async fn app_serves_health_and_stops_its_tasks_at_shutdown() {
    let (task_done, task_stopped) = oneshot::channel();
    let app = App::new("users", guard(), Routes::default()).with_task(
        "waits for stop",
        move |mut stop| async move {
            let _ = stop.wait_for(|stop| *stop).await;
            let _ = task_done.send(());
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (shutdown, signal) = oneshot::channel::<()>();
    let running = tokio::spawn(app.run(listener.into(), async move {
        let _ = signal.await;
    }));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "interlock.users.v1.UsersService",
        "interlock.users.v1.UsersInternal",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, Status::Serving as i32, "{service:?}");
    }
    let other = health
        .check(HealthCheckRequest {
            service: "interlock.roles.v1.RolesInternal".into(),
        })
        .await
        .expect_err("not this module's service");
    assert_eq!(other.code(), tonic::Code::NotFound);

    drop(health);
    shutdown.send(()).expect("still running");
    running.await.expect("run task").expect("run ends cleanly");
    task_stopped
        .await
        .expect("the task ran to its end before run returned");
}
