//! Traces: one external call is one trace in Jaeger, from the edge through
//! every sidecar and service to the database; refusals are in their trace.

use std::collections::HashMap;
use std::time::Duration;

use interlock_e2e::{ProbeEnvoy, edge, edge_channel, mesh, register_and_login, unique_login};
use interlock_proto::roles::v1::ListRequest;
use interlock_proto::roles::v1::roles_admin_client::RolesAdminClient;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{Patience, wait_until};
use serde_json::Value;
use tonic::metadata::MetadataValue;

/// A span as Jaeger's query API returns it.
#[derive(Debug, Clone)]
struct Span {
    id: String,
    parent: Option<String>,
    service: String,
    operation: String,
    tags: HashMap<String, String>,
}

fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1)
}

/// Fetches the trace until `done` holds (spans arrive in batches).
async fn trace(trace_id: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let mesh = mesh();
    let url = format!(
        "http://127.0.0.1:{}/api/traces/{trace_id}",
        mesh.topology.tracing.query_port
    );
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
async fn fetch_spans(url: &str) -> Vec<Span> {
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

fn find<'a>(spans: &'a [Span], service: &str, pred: impl Fn(&Span) -> bool) -> Option<&'a Span> {
    spans.iter().find(|s| s.service == service && pred(s))
}

/// Walks up from `span` and says whether `ancestor` is on the way.
fn descends_from(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
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

/// GetMe through the edge: edge -> users sidecar -> users -> (database,
/// roles sidecar -> roles -> database), all in one trace, correctly parented.
#[tokio::test]
async fn get_me_is_one_trace_from_the_edge_to_the_database() {
    let mesh = mesh();
    let pair = register_and_login(&mesh, &unique_login("traced")).await;
    let trace_id = new_trace_id();
    let mut client = UsersServiceClient::new(edge(&mesh, Some(&pair.access_token)).await);
    let mut req = tonic::Request::new(GetMeRequest {});
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent(&trace_id)).expect("ascii"),
    );
    client.get_me(req).await.expect("GetMe");

    // Wait for every span the assertions use, and for every parent: Envoy
    // and the services flush in batches, children often before parents.
    let complete = |s: &[Span]| {
        let has =
            |svc: &str, pred: &dyn Fn(&Span) -> bool| s.iter().any(|x| x.service == svc && pred(x));
        let ids: std::collections::HashSet<&str> = s.iter().map(|x| x.id.as_str()).collect();
        let dangling = s
            .iter()
            .filter(|x| x.parent.as_deref().is_some_and(|p| !ids.contains(p)))
            .count();
        has("edge", &|x| x.operation == "ingress")
            && has("users", &|x| x.operation.ends_with("UsersService/GetMe"))
            && has("users", &|x| x.tags.contains_key("db.system"))
            && has("users", &|x| x.operation.ends_with("RolesInternal/GetRoles"))
            && has("sidecar-roles", &|x| x.operation == "ingress")
            && has("roles", &|x| x.operation.ends_with("RolesInternal/GetRoles"))
            && has("roles", &|x| x.tags.contains_key("db.system"))
            // Only the edge's span hangs from the client's (unexported) span.
            && dangling == 1
    };
    let spans = trace(&trace_id, complete).await;

    let edge = find(&spans, "edge", |s| s.operation == "ingress").expect("edge span");
    let get_me = find(&spans, "users", |s| {
        s.operation.ends_with("UsersService/GetMe")
    })
    .expect("users server span");
    let users_db =
        find(&spans, "users", |s| s.tags.contains_key("db.system")).expect("users database span");
    let client_span = find(&spans, "users", |s| {
        s.operation.ends_with("RolesInternal/GetRoles")
    })
    .expect("users client span");
    let get_roles = find(&spans, "roles", |s| {
        s.operation.ends_with("RolesInternal/GetRoles")
    })
    .expect("roles server span");
    let roles_db =
        find(&spans, "roles", |s| s.tags.contains_key("db.system")).expect("roles database span");
    let roles_sidecar =
        find(&spans, "sidecar-roles", |s| s.operation == "ingress").expect("roles sidecar span");

    assert!(
        descends_from(&spans, get_me, edge),
        "users span under the edge"
    );
    let users_sidecar_parent = spans
        .iter()
        .find(|s| Some(&s.id) == get_me.parent.as_ref())
        .expect("parent");
    assert_eq!(
        users_sidecar_parent.service, "sidecar-users",
        "users span's parent is its sidecar"
    );
    assert_eq!(users_db.parent.as_ref(), Some(&get_me.id));
    assert_eq!(client_span.parent.as_ref(), Some(&get_me.id));
    assert!(
        descends_from(&spans, roles_sidecar, client_span),
        "roles sidecar under users' client span"
    );
    assert!(descends_from(&spans, get_roles, roles_sidecar));
    assert!(descends_from(&spans, roles_db, get_roles));

    // Attributes: the peer and the user, the status; never a token.
    assert_eq!(
        get_me.tags.get("peer.spiffe_id").map(String::as_str),
        Some("spiffe://interlock.local/edge")
    );
    assert_eq!(get_me.tags.get("enduser.id"), Some(&pair.user_id));
    assert_eq!(
        get_roles.tags.get("peer.spiffe_id").map(String::as_str),
        Some("spiffe://interlock.local/svc/users")
    );
    assert_eq!(
        get_me.tags.get("rpc.grpc.status_code").map(String::as_str),
        Some("0")
    );
    for s in &spans {
        for v in s.tags.values() {
            assert!(
                !v.contains(&pair.access_token),
                "a token is in span {}",
                s.operation
            );
        }
    }
    println!("trace {trace_id}: {} spans from {:?}", spans.len(), {
        let mut svcs: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        svcs.sort();
        svcs.dedup();
        svcs
    });
}

