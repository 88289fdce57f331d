//! Traces: one external call is one trace in Jaeger, from the edge through
//! every sidecar and service to the database; a refusal at the edge is in
//! its trace.

use interlock_e2e::jaeger::{Span, descends_from, find, new_trace_id, trace, traceparent};
use interlock_e2e::{edge, register_and_login, target, unique_login};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use tonic::metadata::MetadataValue;

/// GetMe through the edge: edge -> users sidecar -> users -> (database,
/// roles sidecar -> roles -> database), all in one trace, correctly parented.
#[tokio::test]
async fn get_me_is_one_trace_from_the_edge_to_the_database() {
    let target = target();
    let pair = register_and_login(&target, &unique_login("traced")).await;
    let trace_id = new_trace_id();
    let mut client = UsersServiceClient::new(edge(&target, Some(&pair.access_token)).await);
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
    let spans = trace(&target, &trace_id, complete).await;

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
    let target = target();
    let trace_id = new_trace_id();
    let mut client = UsersServiceClient::new(edge(&target, Some("not.a.jwt")).await);
    let mut req = tonic::Request::new(GetMeRequest {});
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent(&trace_id)).expect("ascii"),
    );
    assert_eq!(
        client.get_me(req).await.expect_err("refused").code(),
        tonic::Code::Unauthenticated
    );
    let spans = trace(&target, &trace_id, |s| {
        s.iter().any(|x| x.service == "edge")
    })
    .await;
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
