//! The notifications binary: load settings, start logging, run until SIGTERM.

use interlock_common::{server, settings, telemetry};
use interlock_notifications::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load("notifications")?;
    let _telemetry = telemetry::init(&settings.log, "notifications")?;
    let app = Application::build(settings).await?;
    tracing::info!(listen = %app.describe_listener(), "notifications listening");
    app.run(server::shutdown_signal()).await
}
