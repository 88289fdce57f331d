//! The call policy: which workload may call which RPC, written once in
//! `mesh/policy.toml` and parsed here, once, for everyone who reads it:
//!
//! - `interlock-common`'s request guard, which enforces it in every service
//!   and reports health for the services a module serves;
//! - `interlock-proto`'s build script (a build-dependency, hence no heavy
//!   dependencies: serde and toml only), which keeps server reflection to
//!   the external services;
//! - the mesh generator, which turns it into Envoy RBAC and routes.
//!
//! The file is embedded at build time ([`EMBEDDED`]), so a binary always runs
//! with the policy it was tested with, and checked for consistency on load:
//! every problem is reported at once. Anything the policy does not name is
//! denied.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

/// The repository's policy file.
pub const EMBEDDED: &str = include_str!("../../../mesh/policy.toml");

/// Problems found while loading a policy.
#[derive(Debug)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is not valid TOML or does not have the expected shape.
    Parse(toml::de::Error),
    /// A rule names a workload that is not in `[workloads]`, a service or
    /// path is listed twice, or a service has both (or neither of)
    /// `callers` and `methods`. Every problem found, `; `-separated.
    Inconsistent(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "policy is not valid: {e}"),
            Self::Inconsistent(problems) => write!(f, "policy is inconsistent: {problems}"),
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Parse(e) => Some(e),
            Self::Inconsistent(_) => None,
        }
    }
}

impl From<toml::de::Error> for PolicyError {
    fn from(e: toml::de::Error) -> Self {
        Self::Parse(e)
    }
}

/// Whether a gRPC service is routed by the edge (user JWT) or module-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    External,
    Internal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    trust_domain: String,
    workloads: BTreeMap<String, String>,
    #[serde(default)]
    service: Vec<ServiceRule>,
    #[serde(default)]
    http: Vec<HttpRule>,
}

/// One gRPC service's rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRule {
    /// Fully qualified name, e.g. `interlock.roles.v1.RolesInternal`.
    pub name: String,
    /// The module (workload) that serves it.
    pub module: String,
    pub exposure: Exposure,
    /// Workloads allowed to call every method.
    #[serde(default)]
    pub callers: Vec<String>,
    /// Per-method callers, instead of `callers`.
    #[serde(default)]
    pub methods: BTreeMap<String, Vec<String>>,
    /// External methods that need no user JWT.
    #[serde(default)]
    pub public_methods: Vec<String>,
}

/// One plain-HTTP endpoint's rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRule {
    pub path: String,
    pub module: String,
    pub callers: Vec<String>,
    /// `external`: the edge serves it to anyone, without a token (the
    /// discovery documents); `callers` must then include the edge.
    /// Internal (the default): only `callers`, module to module.
    #[serde(default = "internal")]
    pub exposure: Exposure,
}

fn internal() -> Exposure {
    Exposure::Internal
}

/// What the policy says about one request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    /// Workload names allowed to call it.
    pub callers: &'a [String],
    /// `None` for plain HTTP endpoints.
    pub exposure: Option<Exposure>,
    /// True when the request must carry a valid user JWT.
    pub requires_user: bool,
}

impl Route<'_> {
    /// Whether `workload` may make this call.
    pub fn allows(&self, workload: &str) -> bool {
        self.callers.iter().any(|c| c == workload)
    }
}

/// A loaded, consistent policy. Services and HTTP rules are kept sorted by
/// name, so everything generated from them is deterministic.
#[derive(Debug, Clone)]
pub struct Policy {
    trust_domain: String,
    workloads: BTreeMap<String, String>,
    by_spiffe_id: HashMap<String, String>,
    services: BTreeMap<String, ServiceRule>,
    http: BTreeMap<String, HttpRule>,
}

