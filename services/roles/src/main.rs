//! The roles binary.
//!
//! `interlock-roles` serves; `interlock-roles bootstrap-admin <user-id>`
//! grants `admin` to a registered user if, and only if, nobody holds it yet:
//! the one safe way to create the first admin (it needs the service's own
//! database credentials, so only an operator can run it).

use interlock_common::client::Outbound;
use interlock_common::server::{self, Listener};
use interlock_common::{db, settings, telemetry, validate};
use interlock_roles::{MIGRATOR, MODULE, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load(MODULE)?;
    let _telemetry = telemetry::init(&settings.common.log, MODULE)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let bind_to = settings.common.server.clone();
            let app = interlock_roles::build(settings, Outbound::default()).await?;
            // Bound once the service can answer: until then callers are
            // refused rather than left waiting.
            let listener = Listener::bind(&bind_to).await?;
            tracing::info!(listen = %listener, "roles listening");
            app.run(listener, server::shutdown_signal()).await
        }
        [cmd, user_id] if cmd == "bootstrap-admin" => {
            let user_id = validate::uuid("user-id", user_id)?;
            let pool = db::connect(&settings.common.database, &MIGRATOR).await?;
            interlock_roles::store::bootstrap_admin(&pool, user_id).await?;
            println!("granted admin to {user_id}");
            Ok(())
        }
        _ => anyhow::bail!("usage: interlock-roles [bootstrap-admin <user-id>]"),
    }
}
