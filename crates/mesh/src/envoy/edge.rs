//! The edge: TLS for clients, JWT verification with the token issuer's
//! JWKS, routes to external services only, and Envoy's edge hardening
//! (deadlines, buffer limits, an overload manager, per-address rate limits
//! on what needs no token).

use serde_json::{Value, json};

use super::{
    SDS_CLUSTER, admin, grpc_refusal, hcm, host_port, otlp_cluster, peer_cluster, pipe, route_to,
    router, sidecar_cluster, static_cluster, tracing,
};
use crate::mesh::{Mesh, REFLECTION_PREFIXES};

/// Per-connection read/write buffers at the edge (Envoy's edge guidance):
/// a slow or hostile client cannot make Envoy hold more than this per
/// connection before flow control pushes back.
pub(super) const BUFFER_LIMIT_BYTES: u32 = 32 * 1024;

/// TLS 1.2 suites the edge offers (forward secret AEAD only); TLS 1.3
/// suites are fixed by BoringSSL and all acceptable.
pub(super) const EDGE_TLS12_CIPHERS: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// Envoy's edge best practices for the client-facing connection manager:
/// deadlines on headers, idle streams and whole requests, bounded HTTP/2
/// windows and streams, no header names with underscores, normalised
/// paths. Clients cannot smuggle an XFCC in; the client address is
/// reported to services for throttling.
fn edge_connection_manager(mesh: &Mesh) -> Value {
    json!({
        "forward_client_cert_details": "SANITIZE",
        "use_remote_address": true,
        "tracing": tracing(mesh, "edge"),
        "request_headers_timeout": "10s",
        "stream_idle_timeout": "60s",
        "request_timeout": "60s",
        // Well below what the services accept (16 KiB in all, with the
        // sidecar's XFCC added), so an oversized request is refused cleanly
        // here rather than reset behind a sidecar.
        "max_request_headers_kb": 8,
        "normalize_path": true,
        "merge_slashes": true,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "common_http_protocol_options": {
            // An idle client (even one that never sent a byte after TLS)
            // gives its connection back within a minute.
            "idle_timeout": "60s",
            "headers_with_underscores_action": "REJECT_REQUEST"
        },
        "http2_protocol_options": {
            "max_concurrent_streams": 100,
            "initial_stream_window_size": 65536,
            "initial_connection_window_size": 1048576
        }
    })
}

/// Sheds load before Envoy runs out of memory or connections: stops
/// accepting requests near the heap limit and caps open connections.
fn overload_manager(mesh: &Mesh) -> Value {
    const HEAP: &str = "envoy.resource_monitors.fixed_heap";
    json!({
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {
                "name": HEAP,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                    "max_heap_size_bytes": 256u64 * 1024 * 1024
                }
            },
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": mesh.topology.edge.max_connections
                }
            }
        ],
        "actions": [
            { "name": "envoy.overload_actions.shrink_heap",
              "triggers": [{ "name": HEAP, "threshold": { "value": 0.95 } }] },
            { "name": "envoy.overload_actions.stop_accepting_requests",
              "triggers": [{ "name": HEAP, "threshold": { "value": 0.98 } }] }
        ]
    })
}

/// The most RE2 instructions a route regex may compile to. The public
/// methods share one route (so one token bucket per client covers them
/// all), and its alternation of their paths outgrew Envoy's default of 100
/// when the email methods joined; every pattern is generated here from the
/// policy, none comes from a request.
pub(super) const MAX_REGEX_PROGRAM_SIZE: u32 = 1000;

/// Envoy's runtime, set once in the bootstrap: the regex size limit.
fn layered_runtime() -> Value {
    json!({
        "layers": [{
            "name": "static",
            "static_layer": {
                "re2.max_program_size.error_level": MAX_REGEX_PROGRAM_SIZE,
                "re2.max_program_size.warn_level": MAX_REGEX_PROGRAM_SIZE
            }
        }]
    })
}

/// The local rate-limit filter; each route that limits configures it.
fn local_rate_limit() -> Value {
    json!({
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "edge_rate_limit"
        }
    })
}

