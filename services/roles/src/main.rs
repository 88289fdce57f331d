//! The roles binary.
//!
//! `interlock-roles` serves; `interlock-roles bootstrap-admin <user-id>`
//! grants `admin` to a registered user if, and only if, nobody holds it yet:
//! the one safe way to create the first admin (it needs the service's own
//! database credentials, so only an operator can run it).

use interlock_common::{db, server, settings, telemetry, validate};
use interlock_roles::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load("roles")?;
    let _telemetry = telemetry::init(&settings.log, "roles")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let app = Application::build(settings).await?;
            tracing::info!(listen = %app.describe_listener(), "roles listening");
            app.run(server::shutdown_signal()).await
        }
        [cmd, user_id] if cmd == "bootstrap-admin" => {
            let user_id = validate::uuid("user-id", user_id)?;
            let pool = db::connect(&settings.database, &interlock_roles::MIGRATOR).await?;
            interlock_roles::store::bootstrap_admin(&pool, user_id).await?;
            println!("granted admin to {user_id}");
            Ok(())
        }
        _ => anyhow::bail!("usage: interlock-roles [bootstrap-admin <user-id>]"),
    }
}
