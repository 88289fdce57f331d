//! notifications: Create by modules, the sender's ListPending and
//! MarkProcessed, and the recipient's ListMine and MarkReceived; push
//! devices in [`devices`], the sender's lease and scope checks in [`leases`],
//! what ReportDeliveries completes in [`completion`].

mod completion;
mod devices;
mod leases;

use interlock_itest::Stack;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::*;
use tonic::Code;
use uuid::Uuid;

use crate::assert_status;

fn create(text: &str, to: &[Uuid]) -> CreateRequest {
    CreateRequest {
        text: text.into(),
        recipient_ids: to.iter().map(ToString::to_string).collect(),
        request_id: String::new(),
    }
}

/// Created -> listed by the recipient -> received (idempotently); others
/// cannot see or mark it.
#[tokio::test]
async fn recipient_lists_and_marks_received_others_cannot() {
    let s = Stack::with_test_tokens().await;
    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let id = NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications))
        .create(create("Welcome!", &[alice, bob, alice]))
        .await
        .expect("create")
        .into_inner()
        .id;

    let mut a = NotificationsServiceClient::new(s.as_user(alice).to(s.notifications));
    let mine = a
        .list_mine(ListMineRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(mine.notifications.len(), 1);
    assert_eq!(
        (
            mine.notifications[0].id.as_str(),
            mine.notifications[0].text.as_str()
        ),
        (id.as_str(), "Welcome!")
    );
    assert!(mine.notifications[0].received_at.is_none());

    let first = a
        .mark_received(MarkReceivedRequest { id: id.clone() })
        .await
        .expect("mark")
        .into_inner();
    let again = a
        .mark_received(MarkReceivedRequest { id: id.clone() })
        .await
        .expect("again")
        .into_inner();
    assert_eq!(
        first.received_at, again.received_at,
        "the first receipt time is kept"
    );
    let unreceived = a
        .list_mine(ListMineRequest {
            unreceived_only: true,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(unreceived.into_inner().notifications.is_empty());

    let mut c = NotificationsServiceClient::new(s.as_user(carol).to(s.notifications));
    assert!(
        c.list_mine(ListMineRequest::default())
            .await
            .expect("carol")
            .into_inner()
            .notifications
            .is_empty()
    );
    assert_status(
        c.mark_received(MarkReceivedRequest { id: id.clone() })
            .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        a.mark_received(MarkReceivedRequest {
            id: Uuid::new_v4().to_string(),
        })
        .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        a.mark_received(MarkReceivedRequest { id: "x".into() })
            .await,
        Code::InvalidArgument,
        "id: must be a UUID",
    );
}

/// ListMine pages newest first with no repeats.
#[tokio::test]
async fn list_mine_pages_newest_first() {
    let s = Stack::with_test_tokens().await;
    let me = Uuid::new_v4();
    let mut internal = NotificationsInternalClient::new(s.as_peer("users").to(s.notifications));
    for i in 0..5 {
        internal
            .create(create(&format!("n{i}"), &[me]))
            .await
            .expect("create");
    }
    let mut c = NotificationsServiceClient::new(s.as_user(me).to(s.notifications));
    let (mut texts, mut token) = (Vec::new(), String::new());
    loop {
        let page = c
            .list_mine(ListMineRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        texts.extend(page.notifications.into_iter().map(|n| n.text));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(texts, ["n4", "n3", "n2", "n1", "n0"]);
    assert_status(
        c.list_mine(ListMineRequest {
            page_size: 101,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "page_size",
    );
}

/// Create validates every field and, with a request_id, is idempotent.
#[tokio::test]
async fn create_validates_and_deduplicates_by_request_id() {
    let s = Stack::with_test_tokens().await;
    let mut c = NotificationsInternalClient::new(s.as_peer("roles").to(s.notifications));
    let u = Uuid::new_v4();
    assert_status(
        c.create(create("", &[u])).await,
        Code::InvalidArgument,
        "text: is required",
    );
    assert_status(
        c.create(create(&"x".repeat(4097), &[u])).await,
        Code::InvalidArgument,
        "text: must be at most 4096",
    );
    assert_status(
        c.create(create("hi", &[])).await,
        Code::InvalidArgument,
        "recipient_ids: must not be empty",
    );
    let mut bad = create("hi", &[u]);
    bad.recipient_ids.push("nope".into());
    assert_status(
        c.create(bad).await,
        Code::InvalidArgument,
        "recipient_ids[1]: must be a UUID",
    );

    let keyed = CreateRequest {
        request_id: "welcome-42".into(),
        ..create("hi", &[u])
    };
    let first = c.create(keyed.clone()).await.expect("first").into_inner();
    let retry = c.create(keyed).await.expect("retry").into_inner();
    assert!(first.created && !retry.created);
    assert_eq!(first.id, retry.id);
}

/// The sender claims pending work (leased: a second claim gets nothing),
/// and marks it processed, all or nothing.
#[tokio::test]
async fn sender_claims_pending_and_marks_processed_atomically() {
    let s = Stack::with_test_tokens().await;
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut creator = NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications));
    let a = creator
        .create(create("a", &[u1, u2]))
        .await
        .expect("a")
        .into_inner()
        .id;
    let b = creator
        .create(create("b", &[u2]))
        .await
        .expect("b")
        .into_inner()
        .id;

    let mut sender = NotificationsInternalClient::new(s.as_peer("sender").to(s.notifications));
    let claim = |worker: &str| ListPendingRequest {
        limit: 0,
        worker_id: worker.into(),
        lease_seconds: 30,
    };
    let pending = sender
        .list_pending(claim("w1"))
        .await
        .expect("pending")
        .into_inner();
    let ids: Vec<_> = pending.notifications.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, [a.clone(), b.clone()], "oldest first");
    let mut recipients = pending.notifications[0].recipient_ids.clone();
    recipients.sort();
    let mut expected = vec![u1.to_string(), u2.to_string()];
    expected.sort();
    assert_eq!(recipients, expected);
    assert!(pending.notifications[0].lease_expires_at.is_some());
    assert!(
        sender
            .list_pending(claim("w2"))
            .await
            .expect("leased")
            .into_inner()
            .notifications
            .is_empty()
    );

    let ghost = Uuid::new_v4().to_string();
    assert_status(
        sender
            .mark_processed(MarkProcessedRequest {
                ids: vec![a.clone(), ghost.clone()],
                worker_id: "w1".into(),
            })
            .await,
        Code::NotFound,
        &ghost,
    );
    let released = sender
        .release_claims(ReleaseClaimsRequest {
            worker_id: "w1".into(),
            ids: vec![a.clone(), b.clone()],
        })
        .await
        .expect("release")
        .into_inner();
    assert_eq!(released.released, 2);
    let still = sender
        .list_pending(claim("w2"))
        .await
        .expect("still")
        .into_inner();
    assert_eq!(still.notifications.len(), 2, "nothing was half-written");

    let done = sender
        .mark_processed(MarkProcessedRequest {
            ids: vec![a.clone(), b.clone()],
            worker_id: "w2".into(),
        })
        .await
        .expect("mark");
    assert_eq!(done.into_inner().processed, 2);
    let again = sender
        .mark_processed(MarkProcessedRequest {
            ids: vec![a.clone()],
            worker_id: "w2".into(),
        })
        .await
        .expect("again");
    assert_eq!(
        again.into_inner().processed,
        0,
        "already processed is left as is"
    );
    let report = sender
        .get_delivery_report(GetDeliveryReportRequest { id: a })
        .await
        .expect("report")
        .into_inner();
    assert_eq!(report.outcome, "no registered devices");
    assert_status(
        sender
            .list_pending(ListPendingRequest {
                limit: 1001,
                ..claim("w1")
            })
            .await,
        Code::InvalidArgument,
        "limit",
    );
    assert_status(
        sender.list_pending(claim("")).await,
        Code::InvalidArgument,
        "worker_id",
    );
    assert_status(
        sender
            .list_pending(ListPendingRequest {
                lease_seconds: 2,
                ..claim("w1")
            })
            .await,
        Code::InvalidArgument,
        "lease_seconds",
    );
    let bad = ReportDeliveriesRequest {
        worker_id: "w1".into(),
        done_ids: Vec::new(),
        results: vec![DeliveryResult {
            notification_id: b,
            device_id: Uuid::new_v4().to_string(),
            status: 0,
            ..Default::default()
        }],
    };
    assert_status(
        sender.report_deliveries(bad).await,
        Code::InvalidArgument,
        "results[0].status",
    );
}

/// The per-method policy: only the sender polls, only modules create.
#[tokio::test]
async fn internal_methods_follow_the_per_method_policy() {
    let s = Stack::with_test_tokens().await;
    let mut auth = NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications));
    assert_status(
        auth.list_pending(ListPendingRequest::default()).await,
        Code::PermissionDenied,
        "may not call",
    );
    let mut sender = NotificationsInternalClient::new(s.as_peer("sender").to(s.notifications));
    assert_status(
        sender.create(create("spam", &[Uuid::new_v4()])).await,
        Code::PermissionDenied,
        "may not call",
    );
    let mut edge = NotificationsInternalClient::new(s.as_peer("edge").to(s.notifications));
    assert_status(
        edge.mark_processed(MarkProcessedRequest::default()).await,
        Code::PermissionDenied,
        "may not call",
    );
}
