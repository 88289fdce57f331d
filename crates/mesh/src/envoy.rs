//! Envoy configurations (v3, JSON): the edge and one sidecar per workload.
//!
//! Identities come from the SPIRE agent over SDS: the certificate under the
//! workload's SPIFFE ID, the bundle under `spiffe://<trust domain>`.

use std::path::Path;

use serde_json::{Value, json};

use crate::topology::{
    COMPOSE_EGRESS_PORT, COMPOSE_SERVICE_PORT, Mesh, REFLECTION_MODULE, REFLECTION_PREFIXES, Route,
    Target,
};

const SDS_CLUSTER: &str = "spire_agent";
const OTLP_CLUSTER: &str = "otel_collector";
const LOCAL_SERVICE: &str = "local_service";
/// The same service, for the plain HTTP endpoints other modules depend on
/// (auth's JWKS and revoked sessions): a cluster of its own, so its
/// connection pool and circuit breakers are not shared with the API's
/// callers — a flood of public calls cannot starve session revocation.
const LOCAL_HTTP: &str = "local_http";

fn sidecar_cluster(module: &str) -> String {
    format!("sidecar_{module}")
}

fn http2_options() -> Value {
    json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http2_protocol_options": {} }
        }
    })
}

fn pipe(path: &Path) -> Value {
    json!({ "pipe": { "path": path } })
}

fn tcp(port: u16) -> Value {
    host_port("127.0.0.1", port)
}

fn host_port(host: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": host, "port_value": port } })
}

/// Where the local service is, from its sidecar.
fn service_address(mesh: &Mesh, workload: &str) -> Value {
    match mesh.target {
        Target::Local => pipe(&mesh.service_socket(workload)),
        Target::Compose => tcp(COMPOSE_SERVICE_PORT),
    }
}

/// Where the service's own outbound calls enter its sidecar. Only the
/// service can use it: a private socket, or loopback of its namespace.
fn egress_address(mesh: &Mesh, workload: &str) -> Value {
    match mesh.target {
        Target::Local => json!({ "pipe": { "path": mesh.egress_socket(workload), "mode": 0o600 } }),
        Target::Compose => tcp(COMPOSE_EGRESS_PORT),
    }
}

/// Longest an HTTP/2 connection between sidecars may live. The peer
/// certificate is checked at the TLS handshake only, and SPIRE rotates an
/// SVID at half its TTL, so a connection opened just before a rotation must
/// close before the old SVID expires: a third of the TTL leaves margin.
/// In-flight requests finish on the draining connection.
pub fn max_connection_secs(mesh: &Mesh) -> u32 {
    (mesh.topology.spire.x509_svid_ttl_secs / 3).max(5)
}

fn static_cluster(name: &str, address: Value) -> Value {
    // Container names are resolved by DNS; IPs and pipes are static.
    let host = address["socket_address"]["address"]
        .as_str()
        .unwrap_or("127.0.0.1");
    let kind = if host.parse::<std::net::IpAddr>().is_ok() || address.get("pipe").is_some() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    json!({
        "name": name,
        "type": kind,
        "connect_timeout": "2s",
        "typed_extension_protocol_options": http2_options(),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address } }] }]
        }
    })
}

fn sds(name: &str) -> Value {
    json!({
        "name": name,
        "sds_config": {
            "resource_api_version": "V3",
            "api_config_source": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": SDS_CLUSTER } }]
            }
        }
    })
}

/// TLS material from SDS, accepting only peers whose URI SAN is one of
/// `peers` (exact match).
fn common_tls(mesh: &Mesh, own_id: &str, peers: &[String]) -> Value {
    let sans: Vec<Value> = peers
        .iter()
        .map(|id| json!({ "san_type": "URI", "matcher": { "exact": id } }))
        .collect();
    json!({
        "tls_certificate_sds_secret_configs": [sds(own_id)],
        "combined_validation_context": {
            "default_validation_context": { "match_typed_subject_alt_names": sans },
            "validation_context_sds_secret_config": sds(&mesh.trust_domain_id())
        },
        "alpn_protocols": ["h2"],
        // Both ends are Envoy: TLS 1.3 only. (An Envoy client's maximum is
        // 1.2 unless raised, so both bounds are set.)
        "tls_params": {
            "tls_minimum_protocol_version": "TLSv1_3",
            "tls_maximum_protocol_version": "TLSv1_3"
        }
    })
}

