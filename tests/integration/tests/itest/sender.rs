//! Push delivery end to end in-process: real notifications (PostgreSQL),
//! the real sender and FCM client, the local FCM server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use interlock_fcm_local::Fault;
use interlock_itest::Stack;
use interlock_itest::push::{start_fcm, start_sender};
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::*;
use interlock_testkit::{Patience, wait_until};
use uuid::Uuid;

async fn notify(s: &Stack, text: &str, to: &[Uuid]) -> String {
    NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications))
        .create(CreateRequest {
            text: text.into(),
            recipient_ids: to.iter().map(ToString::to_string).collect(),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .id
}

/// One user with one device whose every push takes `delay_ms`, and
/// `count` notifications to them: a batch that is still mid-flight when a
/// test stops or kills the sender.
async fn slow_batch(
    s: &Stack,
    fcm: &interlock_fcm_local::FcmLocal,
    delay_ms: u64,
    count: usize,
) -> Vec<String> {
    let user = Uuid::new_v4();
    s.register_device(user, "tok-slow").await;
    fcm.script(
        "tok-slow",
        (0..count * 4)
            .map(|_| Fault::Delay { ms: delay_ms })
            .collect(),
    );
    let mut ids = Vec::new();
    for i in 0..count {
        ids.push(notify(s, &format!("n{i}"), &[user]).await);
    }
    ids
}

/// Waits until the local FCM server has received at least `n` messages.
async fn pushes_received(fcm: &interlock_fcm_local::FcmLocal, n: usize) {
    wait_until("pushes reach FCM", Patience::secs(20), || {
        let delivered = fcm.received().len();
        async move {
            if delivered >= n {
                Ok(())
            } else {
                Err(delivered)
            }
        }
    })
    .await;
}

async fn report(s: &Stack, id: &str) -> DeliveryReport {
    NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications))
        .get_delivery_report(GetDeliveryReportRequest { id: id.into() })
        .await
        .expect("report")
        .into_inner()
}

/// Waits until every notification in `ids` is processed.
async fn processed(s: &Stack, ids: &[String], within: Duration) -> Vec<DeliveryReport> {
    let patience = Patience::up_to(within).every(Duration::from_millis(100));
    wait_until("every notification is processed", patience, || async move {
        let mut reports = Vec::new();
        for id in ids {
            reports.push(report(s, id).await);
        }
        if reports.iter().all(|r| r.processed_at.is_some()) {
            Ok(reports)
        } else {
            Err(reports)
        }
    })
    .await
}

fn status_of(r: &DeliveryReport, device: &str) -> (i32, String, u32) {
    let d = r
        .deliveries
        .iter()
        .find(|d| d.device_id == device)
        .expect("device in report");
    (d.status, d.error_code.clone(), d.attempts)
}

/// Every device of every recipient gets the message once; a notification
/// nobody can receive still ends processed, with the reason.
#[tokio::test]
async fn delivers_to_every_device_of_every_recipient() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    s.register_device(a, "tok-a1").await;
    s.register_device(a, "tok-a2").await;
    s.register_device(b, "tok-b1").await;
    let n1 = notify(&s, "Hello A and B", &[a, b]).await;
    let n2 = notify(&s, "Hello C", &[c]).await;
    let sender = start_sender(&s, addr, "sender-1", |_| {}).await;
    let reports = processed(&s, &[n1.clone(), n2.clone()], Duration::from_secs(20)).await;
    sender.stop().await;

    assert_eq!(reports[0].outcome, "delivered to 3 of 3 devices");
    assert_eq!(reports[1].outcome, "no registered devices");
    let mut tokens: Vec<String> = fcm.received().iter().map(|r| r.token.clone()).collect();
    tokens.sort();
    assert_eq!(tokens, ["tok-a1", "tok-a2", "tok-b1"]);
    let m = &fcm.received()[0].message;
    assert_eq!(m["notification"]["title"], "Interlock");
    assert_eq!(m["notification"]["body"], "Hello A and B");
    assert_eq!(m["data"]["notification_id"], n1.as_str());
    assert!(
        reports[0]
            .deliveries
            .iter()
            .all(|d| d.token_hint.len() <= 6),
        "only a hint of the token is stored"
    );
    assert_eq!(fcm.grants(), 1, "one access token served every send");
}