impl Policy {
    /// The policy compiled into this binary.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED).expect("the embedded policy is checked by tests")
    }

    /// Parses and checks a policy text; every inconsistency is reported.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        let mut problems = Vec::new();
        let known = |who: &str, problems: &mut Vec<String>, rule: &str| {
            if !file.workloads.contains_key(who) {
                problems.push(format!("{rule}: unknown workload {who:?}"));
            }
        };
        let mut services = BTreeMap::new();
        for rule in file.service {
            known(&rule.module, &mut problems, &rule.name);
            if rule.callers.is_empty() == rule.methods.is_empty() {
                problems.push(format!(
                    "{}: give exactly one of callers or methods",
                    rule.name
                ));
            }
            for who in rule.callers.iter().chain(rule.methods.values().flatten()) {
                known(who, &mut problems, &rule.name);
            }
            if rule.exposure == Exposure::Internal && !rule.public_methods.is_empty() {
                problems.push(format!(
                    "{}: internal services have no public methods",
                    rule.name
                ));
            }
            if let Some(dup) = services.insert(rule.name.clone(), rule) {
                problems.push(format!("{}: listed twice", dup.name));
            }
        }
        let mut http = BTreeMap::new();
        for rule in file.http {
            known(&rule.module, &mut problems, &rule.path);
            for who in &rule.callers {
                known(who, &mut problems, &rule.path);
            }
            if rule.exposure == Exposure::External && !rule.callers.iter().any(|c| c == "edge") {
                problems.push(format!(
                    "{}: an external endpoint must list the edge among its callers",
                    rule.path
                ));
            }
            if let Some(dup) = http.insert(rule.path.clone(), rule) {
                problems.push(format!("{}: listed twice", dup.path));
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError::Inconsistent(problems.join("; ")));
        }
        let by_spiffe_id = file
            .workloads
            .iter()
            .map(|(name, path)| {
                (
                    format!("spiffe://{}{}", file.trust_domain, path),
                    name.clone(),
                )
            })
            .collect();
        Ok(Self {
            trust_domain: file.trust_domain,
            workloads: file.workloads,
            by_spiffe_id,
            services,
            http,
        })
    }

    /// The trust domain, e.g. `interlock.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The SPIFFE ID of a workload, e.g. `spiffe://interlock.local/svc/auth`.
    pub fn spiffe_id(&self, workload: &str) -> Option<String> {
        self.workloads
            .get(workload)
            .map(|path| format!("spiffe://{}{}", self.trust_domain, path))
    }

    /// The workload name behind a SPIFFE ID, if it is one of ours.
    pub fn workload_of(&self, spiffe_id: &str) -> Option<&str> {
        self.by_spiffe_id.get(spiffe_id).map(String::as_str)
    }

    /// All workloads: name and SPIFFE ID path.
    pub fn workloads(&self) -> impl Iterator<Item = (&str, &str)> {
        self.workloads.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// All gRPC service rules, by name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceRule> {
        self.services.values()
    }

    /// The gRPC services `module` serves, by name: what its health reports.
    pub fn services_of<'a>(&'a self, module: &'a str) -> impl Iterator<Item = &'a ServiceRule> {
        self.services().filter(move |r| r.module == module)
    }

    /// The services the edge routes (`exposure = "external"`), by name:
    /// what server reflection describes and the edge exposes.
    pub fn external_services(&self) -> impl Iterator<Item = &ServiceRule> {
        self.services().filter(|r| r.exposure == Exposure::External)
    }

    /// All HTTP endpoint rules, by path.
    pub fn http_rules(&self) -> impl Iterator<Item = &HttpRule> {
        self.http.values()
    }

    /// The HTTP endpoints the edge serves without a token, by path.
    pub fn external_http(&self) -> impl Iterator<Item = &HttpRule> {
        self.http_rules()
            .filter(|r| r.exposure == Exposure::External)
    }

    /// Looks up a request path: `/pkg.Service/Method` or an HTTP path.
    pub fn route(&self, path: &str) -> Option<Route<'_>> {
        if let Some(rule) = self.http.get(path) {
            return Some(Route {
                callers: &rule.callers,
                exposure: None,
                requires_user: false,
            });
        }
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let rule = self.services.get(service)?;
        let callers = if rule.methods.is_empty() {
            &rule.callers
        } else {
            rule.methods.get(method)?
        };
        Some(Route {
            callers,
            exposure: Some(rule.exposure),
            requires_user: rule.exposure == Exposure::External
                && !rule.public_methods.iter().any(|m| m == method),
        })
    }
}

#[cfg(test)]
mod tests;
