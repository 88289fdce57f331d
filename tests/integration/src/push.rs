//! Push delivery under test: a service account generated at test time, the
//! local FCM server, and sender replicas wired to a stack's notifications.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use interlock_common::client::Outbound;
use interlock_common::peer::XFCC_HEADER;
use interlock_common::settings::Absent;
use interlock_fcm_local::{FcmLocal, ServerConfig};
use interlock_sender::config::{FcmConfig, PeersConfig, SenderConfig};

use crate::Stack;

pub const PROJECT: &str = "interlock-test";

/// A Google-style service-account JSON with a fresh RSA key (one per test
/// run: RSA key generation is slow).
pub fn service_account_json() -> &'static str {
    static ACCOUNT: OnceLock<String> = OnceLock::new();
    ACCOUNT.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
        serde_json::json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test-key-1",
            "private_key": pem,
            "client_email": format!("sender@{PROJECT}.iam.gserviceaccount.com"),
            "client_id": "1",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token"
        })
        .to_string()
    })
}

/// The local FCM server on 127.0.0.1:0, issuing tokens that live `ttl`.
pub async fn start_fcm(ttl: Duration) -> (FcmLocal, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ServerConfig::from_service_account(
        service_account_json(),
        &format!("http://{addr}/token"),
        ttl,
    )
    .expect("fcm config");
    let fcm = FcmLocal::new(config);
    tokio::spawn(fcm.clone().serve(listener));
    (fcm, addr)
}

/// A running sender replica; `stop()` shuts it down gracefully, `crash()`
/// kills it where it stands.
pub struct SenderHandle {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _account: TempFile,
}

impl SenderHandle {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .expect("sender task")
            .expect("sender ran");
    }

    pub fn crash(self) {
        self.task.abort();
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts a sender replica named `worker` against `stack`'s notifications.
pub async fn start_sender(
    stack: &Stack,
    fcm: SocketAddr,
    worker: &str,
    tweak: impl FnOnce(&mut SenderConfig),
) -> SenderHandle {
    let account =
        TempFile(std::env::temp_dir().join(format!("interlock-sa-{}.json", uuid::Uuid::new_v4())));
    std::fs::write(&account.0, service_account_json()).expect("write account");
    let mut sender = SenderConfig {
        worker_id: worker.to_owned(),
        poll_interval_ms: 100,
        batch_size: 10,
        lease_secs: 5,
        max_concurrency: 8,
        max_attempts: 5,
        backoff_base_ms: 50,
        backoff_max_ms: 400,
    };
    tweak(&mut sender);
    let settings = interlock_sender::Settings {
        common: crate::services::common(&stack.pki, Absent, Absent),
        peers: PeersConfig {
            notifications_url: format!("http://{}", stack.notifications),
        },
        sender,
        fcm: FcmConfig {
            service_account_file: account.0.clone(),
            base_url: format!("http://{fcm}"),
            token_uri: Some(format!("http://{fcm}/token")),
            title: "Interlock".into(),
        },
    };
    let outbound = Outbound::with_header(XFCC_HEADER, &stack.pki.xfcc("sender")).expect("xfcc");
    let app = interlock_sender::build(settings, outbound)
        .await
        .expect("sender builds");
    let (listener, _) = crate::services::bind_local().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(listener, async move {
        let _ = rx.await;
    }));
    SenderHandle {
        task,
        stop: Some(tx),
        _account: account,
    }
}