/// A cluster to `module`'s sidecar over mTLS, presenting `own_id`.
fn peer_cluster(mesh: &Mesh, own_id: &str, module: &str) -> Value {
    let port = mesh.topology.workloads[module].sidecar_port;
    let mut c = static_cluster(
        &sidecar_cluster(module),
        host_port(&mesh.sidecar_host(module), port),
    );
    c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        ["common_http_protocol_options"] =
        json!({ "max_connection_duration": format!("{}s", max_connection_secs(mesh)) });
    c["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common_tls(mesh, own_id, &[mesh.spiffe_id(module)])
        }
    });
    c
}

/// Envoy's OpenTelemetry tracer: spans of `service_name` to the collector,
/// W3C trace context propagated; every request is sampled (the services'
/// ratio applies to traces they start themselves).
fn tracing(service_name: &str) -> Value {
    json!({
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": { "envoy_grpc": { "cluster_name": OTLP_CLUSTER }, "timeout": "1s" },
                "service_name": service_name
            }
        },
        "random_sampling": { "value": 100 },
        "spawn_upstream_span": true
    })
}

fn otlp_cluster(mesh: &Mesh) -> Value {
    static_cluster(
        OTLP_CLUSTER,
        host_port(&mesh.otlp_host(), mesh.topology.tracing.otlp_port),
    )
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    })
}

fn hcm(stat_prefix: &str, routes: Vec<Value>, filters: Vec<Value>, extra: Value) -> Value {
    let mut cfg = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "route_config": {
            "name": stat_prefix,
            "virtual_hosts": [{ "name": stat_prefix, "domains": ["*"], "routes": routes }]
        },
        "http_filters": filters
    });
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": cfg })
}

/// A gRPC refusal answered by Envoy itself (trailers-only response).
fn grpc_refusal(code: u32, message: &str) -> Value {
    json!({
        "match": { "prefix": "/" },
        "direct_response": { "status": 200 },
        "response_headers_to_add": [
            { "header": { "key": "content-type", "value": "application/grpc" } },
            { "header": { "key": "grpc-status", "value": code.to_string() } },
            { "header": { "key": "grpc-message", "value": message } }
        ]
    })
}

/// Envoy's admin API on a Unix socket only its own user (and root) can
/// open: admin can stop Envoy or raise its log level, so no other local
/// user, not even the service sharing the workload's directory or network
/// namespace, may reach it.
fn admin(socket: &Path) -> Value {
    json!({ "address": { "pipe": { "path": socket, "mode": 0o600 } } })
}

