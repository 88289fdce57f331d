//! Test hooks, not part of FCM: script faults, expire tokens, read what
//! was received.

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Fault, FcmLocal, lock};

/// `POST /control/outage`: see [`FcmLocal::start_outage`].
#[derive(Deserialize)]
struct OutagePlan {
    unavailable_secs: u64,
    throttled_secs: u64,
    retry_after_secs: u64,
}

#[derive(Deserialize)]
struct Script {
    token: String,
    faults: Vec<Fault>,
}

pub(crate) fn router() -> Router<FcmLocal> {
    Router::new()
        .route(
            "/control/faults",
            post(
                |State(s): State<FcmLocal>, Json(script): Json<Script>| async move {
                    s.script(&script.token, script.faults);
                    Json(json!({ "ok": true }))
                },
            ),
        )
        .route(
            "/control/outage",
            post(
                |State(s): State<FcmLocal>, Json(plan): Json<OutagePlan>| async move {
                    s.start_outage(
                        Duration::from_secs(plan.unavailable_secs),
                        Duration::from_secs(plan.throttled_secs),
                        plan.retry_after_secs,
                    );
                    Json(json!({ "ok": true }))
                },
            )
            .get(|State(s): State<FcmLocal>| async move { Json(json!(s.outage_counts())) }),
        )
        .route(
            "/control/expire-tokens",
            post(|State(s): State<FcmLocal>| async move {
                s.expire_tokens();
                Json(json!({ "ok": true }))
            }),
        )
        .route(
            "/control/received",
            get(|State(s): State<FcmLocal>| async move {
                Json(json!({ "received": s.received(), "grants": s.grants() }))
            }),
        )
        .route(
            "/control/count",
            get(|State(s): State<FcmLocal>| async move {
                Json(json!({ "received": lock(&s.inner.received).len() }))
            }),
        )
        .route(
            "/control/reset",
            post(|State(s): State<FcmLocal>| async move {
                lock(&s.inner.received).clear();
                lock(&s.inner.faults).clear();
                *lock(&s.inner.outage) = None;
                Json(json!({ "ok": true }))
            }),
        )
}
