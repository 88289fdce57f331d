//! Envoy configurations (v3) for either target: one sidecar per workload
//! (here) and the edge ([`edge()`]), built as JSON values and written as
//! YAML ([`yaml`]).
//!
//! Identities come from the SPIRE agent over SDS: the certificate under the
//! workload's SPIFFE ID, the bundle under `spiffe://<trust domain>`.

use std::path::Path;

use serde_json::{Value, json};

use crate::mesh::{Mesh, Route, Target};

mod edge;

pub use edge::edge;

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
        Target::Compose => tcp(mesh.topology.targets.compose.service_port),
    }
}

/// Where the service's own outbound calls enter its sidecar. Only the
/// service can use it: a private socket, or loopback of its namespace.
fn egress_address(mesh: &Mesh, workload: &str) -> Value {
    match mesh.target {
        Target::Local => json!({ "pipe": { "path": mesh.egress_socket(workload), "mode": 0o600 } }),
        Target::Compose => tcp(mesh.topology.targets.compose.egress_port),
    }
}

/// Longest an HTTP/2 connection between sidecars may live. The peer
/// certificate is checked at the TLS handshake only, and SPIRE rotates an
/// SVID at half its TTL, so a connection opened just before a rotation must
/// close before the old SVID expires: a third of the TTL leaves margin.
/// In-flight requests finish on the draining connection. The TTL is the
/// target's: a minute locally, an hour in compose.
pub fn max_connection_secs(mesh: &Mesh) -> u32 {
    (mesh.svid_ttl_secs() / 3).max(5)
}

/// A route to `cluster` with a deadline and the retries that are safe for
/// any call, idempotent or not: the request never reached the next hop (no
/// connection could be made, or the stream was refused before it was
/// processed). They cover a restart of the next hop: the supervisor
/// brings a process back within about two seconds, and a service being
/// stopped refuses new streams while it drains. Calls that did reach it
/// are never replayed (a write is not repeated behind its client's back).
pub(crate) fn route_to(cluster: impl AsRef<str>, timeout: &str) -> Value {
    json!({
        "cluster": cluster.as_ref(),
        "timeout": timeout,
        "retry_policy": {
            "retry_on": "connect-failure,refused-stream,reset-before-request",
            "num_retries": 20,
            "retry_back_off": { "base_interval": "0.05s", "max_interval": "0.5s" }
        }
    })
}

/// How much one Envoy sends to one cluster at once: past `max_requests`
/// in flight a call is refused at once (UNAVAILABLE) instead of queueing,
/// so overload is shed quickly; retries may use a fifth of the load
/// (at least 64 at once), enough to ride out a restart without becoming
/// a retry storm.
fn circuit_breakers() -> Value {
    json!({
        "thresholds": [{
            "max_connections": 1024,
            "max_pending_requests": 256,
            "max_requests": 256,
            "retry_budget": { "budget_percent": { "value": 20.0 }, "min_retry_concurrency": 64 }
        }]
    })
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
        "circuit_breakers": circuit_breakers(),
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
    let port = mesh
        .workload(module)
        .sidecar_port
        .expect("a module that is called serves an API (checked in Mesh::new)");
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
/// W3C trace context propagated. The edge starts most traces, so it samples
/// at the mesh's ratio; a request that arrives with a trace context keeps
/// its parent's decision (the sidecars and services follow the edge).
fn tracing(mesh: &Mesh, service_name: &str) -> Value {
    json!({
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": { "envoy_grpc": { "cluster_name": OTLP_CLUSTER }, "timeout": "1s" },
                "service_name": service_name
            }
        },
        "random_sampling": { "value": mesh.topology.tracing.sampling_ratio * 100.0 },
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
    let inbound_port = mesh.workload(workload).sidecar_port;
    let own_id = mesh.spiffe_id(workload);
    let inbound = mesh.inbound_rules(workload);
    let outbound = mesh.outbound_routes(workload);

    let mut clusters = vec![
        static_cluster(SDS_CLUSTER, pipe(&mesh.agent_socket())),
        otlp_cluster(mesh),
    ];
    if inbound_port.is_some() {
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
        .map(|p| json!({ "match": { "path": p }, "route": route_to(LOCAL_HTTP, "10s") }))
        .collect();
    inbound_routes
        .push(json!({ "match": { "prefix": "/" }, "route": route_to(LOCAL_SERVICE, "30s") }));
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
        "address": host_port(mesh.bind_host(), inbound_port.unwrap_or_default()),
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
                    "tracing": tracing(mesh, &format!("sidecar-{workload}")),
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
                json!({ "match": r.envoy_match(), "route": route_to(sidecar_cluster(module), "15s") })
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
                "tracing": tracing(mesh, &format!("sidecar-{workload}"))
            }))]
        }]
    });

    // A workload without an API (no sidecar_port in the topology) gets no
    // inbound listener: its sidecar only carries its own calls.
    let listeners = if inbound_port.is_some() {
        vec![inbound_listener, egress_listener]
    } else {
        vec![egress_listener]
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

/// An Envoy configuration as YAML, with a header saying where it came
/// from.
pub fn yaml(mesh: &Mesh, config: &Value) -> String {
    crate::render::yaml(
        &format!(
            "Envoy configuration for the {} target, generated by interlock-mesh from\n\
             mesh/topology.toml and mesh/policy.toml. Do not edit: change those and\n\
             regenerate (`interlock-mesh render --write`).",
            mesh.target.name()
        ),
        config,
    )
}

#[cfg(test)]
mod tests;
