//! Calls, from the policy: what each workload may call (its egress routes)
//! and who may call what on it (its sidecar's RBAC), as path matchers.

use std::collections::BTreeMap;

use interlock_common::policy::Exposure;

use crate::mesh::Mesh;

impl Mesh {
    /// Modules that `workload` calls: `(module, path prefixes or exact paths)`.
    pub fn outbound_routes(&self, workload: &str) -> BTreeMap<String, Vec<Route>> {
        let mut out: BTreeMap<String, Vec<Route>> = BTreeMap::new();
        for rule in self.policy.services() {
            if rule.exposure == Exposure::External {
                continue;
            }
            if rule.callers.iter().any(|c| c == workload) {
                out.entry(rule.module.clone())
                    .or_default()
                    .push(Route::Prefix(format!("/{}/", rule.name)));
            }
            for (method, callers) in &rule.methods {
                if callers.iter().any(|c| c == workload) {
                    out.entry(rule.module.clone())
                        .or_default()
                        .push(Route::Exact(format!("/{}/{method}", rule.name)));
                }
            }
        }
        for rule in self.policy.http_rules() {
            if rule.callers.iter().any(|c| c == workload) && rule.module != workload {
                out.entry(rule.module.clone())
                    .or_default()
                    .push(Route::Exact(rule.path.clone()));
            }
        }
        for routes in out.values_mut() {
            routes.sort();
        }
        out
    }

    /// Who may call what on `workload`'s sidecar: `(route, SPIFFE IDs)`.
    pub fn inbound_rules(&self, workload: &str) -> Vec<(Route, Vec<String>)> {
        let ids = |callers: &[String]| {
            callers
                .iter()
                .map(|c| self.spiffe_id(c))
                .collect::<Vec<_>>()
        };
        let mut rules = Vec::new();
        for rule in self.policy.services().filter(|r| r.module == workload) {
            if !rule.callers.is_empty() {
                rules.push((
                    Route::Prefix(format!("/{}/", rule.name)),
                    ids(&rule.callers),
                ));
            }
            for (method, callers) in &rule.methods {
                rules.push((
                    Route::Exact(format!("/{}/{method}", rule.name)),
                    ids(callers),
                ));
            }
        }
        for rule in self.policy.http_rules().filter(|r| r.module == workload) {
            rules.push((Route::Exact(rule.path.clone()), ids(&rule.callers)));
        }
        if workload == self.topology.edge.reflection {
            for prefix in REFLECTION_PREFIXES {
                rules.push((
                    Route::Prefix((*prefix).to_owned()),
                    vec![self.spiffe_id("edge")],
                ));
            }
        }
        rules.sort();
        rules
    }

    /// External gRPC services and the module serving each.
    pub fn external_services(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .policy
            .external_services()
            .map(|r| (r.name.clone(), r.module.clone()))
            .collect();
        v.sort();
        v
    }

    /// Methods of external services that need no user JWT.
    pub fn public_methods(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .policy
            .external_services()
            .flat_map(|r| {
                r.public_methods
                    .iter()
                    .map(move |m| format!("/{}/{m}", r.name))
            })
            .collect();
        v.sort();
        v
    }
}

/// gRPC server reflection paths.
pub const REFLECTION_PREFIXES: &[&str] = &[
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// A path matcher.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Prefix(String),
    Exact(String),
}

impl Route {
    /// Envoy's route `match` / RBAC `path` matcher.
    pub fn envoy_match(&self) -> serde_json::Value {
        match self {
            Route::Prefix(p) => serde_json::json!({ "prefix": p }),
            Route::Exact(p) => serde_json::json!({ "path": p }),
        }
    }

    pub fn string_matcher(&self) -> serde_json::Value {
        match self {
            Route::Prefix(p) => serde_json::json!({ "prefix": p }),
            Route::Exact(p) => serde_json::json!({ "exact": p }),
        }
    }
}