/// UNREGISTERED removes the device; INVALID_ARGUMENT, SENDER_ID_MISMATCH and
/// THIRD_PARTY_AUTH_ERROR are permanent for their device; QUOTA_EXCEEDED
/// (honouring Retry-After), UNAVAILABLE and INTERNAL are retried.
#[tokio::test]
async fn each_fcm_error_class_has_its_effect() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let user = Uuid::new_v4();
    let err = |code: &str, retry_after: Option<u64>| Fault::Error {
        code: code.into(),
        retry_after,
    };
    let mut devices = HashMap::new();
    for (token, faults) in [
        ("tok-gone", vec![err("UNREGISTERED", None)]),
        ("tok-bad", vec![err("INVALID_ARGUMENT", None)]),
        ("tok-other-sender", vec![err("SENDER_ID_MISMATCH", None)]),
        ("tok-apns-auth", vec![err("THIRD_PARTY_AUTH_ERROR", None)]),
        ("tok-quota", vec![err("QUOTA_EXCEEDED", Some(1))]),
        (
            "tok-busy",
            vec![err("UNAVAILABLE", None), err("UNAVAILABLE", None)],
        ),
        ("tok-oops", vec![err("INTERNAL", None)]),
    ] {
        devices.insert(token, s.register_device(user, token).await);
        fcm.script(token, faults);
    }
    let id = notify(&s, "errors", &[user]).await;
    let started = Instant::now();
    let sender = start_sender(&s, addr, "sender-errors", |_| {}).await;
    let r = processed(&s, std::slice::from_ref(&id), Duration::from_secs(30))
        .await
        .remove(0);
    sender.stop().await;

    use DeliveryStatus as D;
    assert_eq!(
        status_of(&r, &devices["tok-gone"]),
        (D::Unregistered as i32, "UNREGISTERED".into(), 1)
    );
    for (t, code) in [
        ("tok-bad", "INVALID_ARGUMENT"),
        ("tok-other-sender", "SENDER_ID_MISMATCH"),
        ("tok-apns-auth", "THIRD_PARTY_AUTH_ERROR"),
    ] {
        assert_eq!(
            status_of(&r, &devices[t]),
            (D::FailedPermanent as i32, code.into(), 1),
            "{t}"
        );
    }
    assert_eq!(status_of(&r, &devices["tok-quota"]).2, 2);
    assert_eq!(status_of(&r, &devices["tok-busy"]).2, 3);
    assert_eq!(status_of(&r, &devices["tok-oops"]).2, 2);
    for t in ["tok-quota", "tok-busy", "tok-oops"] {
        assert_eq!(status_of(&r, &devices[t]).0, D::Delivered as i32, "{t}");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(r.outcome, "delivered to 3 of 7 devices");
    let mut got: Vec<String> = fcm.received().iter().map(|m| m.token.clone()).collect();
    got.sort();
    assert_eq!(got, ["tok-busy", "tok-oops", "tok-quota"]);

    // The unregistered device is gone; the others remain.
    let mut owner = NotificationsServiceClient::new(s.as_user(user).to(s.notifications));
    let gone = owner
        .unregister_device(UnregisterDeviceRequest {
            device_id: devices["tok-gone"].clone(),
        })
        .await;
    assert_eq!(gone.expect_err("removed").code(), tonic::Code::NotFound);
    owner
        .unregister_device(UnregisterDeviceRequest {
            device_id: devices["tok-bad"].clone(),
        })
        .await
        .expect("a permanent failure does not remove the device");
}

/// Retries that run out within a claim leave the delivery transient; the
/// notification is released and a later claim delivers to that device only.
#[tokio::test]
async fn exhausted_retries_are_finished_by_a_later_claim() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let user = Uuid::new_v4();
    s.register_device(user, "tok-fine").await;
    let flaky = s.register_device(user, "tok-flaky").await;
    fcm.script(
        "tok-flaky",
        (0..3)
            .map(|_| Fault::Error {
                code: "UNAVAILABLE".into(),
                retry_after: None,
            })
            .collect(),
    );
    let id = notify(&s, "eventually", &[user]).await;
    let sender = start_sender(&s, addr, "sender-retry", |c| c.max_attempts = 2).await;
    let r = processed(&s, std::slice::from_ref(&id), Duration::from_secs(30))
        .await
        .remove(0);
    sender.stop().await;
    assert_eq!(status_of(&r, &flaky).0, DeliveryStatus::Delivered as i32);
    assert_eq!(
        status_of(&r, &flaky).2,
        4,
        "2 attempts in each of two claims"
    );
    let fine = fcm
        .received()
        .iter()
        .filter(|m| m.token == "tok-fine")
        .count();
    assert_eq!(fine, 1, "the device already served is not pushed again");
}

/// An access token FCM no longer accepts (401) is replaced and the send
/// retried. (Renewal by the token's lifetime is driven on a stepped clock
/// in `fcm.rs`.)
#[tokio::test]
async fn an_access_token_fcm_refuses_is_replaced() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let user = Uuid::new_v4();
    s.register_device(user, "tok-1").await;
    let sender = start_sender(&s, addr, "sender-tokens", |_| {}).await;
    let first = notify(&s, "one", &[user]).await;
    processed(&s, &[first], Duration::from_secs(20)).await;
    assert_eq!(fcm.grants(), 1);

    fcm.expire_tokens();
    let second = notify(&s, "two", &[user]).await;
    let r = processed(&s, &[second], Duration::from_secs(20))
        .await
        .remove(0);
    sender.stop().await;
    assert_eq!(r.outcome, "delivered to 1 of 1 devices");
    assert!(fcm.grants() >= 2, "the 401 led to a new grant");
    assert_eq!(fcm.received().len(), 2);
}

