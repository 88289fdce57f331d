//! The auth binary: load settings, start logging, run until SIGTERM.

use interlock_auth::{Application, Settings};
use interlock_common::{server, settings, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load("auth")?;
    let _telemetry = telemetry::init(&settings.log, "auth")?;
    let app = Application::build(settings).await?;
    tracing::info!(listen = %app.describe_listener(), "auth listening");
    app.run(server::shutdown_signal()).await
}