/// A bad JWT is refused at the edge, and the edge's span says so.
#[tokio::test]
async fn a_jwt_refusal_is_in_its_trace() {
    let mesh = mesh();
    let trace_id = new_trace_id();
    let mut client = UsersServiceClient::new(edge(&mesh, Some("not.a.jwt")).await);
    let mut req = tonic::Request::new(GetMeRequest {});
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent(&trace_id)).expect("ascii"),
    );
    assert_eq!(
        client.get_me(req).await.expect_err("refused").code(),
        tonic::Code::Unauthenticated
    );
    let spans = trace(&trace_id, |s| s.iter().any(|x| x.service == "edge")).await;
    let edge = find(&spans, "edge", |_| true).expect("edge span");
    assert_eq!(
        edge.tags.get("grpc.status_code").map(String::as_str),
        Some("16"),
        "{edge:?}"
    );
    assert!(
        !spans.iter().any(|s| s.service == "users"),
        "the refused call never reached users"
    );
}

/// A peer the policy does not allow is refused by the receiving sidecar,
/// and that sidecar's span records PERMISSION_DENIED.
#[tokio::test]
async fn a_disallowed_peer_refusal_is_in_its_trace() {
    let mesh = mesh();
    let probe = ProbeEnvoy::start(&mesh, "users", &mesh.spiffe_id("users"), "roles");
    let channel = probe.channel();
    let trace_id = new_trace_id();
    wait_until(
        "the probe reaches roles' sidecar",
        Patience::secs(30).every(Duration::from_millis(300)),
        || {
            let mut admin = RolesAdminClient::new(channel.clone());
            let mut req = tonic::Request::new(ListRequest::default());
            req.metadata_mut().insert(
                "traceparent",
                MetadataValue::try_from(traceparent(&trace_id)).expect("ascii"),
            );
            async move {
                match admin.list(req).await {
                    Err(s) if s.code() == tonic::Code::PermissionDenied => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let spans = trace(&trace_id, |s| {
        s.iter().any(|x| {
            x.service == "sidecar-roles" && x.tags.get("grpc.status_code").is_some_and(|c| c == "7")
        })
    })
    .await;
    assert!(
        !spans.iter().any(|s| s.service == "roles"),
        "the refused call never reached roles"
    );
}

/// `body` as a request that continues the trace `trace_id`.
fn traced<T>(trace_id: &str, body: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent(trace_id)).expect("ascii"),
    );
    req
}

/// Register and Login traces name no login, email or client address: not
/// in the services' spans (no such fields), not in Envoy's (the pipeline
/// drops `peer.address` and `user_agent`); nor do the mesh's logs.
#[tokio::test]
async fn register_and_login_traces_and_logs_carry_no_personal_data() {
    use interlock_proto::auth::v1::{LoginRequest, RegisterRequest};
    let mesh = mesh();
    let login = unique_login("private");
    let email = format!("{login}@example.com");
    let mut auth = interlock_proto::auth::v1::auth_service_client::AuthServiceClient::new(
        edge_channel(&mesh).await,
    );
    let register_trace = new_trace_id();
    auth.register(traced(
        &register_trace,
        RegisterRequest {
            login: login.clone(),
            email: email.clone(),
            password: "correct horse battery".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        },
    ))
    .await
    .expect("register");
    let login_trace = new_trace_id();
    let refused = auth
        .login(traced(
            &login_trace,
            LoginRequest {
                login_or_email: email.clone(),
                password: "wrong horse battery".into(),
            },
        ))
        .await
        .expect_err("wrong password");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let mut spans = trace(&register_trace, |s| {
        s.iter().any(|x| x.service == "edge")
            && s.iter()
                .any(|x| x.service == "users" && x.tags.contains_key("db.system"))
    })
    .await;
    spans.extend(
        trace(&login_trace, |s| {
            s.iter().any(|x| x.service == "edge")
                && s.iter()
                    .any(|x| x.service == "auth" && x.tags.contains_key("db.system"))
        })
        .await,
    );
    for span in &spans {
        for (key, value) in &span.tags {
            assert!(
                !["peer.address", "user_agent", "client.address"].contains(&key.as_str()),
                "{} {}: {key}={value}",
                span.service,
                span.operation
            );
            let lower = value.to_ascii_lowercase();
            assert!(
                !lower.contains(&login) && !lower.contains(&email),
                "{} {}: {key}={value} names the user",
                span.service,
                span.operation
            );
        }
    }
    for entry in std::fs::read_dir(mesh.run_dir.join("logs"))
        .expect("logs")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(&login),
            "{} names the user",
            entry.path().display()
        );
    }
}
