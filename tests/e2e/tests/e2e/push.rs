//! Push delivery in the mesh: a notification created with grpcurl reaches
//! the local FCM server through the sender, and then shows as processed.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use interlock_e2e::{grpcurl, mesh, tool, unique_login};
use interlock_proto::notifications::v1::GetDeliveryReportRequest;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;

use crate::journey::register_and_login;

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto")
}

#[tokio::test]
async fn a_notification_created_with_grpcurl_reaches_fcm_and_is_processed() {
    let mesh = mesh();
    let pair = register_and_login(&unique_login("push")).await;
    let token = format!("e2e-device-{}", uuid::Uuid::new_v4().simple());

    // The user registers a device through the edge.
    let header = format!("authorization: Bearer {}", pair.access_token);
    let device = format!(r#"{{"fcm_token":"{token}","platform":"PLATFORM_ANDROID"}}"#);
    let out = grpcurl(
        &mesh,
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
    let out = Command::new(tool("grpcurl"))
        .args(["-plaintext", "-import-path"])
        .arg(proto_dir())
        .args([
            "-proto",
            "interlock/notifications/v1/notifications.proto",
            "-d",
            &create,
        ])
        .arg(format!("unix://{}", mesh.egress_socket("auth").display()))
        .arg("interlock.notifications.v1.NotificationsInternal/Create")
        .output()
        .expect("grpcurl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let started = Instant::now();

    // The local FCM server receives it for that device.
    let fcm = format!(
        "http://127.0.0.1:{}/control/received",
        mesh.topology.fcm_local.port
    );
    interlock_common::client::install_crypto_provider();
    let latency = loop {
        let received: serde_json::Value = reqwest::get(&fcm)
            .await
            .expect("fcm")
            .json()
            .await
            .expect("json");
        let hit = received["received"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| {
                r["token"] == token.as_str()
                    && r["message"]["data"]["notification_id"] == id.as_str()
            });
        if hit {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not delivered in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let poll = Duration::from_millis(mesh.topology.fcm_local.poll_interval_ms);
    println!(
        "push: delivered to the local FCM server {} ms after Create (poll interval {} ms)",
        latency.as_millis(),
        poll.as_millis()
    );

    // Then it shows as processed, with the per-device outcome.
    let egress = interlock_common::client::channel(
        &format!("unix:{}", mesh.egress_socket("auth").display()),
        interlock_common::client::Outbound::default(),
    )
    .expect("egress");
    let mut notes = NotificationsInternalClient::new(egress);
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let r = notes
            .get_delivery_report(GetDeliveryReportRequest { id: id.clone() })
            .await
            .expect("report")
            .into_inner();
        if r.processed_at.is_some() {
            break r;
        }
        assert!(Instant::now() < deadline, "not processed: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report.outcome, "delivered to 1 of 1 devices");
    assert_eq!(report.deliveries[0].token_hint, &token[token.len() - 6..]);
}
