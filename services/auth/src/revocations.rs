//! The revoked sessions auth publishes to every token verifier
//! (`interlock_common::revocation`): sessions ended by Logout or by
//! refresh-token reuse within the last access-token lifetime, so a token
//! that is still unexpired can be refused everywhere within seconds.

use std::sync::Arc;

use interlock_common::revocation::{REVOKED_SESSIONS_PATH, RevocationSource, RevokedSessions};
use sqlx::PgPool;
use uuid::Uuid;

/// Sessions revoked after `now - window`, newest first. `window` covers
/// every access token that may still be unexpired (lifetime + leeway).
#[tracing::instrument(skip_all)]
pub async fn recently_revoked(pool: &PgPool, window: chrono::Duration) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM sessions
         WHERE revoked_at IS NOT NULL AND revoked_at > now() - make_interval(secs => $1)
         ORDER BY revoked_at DESC",
    )
    .bind(window.num_seconds() as f64)
    .fetch_all(pool)
    .await
}

/// auth's own verifier reads the list straight from its database.
pub struct DbRevocations {
    pub pool: PgPool,
    pub window: chrono::Duration,
}

#[async_trait::async_trait]
impl RevocationSource for DbRevocations {
    async fn fetch(&self) -> Result<RevokedSessions, String> {
        recently_revoked(&self.pool, self.window)
            .await
            .map(|revoked| RevokedSessions { revoked })
            .map_err(|e| format!("reading revoked sessions: {e}"))
    }
}

/// `GET /internal/revoked-sessions` for the services' verifiers (who may
/// fetch it is in the policy's `[[http]]` rules). Not cached by proxies.
pub fn router(source: Arc<DbRevocations>) -> axum::Router {
    axum::Router::new().route(
        REVOKED_SESSIONS_PATH,
        axum::routing::get(move || {
            let source = source.clone();
            async move {
                match source.fetch().await {
                    Ok(doc) => Ok((
                        [(axum::http::header::CACHE_CONTROL, "no-store")],
                        axum::Json(doc),
                    )),
                    Err(error) => {
                        tracing::error!(%error, "serving revoked sessions failed");
                        Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                    }
                }
            }
        }),
    )
}