/// The sidecar of `workload`: inbound mTLS listener with RBAC from the
/// policy, forwarding to the service's socket with XFCC; and an egress
/// listener on a private socket for the service's own calls.
pub fn sidecar(mesh: &Mesh, workload: &str) -> Value {
    let w = &mesh.topology.workloads[workload];
    let own_id = mesh.spiffe_id(workload);
    let inbound = mesh.inbound_rules(workload);
    let outbound = mesh.outbound_routes(workload);

    let mut clusters = vec![
        static_cluster(SDS_CLUSTER, pipe(&mesh.agent_socket())),
        otlp_cluster(mesh),
    ];
    if !inbound.is_empty() {
        clusters.push(static_cluster(
            LOCAL_SERVICE,
            service_address(mesh, workload),
        ));
    }
    let http_paths: Vec<String> = mesh
        .policy
        .http_rules()
        .filter(|r| r.module == workload)
        .map(|r| r.path.clone())
        .collect();
    if !http_paths.is_empty() {
        clusters.push(static_cluster(LOCAL_HTTP, service_address(mesh, workload)));
    }
    let mut inbound_routes: Vec<Value> = http_paths
        .iter()
        .map(|p| json!({ "match": { "path": p }, "route": { "cluster": LOCAL_HTTP, "timeout": "10s" } }))
        .collect();
    inbound_routes.push(
        json!({ "match": { "prefix": "/" }, "route": { "cluster": LOCAL_SERVICE, "timeout": "30s" } }),
    );
    clusters.extend(outbound.keys().map(|m| peer_cluster(mesh, &own_id, m)));

    let mut callers: Vec<String> = inbound.iter().flat_map(|(_, ids)| ids.clone()).collect();
    callers.sort();
    callers.dedup();
    let policies: serde_json::Map<String, Value> = inbound
        .iter()
        .map(|(route, ids)| {
            let principals: Vec<Value> = ids
                .iter()
                .map(|id| json!({ "authenticated": { "principal_name": { "exact": id } } }))
                .collect();
            let name = match route {
                Route::Prefix(p) | Route::Exact(p) => p.clone(),
            };
            (
                name,
                json!({
                    "permissions": [{ "url_path": { "path": route.string_matcher() } }],
                    "principals": principals
                }),
            )
        })
        .collect();
    let rbac = json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": { "action": "ALLOW", "policies": policies }
        }
    });
    let inbound_listener = json!({
        "name": "inbound",
        "address": host_port(mesh.bind_host(), w.sidecar_port),
        "filter_chains": [{
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": common_tls(mesh, &own_id, &callers)
                }
            },
            "filters": [hcm(
                "inbound",
                inbound_routes,
                vec![rbac, router()],
                json!({
                    "tracing": tracing(&format!("sidecar-{workload}")),
                    "forward_client_cert_details": "SANITIZE_SET",
                    "set_current_client_cert_details": { "uri": true, "cert": true, "chain": true },
                    // Also from this side: no connection outlives the
                    // client certificate it was opened with.
                    "common_http_protocol_options": {
                        "max_connection_duration": format!("{}s", max_connection_secs(mesh))
                    }
                }),
            )]
        }]
    });

    let mut egress_routes: Vec<Value> = outbound
        .iter()
        .flat_map(|(module, routes)| {
            routes.iter().map(move |r| {
                json!({ "match": r.envoy_match(), "route": { "cluster": sidecar_cluster(module), "timeout": "15s" } })
            })
        })
        .collect();
    egress_routes.push(grpc_refusal(7, "the call policy does not allow this call"));
    let egress_listener = json!({
        "name": "egress",
        "address": egress_address(mesh, workload),
        "filter_chains": [{
            // SANITIZE (the default) drops any XFCC the service might send.
            "filters": [hcm("egress", egress_routes, vec![router()], json!({
                "forward_client_cert_details": "SANITIZE",
                "tracing": tracing(&format!("sidecar-{workload}"))
            }))]
        }]
    });

    // A workload without an API (the sender) gets no inbound listener.
    let listeners = if inbound.is_empty() {
        vec![egress_listener]
    } else {
        vec![inbound_listener, egress_listener]
    };
    json!({
        "node": { "id": format!("{workload}-sidecar"), "cluster": workload },
        "admin": admin(&mesh.admin_socket(workload)),
        "static_resources": {
            "clusters": clusters,
            "listeners": listeners
        }
    })
}

/// A plain forwarder that presents `identity` (an SVID it asks the SPIRE
/// agent for over SDS) and sends everything on `listen_port` to `target`'s
/// sidecar. The end-to-end tests run it as some workload's Unix user to act
/// as that workload (or try to be another).
pub fn forwarder(
    mesh: &Mesh,
    name: &str,
    identity: &str,
    target: &str,
    listen_port: u16,
    admin_socket: &Path,
) -> Value {
    let route =
        json!({ "match": { "prefix": "/" }, "route": { "cluster": sidecar_cluster(target) } });
    json!({
        // SDS needs a node identity.
        "node": { "id": name, "cluster": name },
        "admin": admin(admin_socket),
        "static_resources": {
            "clusters": [
                static_cluster(SDS_CLUSTER, pipe(&mesh.agent_socket())),
                peer_cluster(mesh, identity, target)
            ],
            "listeners": [{
                "name": name,
                "address": tcp(listen_port),
                "filter_chains": [{ "filters": [hcm(name, vec![route], vec![router()], json!({}))] }]
            }]
        }
    })
}

