//! Push delivery in the mesh: a notification created with grpcurl reaches
//! the local FCM server through the sender, and then shows as processed.

use std::time::{Duration, Instant};

use interlock_e2e::{grpcurl, register_and_login, target, unique_login};
use interlock_proto::notifications::v1::GetDeliveryReportRequest;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_testkit::{Patience, wait_until};

#[tokio::test]
async fn a_notification_created_with_grpcurl_reaches_fcm_and_is_processed() {
    let target = target();
    let pair = register_and_login(&target, &unique_login("push")).await;
    let token = format!("e2e-device-{}", uuid::Uuid::new_v4().simple());

    // The user registers a device through the edge.
    let header = format!("authorization: Bearer {}", pair.access_token);
    let device = format!(r#"{{"fcm_token":"{token}","platform":"PLATFORM_ANDROID"}}"#);
    let out = grpcurl(
        &target,
        &["-H", &header, "-d", &device],
        "interlock.notifications.v1.NotificationsService/RegisterDevice",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A module (auth, through its egress sidecar) creates the notification.
    let create = format!(
        r#"{{"text":"Your parcel has shipped","recipient_ids":["{}"]}}"#,
        pair.user_id
    );
    let out = target.grpcurl_as(
        "auth",
        "interlock/notifications/v1/notifications.proto",
        &create,
        "interlock.notifications.v1.NotificationsInternal/Create",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let started = Instant::now();

    // The local FCM server receives it for that device (its test hooks are
    // on a root-only socket).
    let (target, token, id_ref) = (&target, &token, &id);
    let latency = wait_until(
        "the local FCM server receives the push",
        Patience::secs(20),
        || async move {
            let received = target
                .fcm_received()
                .await
                .map_err(|code| serde_json::json!({ "curl": code }))?;
            let hit = received["received"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| {
                    r["token"] == token.as_str()
                        && r["message"]["data"]["notification_id"] == id_ref.as_str()
                });
            if hit {
                Ok(started.elapsed())
            } else {
                Err(received)
            }
        },
    )
    .await;
    let poll = Duration::from_millis(target.mesh().topology.fcm_local.poll_interval_ms);
    println!(
        "push: delivered to the local FCM server {} ms after Create (poll interval {} ms)",
        latency.as_millis(),
        poll.as_millis()
    );

    // Then it shows as processed, with the per-device outcome.
    let notes = NotificationsInternalClient::new(target.egress("auth"));
    let report = wait_until("the notification is processed", Patience::secs(10), || {
        let mut notes = notes.clone();
        let id = id.clone();
        async move {
            let r = notes
                .get_delivery_report(GetDeliveryReportRequest { id })
                .await
                .expect("report")
                .into_inner();
            if r.processed_at.is_some() {
                Ok(r)
            } else {
                Err(r)
            }
        }
    })
    .await;
    assert_eq!(report.outcome, "delivered to 1 of 1 devices");
    assert_eq!(report.deliveries[0].token_hint, &token[token.len() - 6..]);
}
