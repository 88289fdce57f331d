//! `interlock-fcm-local --listen 127.0.0.1:17090 --service-account FILE
//! [--control-socket PATH] [--token-ttl-secs 3600] [--token-uri URL]`: the local
//! FCM-compatible server. The test hooks are served only on the control
//! socket (mode 0600: its owner and root), never on the API's TCP port.

use std::time::Duration;

use interlock_fcm_local::{FcmLocal, ServerConfig};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: interlock-fcm-local --listen ADDR --service-account FILE \
                 [--control-socket PATH] [--token-ttl-secs N] [--token-uri URL]";
    let listen = flag(&args, "--listen").ok_or_else(|| anyhow::anyhow!(usage))?;
    let account = flag(&args, "--service-account").ok_or_else(|| anyhow::anyhow!(usage))?;
    let ttl: u64 = flag(&args, "--token-ttl-secs")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(3600);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    // The token URI as the sender calls it (the assertion's audience): the
    // listener's address unless the server is reached by another name (a
    // container's, in compose).
    let token_uri = match flag(&args, "--token-uri") {
        Some(uri) => uri,
        None => format!("http://{}/token", listener.local_addr()?),
    };
    let config = ServerConfig::from_service_account(
        &std::fs::read_to_string(&account)?,
        &token_uri,
        Duration::from_secs(ttl),
    )?;
    tracing::info!(%listen, project = %config.project_id, "local FCM server listening");
    let fcm = FcmLocal::new(config);
    if let Some(path) = flag(&args, "--control-socket") {
        let _ = std::fs::remove_file(&path);
        let control = tokio::net::UnixListener::bind(&path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        tracing::info!(socket = %path, "test hooks on the control socket");
        let router = fcm.control_router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(control, router).await {
                tracing::error!(%error, "control socket stopped");
            }
        });
    }
    fcm.serve(listener).await?;
    Ok(())
}
