//! The users binary: load settings, start logging, run until SIGTERM.

use interlock_common::{server, settings, telemetry};
use interlock_users::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load("users")?;
    let _telemetry = telemetry::init(&settings.log, "users")?;
    let app = Application::build(settings).await?;
    tracing::info!(listen = %app.describe_listener(), "users listening");
    app.run(server::shutdown_signal()).await
}
