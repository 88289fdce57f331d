use std::path::Path;

use serde_json::{Value, json};

use super::edge::{
    BUFFER_LIMIT_BYTES, EDGE_TLS12_CIPHERS, public_http_routes, public_method_routes, regex_escape,
};
use super::*;
use crate::mesh::{REFLECTION_PREFIXES, Target};
use crate::topology::repository_mesh;

fn mesh() -> Mesh {
    repository_mesh(Path::new("/run/il"), Path::new("/run/il/bin")).unwrap()
}

fn rbac_policies(config: &Value) -> serde_json::Map<String, Value> {
    let hcm = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["http_filters"][0]["typed_config"]["rules"]["policies"]
        .as_object()
        .unwrap()
        .clone()
}

fn principals(policy: &Value) -> Vec<String> {
    policy["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["authenticated"]["principal_name"]["exact"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The roles sidecar's RBAC is the policy: edge on the admin API; each
/// internal method only for the module whose code calls it.
#[test]
fn sidecar_rbac_is_generated_from_the_policy() {
    let p = rbac_policies(&sidecar(&mesh(), "roles"));
    let internal = |m: &str| principals(&p[&format!("/interlock.roles.v1.RolesInternal/{m}")]);
    for m in ["GetRoles", "BatchGetRoles"] {
        assert_eq!(internal(m), ["spiffe://interlock.local/svc/users"], "{m}");
    }
    for m in ["AssignDefaultRoles", "RemoveUser"] {
        assert_eq!(internal(m), ["spiffe://interlock.local/svc/auth"], "{m}");
    }
    assert_eq!(
        principals(&p["/interlock.roles.v1.RolesAdmin/"]),
        ["spiffe://interlock.local/edge"]
    );
    assert_eq!(p.len(), 5, "nothing else is allowed");
    assert!(!p.contains_key("/interlock.roles.v1.RolesInternal/"));

    let n = rbac_policies(&sidecar(&mesh(), "notifications"));
    assert_eq!(
        principals(&n["/interlock.notifications.v1.NotificationsInternal/ListPending"]),
        ["spiffe://interlock.local/svc/sender"]
    );
}

/// auth's egress reaches exactly the registration saga's methods of
/// users and roles internal; the XFCC header is forwarded by the inbound
/// listener only.
#[test]
fn egress_routes_follow_the_policy() {
    let cfg = sidecar(&mesh(), "auth");
    let egress =
        &cfg["static_resources"]["listeners"][1]["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = egress["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    let paths: Vec<&str> = routes
        .iter()
        .filter_map(|r| r["match"]["path"].as_str())
        .collect();
    for m in [
        "/interlock.users.v1.UsersInternal/CreateUser",
        "/interlock.users.v1.UsersInternal/DeleteUser",
        "/interlock.roles.v1.RolesInternal/AssignDefaultRoles",
        "/interlock.roles.v1.RolesInternal/RemoveUser",
    ] {
        assert!(paths.contains(&m), "{m}");
    }
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/GetRoles") || p.ends_with("/GetUser"))
    );
    let prefixes: Vec<&str> = routes
        .iter()
        .filter_map(|r| r["match"]["prefix"].as_str())
        .collect();
    assert!(
        !prefixes
            .iter()
            .any(|p| p.contains("Internal") || p.contains("Admin")),
        "{prefixes:?}"
    );
    assert_eq!(egress["forward_client_cert_details"], "SANITIZE");
    let inbound =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(inbound["forward_client_cert_details"], "SANITIZE_SET");
}

/// Connections between sidecars close well before an SVID that was
/// current when they opened can expire (rotation at half the TTL), with
/// each target's own TTL: 20 s locally, 20 min in compose.
#[test]
fn connections_are_recycled_before_svids_expire() {
    for (target, recycled) in [(Target::Local, 20), (Target::Compose, 1200)] {
        let m = mesh().for_target(target);
        assert_eq!(max_connection_secs(&m), recycled);
        assert!(max_connection_secs(&m) < m.svid_ttl_secs() / 2);
        let text = sidecar(&m, "auth").to_string();
        assert_eq!(
            text.matches(&format!("\"max_connection_duration\":\"{recycled}s\""))
                .count(),
            1 + m.outbound_routes("auth").len(),
            "inbound and every peer cluster"
        );
    }
}

/// The sender has no API: no inbound listener, and its egress reaches
/// exactly the notifications methods the policy gives it.
#[test]
fn sender_sidecar_is_egress_only() {
    let cfg = sidecar(&mesh(), "sender");
    let listeners = cfg["static_resources"]["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0]["name"], "egress");
    let text = listeners[0].to_string();
    for m in [
        "ListPending",
        "ReportDeliveries",
        "MarkProcessed",
        "ReleaseClaims",
        "GetDeliveryReport",
    ] {
        assert!(
            text.contains(&format!(
                "/interlock.notifications.v1.NotificationsInternal/{m}"
            )),
            "{m}"
        );
    }
    assert!(!text.contains("NotificationsInternal/Create"));
}

/// The edge routes every external service and no internal one.
#[test]
fn edge_routes_only_external_services() {
    let cfg = edge(&mesh());
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let text = hcm["route_config"].to_string();
    for s in [
        "AuthService",
        "UsersService",
        "RolesAdmin",
        "NotificationsService",
    ] {
        assert!(text.contains(s), "{s} missing");
    }
    assert!(!text.contains("Internal"), "an internal service is routed");
    let jwt = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
        .expect("jwt_authn filter");
    let rules = jwt["typed_config"]["rules"].to_string();
    assert!(rules.contains("/interlock.auth.v1.AuthService/Login"));
    assert!(!rules.contains("/interlock.auth.v1.AuthService/Logout"));
}

/// The discovery documents are served at the edge without a token (the
/// JWT filter lists them without `requires`), routed to auth and
/// rate-limited per client address; no other HTTP path is.
#[test]
fn edge_serves_the_discovery_documents_without_a_token() {
    let m = mesh();
    let routes = public_http_routes(&m);
    let paths: Vec<&str> = routes
        .iter()
        .map(|r| r["match"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/.well-known/jwks.json",
            "/.well-known/openid-configuration"
        ]
    );
    for r in &routes {
        assert_eq!(r["route"]["cluster"], "sidecar_auth");
        let limit = &r["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"];
        assert_eq!(limit["stat_prefix"], "public_http");
    }
    assert!(!paths.contains(&"/internal/revoked-sessions"));
    let cfg = edge(&m);
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let jwt = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
        .expect("jwt_authn filter");
    let rules = jwt["typed_config"]["rules"].as_array().unwrap();
    for path in paths {
        let rule = rules
            .iter()
            .find(|r| r["match"]["path"] == path)
            .unwrap_or_else(|| panic!("{path} has no JWT rule"));
        assert!(rule.get("requires").is_none(), "{path} needs no token");
    }
    // Before the catch-all that requires a token.
    assert_eq!(rules.last().unwrap()["match"]["prefix"], "/");
}

/// Every Envoy's admin API is a Unix socket only its own user can open
/// (mode 0600), in that workload's private directory; none is on TCP.
#[test]
fn admin_apis_are_private_unix_sockets() {
    let m = mesh();
    let mut configs = vec![("edge", edge(&m))];
    configs.extend(m.workloads().map(|w| (w, sidecar(&m, w))));
    for (w, cfg) in configs {
        let pipe = &cfg["admin"]["address"]["pipe"];
        assert_eq!(pipe["mode"], 0o600, "{w}");
        assert_eq!(pipe["path"], json!(m.admin_socket(w)), "{w}");
        assert!(cfg["admin"]["address"].get("socket_address").is_none());
    }
    assert!(m.admin_socket("users").starts_with(m.workload_dir("users")));
    assert!(m.admin_socket("edge").starts_with(m.edge_dir()));
}

/// The methods anyone may call without a token get a token bucket per
/// client address at the edge (RESOURCE_EXHAUSTED beyond it), and
/// nothing else is limited there.
#[test]
fn public_methods_are_rate_limited_per_client_address() {
    let m = mesh();
    let routes = public_method_routes(&m);
    assert_eq!(routes.len(), 1, "only auth has public methods");
    let regex = routes[0]["match"]["safe_regex"]["regex"].as_str().unwrap();
    for method in m.public_methods() {
        assert!(regex.contains(&regex_escape(&method)), "{method}");
    }
    assert!(!regex.contains("Logout"));
    let limit = &routes[0]["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"];
    assert_eq!(limit["rate_limited_as_resource_exhausted"], true);
    assert_eq!(
        limit["descriptors"][0]["entries"][0]["key"],
        "masked_remote_address"
    );
    let mask = &limit["rate_limits"][0]["actions"][0]["masked_remote_address"];
    assert_eq!(
        (&mask["v4_prefix_mask_len"], &mask["v6_prefix_mask_len"]),
        (&json!(32), &json!(64)),
        "IPv6 clients are one client per /64"
    );
    assert_eq!(
        limit["descriptors"][0]["token_bucket"]["max_tokens"],
        m.topology.edge.public_burst
    );
    assert_eq!(regex_escape("/a.b/C"), "/a\\.b/C");
    // The one route's pattern must compile within Envoy's regex limit,
    // raised in the edge's runtime (at 100, Envoy refused the config).
    let runtime = &edge(&m)["layered_runtime"]["layers"][0]["static_layer"];
    assert_eq!(runtime["re2.max_program_size.error_level"], 1000);
    assert!(regex.len() * 2 < 1000, "{regex}");
}

/// The edge follows Envoy's edge guidance: header and idle deadlines,
/// buffer limits, bounded HTTP/2, TLS 1.2+ with explicit suites, an
/// overload manager with a connection cap, and no unbounded route.
#[test]
fn edge_applies_the_edge_hardening_settings() {
    let m = mesh();
    let cfg = edge(&m);
    let listener = &cfg["static_resources"]["listeners"][0];
    assert_eq!(
        listener["per_connection_buffer_limit_bytes"],
        BUFFER_LIMIT_BYTES
    );
    let chain = &listener["filter_chains"][0];
    let tls = &chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_params"];
    assert_eq!(tls["tls_minimum_protocol_version"], "TLSv1_2");
    assert_eq!(tls["cipher_suites"], json!(EDGE_TLS12_CIPHERS));
    let hcm = &chain["filters"][0]["typed_config"];
    assert_eq!(chain["transport_socket_connect_timeout"], "10s");
    assert_eq!(hcm["request_headers_timeout"], "10s");
    assert_eq!(hcm["stream_idle_timeout"], "60s");
    assert_eq!(hcm["http2_protocol_options"]["max_concurrent_streams"], 100);
    assert_eq!(
        hcm["common_http_protocol_options"]["headers_with_underscores_action"],
        "REJECT_REQUEST"
    );
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
    {
        assert_ne!(route["route"]["timeout"], "0s", "unbounded route {route}");
    }
    let monitors = cfg["overload_manager"]["resource_monitors"].to_string();
    assert!(monitors.contains(&format!(
        "\"max_active_downstream_connections\":{}",
        m.topology.edge.max_connections
    )));
    for c in cfg["static_resources"]["clusters"].as_array().unwrap() {
        assert_eq!(c["per_connection_buffer_limit_bytes"], BUFFER_LIMIT_BYTES);
    }
}

/// Reflection needs no token, and each of its streams holds an upstream
/// request: it is rate-limited per client and short-lived at the edge,
/// so idle reflection streams cannot exhaust auth's upstream budget.
#[test]
fn reflection_is_rate_limited_and_short_at_the_edge() {
    let cfg = edge(&mesh());
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    for prefix in REFLECTION_PREFIXES {
        let route = routes
            .iter()
            .find(|r| r["match"]["prefix"] == *prefix)
            .expect("reflection route");
        assert_eq!(route["route"]["timeout"], "10s");
        let limit = &route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"];
        assert_eq!(
            limit["rate_limited_as_resource_exhausted"], true,
            "{prefix}"
        );
    }
    assert_eq!(hcm["max_request_headers_kb"], 8);
    assert_eq!(hcm["common_http_protocol_options"]["idle_timeout"], "60s");
}

/// auth's sidecar sends the HTTP endpoints other modules rely on (JWKS,
/// revoked sessions) to a cluster of their own, apart from the API's
/// callers, so a public flood cannot starve session revocation.
#[test]
fn policy_http_endpoints_have_their_own_upstream_cluster() {
    let m = mesh();
    let cfg = sidecar(&m, "auth");
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    for path in ["/.well-known/jwks.json", "/internal/revoked-sessions"] {
        let route = routes
            .iter()
            .find(|r| r["match"]["path"] == path)
            .unwrap_or_else(|| panic!("{path} route"));
        assert_eq!(route["route"]["cluster"], LOCAL_HTTP, "{path}");
    }
    let clusters = cfg["static_resources"]["clusters"].to_string();
    assert!(clusters.contains(LOCAL_HTTP) && clusters.contains(LOCAL_SERVICE));
    let users = sidecar(&m, "users").to_string();
    assert!(
        !users.contains(LOCAL_HTTP),
        "users serves no plain HTTP endpoint"
    );
}
