//! The auth binary: load settings, start telemetry, build, bind, serve until
//! SIGTERM.

use interlock_auth::{MODULE, Settings};
use interlock_common::client::Outbound;
use interlock_common::server::{self, Listener};
use interlock_common::{settings, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load(MODULE)?;
    let _telemetry = telemetry::init(&settings.common.log, MODULE)?;
    let bind_to = settings.common.server.clone();
    let app = interlock_auth::build(settings, Outbound::default()).await?;
    // Bound once the service can answer: until then callers are refused
    // rather than left waiting.
    let listener = Listener::bind(&bind_to).await?;
    tracing::info!(listen = %listener, "auth listening");
    app.run(listener, server::shutdown_signal()).await
}