/// Per-connection read/write buffers at the edge (Envoy's edge guidance):
/// a slow or hostile client cannot make Envoy hold more than this per
/// connection before flow control pushes back.
const BUFFER_LIMIT_BYTES: u32 = 32 * 1024;

/// TLS 1.2 suites the edge offers (forward secret AEAD only); TLS 1.3
/// suites are fixed by BoringSSL and all acceptable.
const EDGE_TLS12_CIPHERS: &[&str] = &[
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
fn edge_connection_manager() -> Value {
    json!({
        "forward_client_cert_details": "SANITIZE",
        "use_remote_address": true,
        "tracing": tracing("edge"),
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
fn public_method_routes(mesh: &Mesh) -> Vec<Value> {
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
                "route": { "cluster": sidecar_cluster(&module), "timeout": "30s" },
                "typed_per_filter_config": { "envoy.filters.http.local_ratelimit": limit.clone() }
            })
        })
        .collect()
}

/// `s` as a literal in an RE2 pattern.
fn regex_escape(s: &str) -> String {
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

/// The edge: TLS for clients, JWT verification with auth's JWKS, routes to
/// external services only.
pub fn edge(mesh: &Mesh) -> Value {
    let edge_id = mesh.spiffe_id("edge");
    let externals = mesh.external_services();
    let mut modules: Vec<String> = externals.iter().map(|(_, m)| m.clone()).collect();
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
    routes.extend(externals.iter().map(|(service, module)| {
        json!({ "match": { "prefix": format!("/{service}/") }, "route": { "cluster": sidecar_cluster(module), "timeout": "30s" } })
    }));
    // Reflection is unauthenticated: rate-limited per client like the
    // public methods (each stream holds an upstream request) and short.
    let reflection_limit = per_client_limit(mesh, "reflection");
    routes.extend(REFLECTION_PREFIXES.iter().map(|p| {
        json!({
            "match": { "prefix": p },
            "route": { "cluster": sidecar_cluster(REFLECTION_MODULE), "timeout": "10s" },
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
                    "from_headers": [{ "name": "authorization", "value_prefix": "Bearer " }],
                    "remote_jwks": {
                        "http_uri": {
                            "uri": "http://auth/.well-known/jwks.json",
                            "cluster": sidecar_cluster("auth"),
                            "timeout": "5s"
                        },
                        "cache_duration": "60s",
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
                        edge_connection_manager(),
                    )]
                }]
            }]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(internal("GetRoles"), ["spiffe://interlock.local/svc/users"]);
        for m in ["AssignDefaultRoles", "RemoveUser"] {
            assert_eq!(internal(m), ["spiffe://interlock.local/svc/auth"], "{m}");
        }
        assert_eq!(
            principals(&p["/interlock.roles.v1.RolesAdmin/"]),
            ["spiffe://interlock.local/edge"]
        );
        assert_eq!(p.len(), 4, "nothing else is allowed");
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
        let egress = &cfg["static_resources"]["listeners"][1]["filter_chains"][0]["filters"][0]["typed_config"];
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
        let inbound = &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(inbound["forward_client_cert_details"], "SANITIZE_SET");
    }

    /// Connections between sidecars close well before an SVID that was
    /// current when they opened can expire (rotation at half the TTL).
    #[test]
    fn connections_are_recycled_before_svids_expire() {
        let m = mesh();
        let ttl = m.topology.spire.x509_svid_ttl_secs;
        assert!(max_connection_secs(&m) < ttl / 2);
        let cfg = sidecar(&m, "auth");
        let text = cfg.to_string();
        assert!(text.contains(&format!(
            "\"max_connection_duration\":\"{}s\"",
            max_connection_secs(&m)
        )));
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
        let hcm = &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
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
        let hcm = &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
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
        let hcm = &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
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
}
