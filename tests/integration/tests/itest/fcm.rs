//! The FCM client's access-token cache against the local FCM server, on a
//! clock the test steps: a token's lifetime passes without waiting it out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interlock_itest::push::{service_account_json, start_fcm};
use interlock_sender::fcm::{Clock, FcmClient, SendOutcome};

/// A clock that only moves when the test says so.
struct SteppedClock {
    now: Mutex<Instant>,
}

impl SteppedClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(Instant::now()),
        })
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().expect("clock") += by;
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Instant {
        *self.now.lock().expect("clock")
    }
}

async fn push(client: &FcmClient) {
    let outcome = client
        .send("tok-1", "Interlock", "hello", &[])
        .await
        .expect("send");
    assert_eq!(outcome, SendOutcome::Delivered);
}

/// An access token that lives an hour is reused until a minute before it
/// expires (the refresh margin), and replaced from then on.
#[tokio::test]
async fn access_token_is_reused_until_its_refresh_margin_then_renewed() {
    let ttl = Duration::from_secs(3600);
    let margin = Duration::from_secs(60);
    let (fcm, addr) = start_fcm(ttl).await;
    let clock = SteppedClock::new();
    let client = FcmClient::new(
        service_account_json(),
        &format!("http://{addr}"),
        Some(&format!("http://{addr}/token")),
    )
    .expect("client")
    .with_clock(clock.clone());

    push(&client).await;
    assert_eq!(fcm.grants(), 1, "the first send is granted a token");

    clock.advance(ttl - margin - Duration::from_secs(1));
    push(&client).await;
    assert_eq!(fcm.grants(), 1, "still cached a second before the margin");

    clock.advance(Duration::from_secs(1));
    push(&client).await;
    assert_eq!(fcm.grants(), 2, "renewed once the margin is reached");

    push(&client).await;
    assert_eq!(fcm.grants(), 2, "the renewed token is cached in turn");
    assert_eq!(fcm.received().len(), 4);
}
