//! Jaeger's query API, read the way the tests need it: a trace's spans
//! with their parents, services and tags, fetched until complete.

use std::collections::HashMap;
use std::time::Duration;

use interlock_testkit::{Patience, wait_until};
use serde_json::Value;
use tonic::metadata::MetadataValue;

use crate::Target;

/// A span as Jaeger's query API returns it.
#[derive(Debug, Clone)]
pub struct Span {
    pub id: String,
    pub parent: Option<String>,
    pub service: String,
    pub operation: String,
    pub tags: HashMap<String, String>,
}

pub fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1)
}

/// Fetches the trace until `done` holds (spans arrive in batches).
pub async fn trace(target: &Target, trace_id: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let url = format!("{}/api/traces/{trace_id}", target.jaeger());
    interlock_common::client::install_crypto_provider();
    let url = &url;
    let done = &done;
    wait_until(
        &format!("trace {trace_id} is complete"),
        Patience::secs(30).every(Duration::from_millis(500)),
        || async move {
            let spans = fetch_spans(url).await;
            if done(&spans) {
                Ok(spans)
            } else {
                Err(format!("{spans:#?}"))
            }
        },
    )
    .await
}

/// The spans of a trace as Jaeger holds them now (none if it has no such
/// trace yet).
pub async fn fetch_spans(url: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    if let Ok(resp) = reqwest::get(url).await
        && let Ok(body) = resp.json::<Value>().await
    {
        for t in body["data"].as_array().into_iter().flatten() {
            for s in t["spans"].as_array().into_iter().flatten() {
                let service =
                    t["processes"][s["processID"].as_str().unwrap_or_default()]["serviceName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                let parent = s["references"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["refType"] == "CHILD_OF")
                    .and_then(|r| r["spanID"].as_str())
                    .map(str::to_owned);
                let tags = s["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        (
                            t["key"].as_str().unwrap_or_default().to_owned(),
                            match &t["value"] {
                                Value::String(v) => v.clone(),
                                v => v.to_string(),
                            },
                        )
                    })
                    .collect();
                spans.push(Span {
                    id: s["spanID"].as_str().unwrap_or_default().to_owned(),
                    parent,
                    service,
                    operation: s["operationName"].as_str().unwrap_or_default().to_owned(),
                    tags,
                });
            }
        }
    }
    spans
}

pub fn find<'a>(
    spans: &'a [Span],
    service: &str,
    pred: impl Fn(&Span) -> bool,
) -> Option<&'a Span> {
    spans.iter().find(|s| s.service == service && pred(s))
}

/// Walks up from `span` and says whether `ancestor` is on the way.
pub fn descends_from(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut current = span.parent.as_deref();
    while let Some(id) = current {
        if id == ancestor.id {
            return true;
        }
        current = by_id.get(id).and_then(|s| s.parent.as_deref());
    }
    false
}

/// `body` as a request that continues the trace `trace_id`.
pub fn traced<T>(trace_id: &str, body: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent(trace_id)).expect("ascii"),
    );
    req
}