/// A token bucket per client address for one route (`typed_per_filter_config`
/// of the local rate-limit filter). The address is the TCP peer — the edge
/// trusts no forwarded-for header — with IPv6 clients aggregated by /64 (one
/// host usually holds a whole /64). Over the limit a gRPC client gets
/// RESOURCE_EXHAUSTED from the edge itself.
fn per_client_limit(mesh: &Mesh, stat_prefix: &str) -> Value {
    let edge = &mesh.topology.edge;
    let bucket = |tokens: u32, per_fill: u32| json!({ "max_tokens": tokens, "tokens_per_fill": per_fill, "fill_interval": "1s" });
    let always = |key: &str| json!({ "runtime_key": key, "default_value": { "numerator": 100, "denominator": "HUNDRED" } });
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": stat_prefix,
        // Above every client's own bucket: only the per-address one binds.
        "token_bucket": bucket(edge.public_burst * 1000, edge.public_per_sec * 1000),
        "filter_enabled": always("edge_rate_limit_enabled"),
        "filter_enforced": always("edge_rate_limit_enforced"),
        "rate_limited_as_resource_exhausted": true,
        // One bucket per client address, least recently used ones evicted.
        "max_dynamic_descriptors": 10000,
        "descriptors": [{
            "entries": [{ "key": "masked_remote_address" }],
            "token_bucket": bucket(edge.public_burst, edge.public_per_sec)
        }],
        "rate_limits": [{ "actions": [{ "masked_remote_address": {
            "v4_prefix_mask_len": 32,
            "v6_prefix_mask_len": 64
        } }] }]
    })
}

/// One route for every method that needs no token, to its service, with
/// [`per_client_limit`].
pub(super) fn public_method_routes(mesh: &Mesh) -> Vec<Value> {
    let limit = per_client_limit(mesh, "public_methods");
    let externals = mesh.external_services();
    let module_of = |path: &str| {
        externals
            .iter()
            .find(|(service, _)| path.starts_with(&format!("/{service}/")))
            .map(|(_, module)| module.clone())
    };
    let mut by_module: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for path in mesh.public_methods() {
        if let Some(module) = module_of(&path) {
            by_module.entry(module).or_default().push(path);
        }
    }
    by_module
        .into_iter()
        .map(|(module, paths)| {
            let alternatives: Vec<String> = paths.iter().map(|p| regex_escape(p)).collect();
            json!({
                "match": { "safe_regex": { "regex": format!("^({})$", alternatives.join("|")) } },
                "route": route_to(sidecar_cluster(&module), "30s"),
                "typed_per_filter_config": { "envoy.filters.http.local_ratelimit": limit.clone() }
            })
        })
        .collect()
}

/// The HTTP endpoints the policy makes external (the discovery documents),
/// to their module, with [`per_client_limit`] in a bucket of their own.
/// They need no token, and the module's answer (cache headers included)
/// passes through unchanged.
pub(super) fn public_http_routes(mesh: &Mesh) -> Vec<Value> {
    let limit = per_client_limit(mesh, "public_http");
    mesh.policy
        .external_http()
        .map(|rule| {
            json!({
                "match": { "path": rule.path },
                "route": { "cluster": sidecar_cluster(&rule.module), "timeout": "10s" },
                "typed_per_filter_config": { "envoy.filters.http.local_ratelimit": limit.clone() }
            })
        })
        .collect()
}

