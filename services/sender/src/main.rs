//! The sender binary: load settings, start logging, deliver until SIGTERM.

use interlock_common::{server, settings, telemetry};
use interlock_sender::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load("sender")?;
    let _telemetry = telemetry::init(&settings.log, "sender")?;
    let app = Application::build(settings).await?;
    tracing::info!(health = %app.describe_listener(), "sender started");
    app.run(server::shutdown_signal()).await
}