/// A sender killed in the middle of a batch loses nothing: its lease runs
/// out and another replica delivers what was left.
#[tokio::test]
async fn a_sender_killed_mid_batch_loses_no_notification() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    // Each send takes a while, so the batch is mid-flight when we kill it.
    let ids = slow_batch(&s, &fcm, 150, 8).await;
    let first = start_sender(&s, addr, "sender-doomed", |c| c.max_concurrency = 1).await;
    pushes_received(&fcm, 2).await;
    first.crash();
    let delivered_before = fcm.received().len();
    assert!(delivered_before < ids.len(), "killed mid-batch");

    let second = start_sender(&s, addr, "sender-heir", |_| {}).await;
    processed(&s, &ids, Duration::from_secs(30)).await;
    second.stop().await;
    let got: Vec<String> = fcm
        .received()
        .iter()
        .map(|m| {
            m.message["data"]["notification_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for id in &ids {
        assert!(got.contains(id), "{id} was lost");
    }
    println!(
        "crash test: {delivered_before} delivered before the kill, {} in all for {} notifications",
        got.len(),
        ids.len()
    );
}

/// Two replicas at once never push the same notification to a device twice.
#[tokio::test]
async fn two_senders_never_deliver_twice_to_a_device() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (u, t) in [(a, "tok-a1"), (a, "tok-a2"), (b, "tok-b1")] {
        s.register_device(u, t).await;
        fcm.script(t, (0..40).map(|_| Fault::Delay { ms: 20 }).collect());
    }
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(notify(&s, &format!("n{i}"), &[a, b]).await);
    }
    let one = start_sender(&s, addr, "replica-1", |c| c.batch_size = 3).await;
    let two = start_sender(&s, addr, "replica-2", |c| c.batch_size = 3).await;
    processed(&s, &ids, Duration::from_secs(60)).await;
    one.stop().await;
    two.stop().await;
    let mut seen = HashMap::new();
    for m in fcm.received() {
        let key = (
            m.token.clone(),
            m.message["data"]["notification_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 60, "every notification reached every device");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
}

/// A graceful stop finishes the notification in progress and releases the
/// rest of the claim at once (no waiting for the lease).
#[tokio::test]
async fn graceful_stop_releases_unstarted_claims() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let ids = slow_batch(&s, &fcm, 300, 5).await;
    let sender = start_sender(&s, addr, "sender-polite", |c| c.lease_secs = 600).await;
    pushes_received(&fcm, 1).await;
    sender.stop().await;
    let pool = sqlx::PgPool::connect(&s.notifications_db.url)
        .await
        .expect("db");
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE lease_owner IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(held, 0, "no lease outlives a graceful stop");
    // A new replica picks up the rest immediately, despite the 600 s lease.
    let next = start_sender(&s, addr, "sender-next", |_| {}).await;
    processed(&s, &ids, Duration::from_secs(20)).await;
    next.stop().await;
}

/// With the lease and scope checks in place, a token that goes stale while
/// several notifications to its user are in one claim stalls none of them:
/// the first UNREGISTERED removes the device, the next notification's
/// outcome for it is skipped, and both end processed.
#[tokio::test]
async fn a_token_unregistered_mid_claim_stalls_no_notification() {
    let s = Stack::with_test_tokens().await;
    let (fcm, addr) = start_fcm(Duration::from_secs(3600)).await;
    let user = Uuid::new_v4();
    let gone = s.register_device(user, "tok-stale").await;
    let fine = s.register_device(user, "tok-fine").await;
    let unregistered = || Fault::Error {
        code: "UNREGISTERED".into(),
        retry_after: None,
    };
    fcm.script("tok-stale", vec![unregistered(), unregistered()]);
    let first = notify(&s, "one", &[user]).await;
    let second = notify(&s, "two", &[user]).await;
    let sender = start_sender(&s, addr, "sender-stale", |_| {}).await;
    let r = processed(&s, &[first, second], Duration::from_secs(20)).await;
    sender.stop().await;

    assert_eq!(r[0].outcome, "delivered to 1 of 2 devices");
    assert_eq!(
        status_of(&r[0], &gone).0,
        DeliveryStatus::Unregistered as i32
    );
    assert_eq!(r[1].outcome, "delivered to 1 of 1 devices");
    assert_eq!(status_of(&r[1], &fine).0, DeliveryStatus::Delivered as i32);
}