/// `s` as a literal in an RE2 pattern.
pub(super) fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// The edge: TLS for clients, JWT verification with the issuer's JWKS, routes to
/// external services only.
pub fn edge(mesh: &Mesh) -> Value {
    let edge_id = mesh.spiffe_id("edge");
    let externals = mesh.external_services();
    let (issuer, jwks_path, _) = mesh.token_issuer();
    let reflection = &mesh.topology.edge.reflection;
    // A cluster to every module the edge sends anything to.
    let mut modules: Vec<String> = externals.iter().map(|(_, m)| m.clone()).collect();
    modules.extend(mesh.policy.external_http().map(|r| r.module.clone()));
    modules.extend([issuer.to_owned(), reflection.clone()]);
    modules.sort();
    modules.dedup();

    let mut clusters = vec![
        static_cluster(SDS_CLUSTER, pipe(&mesh.agent_socket())),
        otlp_cluster(mesh),
    ];
    clusters.extend(modules.iter().map(|m| peer_cluster(mesh, &edge_id, m)));

    // The methods that need no token are reachable by anyone, and the
    // bcrypt ones are costly: they get their own route with a token bucket
    // per client address, ahead of their service's route.
    let mut routes: Vec<Value> = public_method_routes(mesh);
    routes.extend(public_http_routes(mesh));
    routes.extend(externals.iter().map(|(service, module)| {
        json!({ "match": { "prefix": format!("/{service}/") }, "route": route_to(sidecar_cluster(module), "30s") })
    }));
    // Reflection is unauthenticated: rate-limited per client like the
    // public methods (each stream holds an upstream request) and short.
    let reflection_limit = per_client_limit(mesh, "reflection");
    routes.extend(REFLECTION_PREFIXES.iter().map(|p| {
        json!({
            "match": { "prefix": p },
            "route": route_to(sidecar_cluster(reflection), "10s"),
            "typed_per_filter_config": { "envoy.filters.http.local_ratelimit": reflection_limit.clone() }
        })
    }));
    routes.push(grpc_refusal(12, "this service is not routed by the edge"));

    let mut rules: Vec<Value> = mesh
        .public_methods()
        .into_iter()
        .map(|path| json!({ "match": { "path": path } }))
        .collect();
    rules.extend(
        mesh.policy
            .external_http()
            .map(|r| json!({ "match": { "path": r.path } })),
    );
    rules.extend(
        REFLECTION_PREFIXES
            .iter()
            .map(|p| json!({ "match": { "prefix": p } })),
    );
    rules.push(json!({ "match": { "prefix": "/" }, "requires": { "provider_name": "interlock" } }));
    let jwt = json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "interlock": {
                    "issuer": interlock_common::settings::default_issuer(),
                    "audiences": [interlock_common::settings::default_audience()],
                    "forward": true,
                    // Verified tokens are remembered (until they expire):
                    // a client sends one token for many calls.
                    "jwt_cache_config": { "jwt_cache_size": 10000 },
                    "from_headers": [{ "name": "authorization", "value_prefix": "Bearer " }],
                    "remote_jwks": {
                        "http_uri": {
                            "uri": format!("http://{issuer}{jwks_path}"),
                            "cluster": sidecar_cluster(issuer),
                            "timeout": "5s"
                        },
                        // Keys are published 10 min before auth signs
                        // with them, so 5 min of cache still sees every
                        // new key in time, and the edge rides out an auth
                        // outage of that long.
                        "cache_duration": "300s",
                        "async_fetch": {},
                        "retry_policy": { "num_retries": 5 }
                    }
                }
            },
            "rules": rules
        }
    });
    let tls_dir = mesh.edge_dir();
    for c in &mut clusters {
        c["per_connection_buffer_limit_bytes"] = json!(BUFFER_LIMIT_BYTES);
    }
    json!({
        "node": { "id": "edge", "cluster": "edge" },
        "admin": admin(&mesh.admin_socket("edge")),
        "overload_manager": overload_manager(mesh),
        "layered_runtime": layered_runtime(),
        "static_resources": {
            "clusters": clusters,
            "listeners": [{
                "name": "edge",
                "address": host_port(mesh.bind_host(), mesh.topology.edge.port),
                "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
                "filter_chains": [{
                    // A client that never finishes its TLS handshake is cut
                    // off (the listener has no such deadline by default).
                    "transport_socket_connect_timeout": "10s",
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "common_tls_context": {
                                "tls_certificates": [{
                                    "certificate_chain": { "filename": tls_dir.join("server.pem") },
                                    "private_key": { "filename": tls_dir.join("server-key.pem") }
                                }],
                                "alpn_protocols": ["h2", "http/1.1"],
                                "tls_params": {
                                    "tls_minimum_protocol_version": "TLSv1_2",
                                    "cipher_suites": EDGE_TLS12_CIPHERS
                                }
                            }
                        }
                    },
                    "filters": [hcm(
                        "edge",
                        routes,
                        vec![local_rate_limit(), jwt, router()],
                        edge_connection_manager(mesh),
                    )]
                }]
            }]
        }
    })
}
