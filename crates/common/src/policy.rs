//! The call policy: which workload may call which RPC. Parsed from
//! `mesh/policy.toml` (embedded at build time, so a service always runs with
//! the policy it was tested with) and checked for consistency on load.
//!
//! Anything the policy does not name is denied.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// The repository's policy file.
pub const EMBEDDED: &str = include_str!("../../../mesh/policy.toml");

/// Problems found while loading a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is not valid TOML or does not have the expected shape.
    #[error("policy is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// A rule names a caller that is not in `[workloads]`, a service twice,
    /// or a service with both `callers` and `methods`.
    #[error("policy is inconsistent: {0}")]
    Inconsistent(String),
}

/// Whether a gRPC service is routed by the edge (user JWT) or module-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    External,
    Internal,
}

#[derive(Debug, Deserialize)]
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

/// A loaded, consistent policy.
#[derive(Debug, Clone)]
pub struct Policy {
    trust_domain: String,
    workloads: BTreeMap<String, String>,
    by_spiffe_id: HashMap<String, String>,
    services: HashMap<String, ServiceRule>,
    http: HashMap<String, HttpRule>,
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
        let mut services = HashMap::new();
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
        let mut http = HashMap::new();
        for rule in file.http {
            known(&rule.module, &mut problems, &rule.path);
            for who in &rule.callers {
                known(who, &mut problems, &rule.path);
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

    /// All gRPC service rules.
    pub fn services(&self) -> impl Iterator<Item = &ServiceRule> {
        self.services.values()
    }

    /// All HTTP endpoint rules.
    pub fn http_rules(&self) -> impl Iterator<Item = &HttpRule> {
        self.http.values()
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

impl Route<'_> {
    /// Whether `workload` may make this call.
    pub fn allows(&self, workload: &str) -> bool {
        self.callers.iter().any(|c| c == workload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's policy parses and says what ARCHITECTURE.md says.
    #[test]
    fn embedded_policy_matches_the_design() {
        let p = Policy::embedded();
        assert_eq!(p.trust_domain(), "interlock.local");
        assert_eq!(
            p.spiffe_id("users").unwrap(),
            "spiffe://interlock.local/svc/users"
        );
        assert_eq!(p.workload_of("spiffe://interlock.local/edge"), Some("edge"));

        let get_roles = p
            .route("/interlock.roles.v1.RolesInternal/GetRoles")
            .unwrap();
        assert!(get_roles.allows("users") && !get_roles.allows("auth"));
        assert!(!get_roles.allows("edge") && !get_roles.allows("sender"));
        assert!(!get_roles.requires_user);

        let create = p
            .route("/interlock.notifications.v1.NotificationsInternal/Create")
            .unwrap();
        assert!(create.allows("auth") && !create.allows("sender"));
        let pending = p
            .route("/interlock.notifications.v1.NotificationsInternal/ListPending")
            .unwrap();
        assert!(pending.allows("sender") && !pending.allows("auth"));

        let login = p.route("/interlock.auth.v1.AuthService/Login").unwrap();
        assert!(login.allows("edge") && !login.requires_user);
        let logout = p.route("/interlock.auth.v1.AuthService/Logout").unwrap();
        assert!(logout.requires_user);
        assert!(
            p.route("/interlock.users.v1.UsersService/GetMe")
                .unwrap()
                .requires_user
        );

        let jwks = p.route("/.well-known/jwks.json").unwrap();
        assert!(jwks.allows("edge") && jwks.allows("sender"));
    }

    /// Internal APIs are granted per method, only to the modules whose code
    /// makes the call: users only GetRoles, auth only the registration
    /// saga's calls, notifications nothing of roles and only the read-only
    /// user lookups the design grants it; of the notifications methods,
    /// users and roles keep only Create (ARCHITECTURE.md section 3).
    #[test]
    fn internal_grants_are_per_method_and_only_what_the_code_calls() {
        let p = Policy::embedded();
        let callers = |path: &str| -> Vec<String> {
            let mut v = p
                .route(path)
                .map(|r| r.callers.to_vec())
                .unwrap_or_default();
            v.sort();
            v
        };
        let roles = "/interlock.roles.v1.RolesInternal";
        let users = "/interlock.users.v1.UsersInternal";
        let notes = "/interlock.notifications.v1.NotificationsInternal";
        assert_eq!(callers(&format!("{roles}/GetRoles")), ["users"]);
        assert_eq!(callers(&format!("{roles}/AssignDefaultRoles")), ["auth"]);
        assert_eq!(callers(&format!("{roles}/RemoveUser")), ["auth"]);
        assert_eq!(callers(&format!("{users}/CreateUser")), ["auth"]);
        assert_eq!(callers(&format!("{users}/DeleteUser")), ["auth"]);
        // The design's read-only grant (docs/security.md).
        for lookup in ["GetUser", "BatchGetUsers"] {
            assert_eq!(callers(&format!("{users}/{lookup}")), ["notifications"]);
        }
        assert_eq!(
            callers(&format!("{notes}/Create")),
            ["auth", "roles", "users"]
        );
        assert_eq!(
            callers(&format!("{notes}/GetDeliveryReport")),
            ["auth", "sender"]
        );

        // Every internal method each workload may call, across all services.
        let reachable = |who: &str| -> Vec<String> {
            let mut v: Vec<String> = p
                .services()
                .filter(|r| r.exposure == Exposure::Internal)
                .flat_map(|r| {
                    assert!(r.callers.is_empty(), "{}: grant per method", r.name);
                    r.methods
                        .iter()
                        .filter(|(_, c)| c.iter().any(|c| c == who))
                        .map(|(m, _)| format!("{}/{m}", r.name))
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            reachable("notifications"),
            [
                "interlock.users.v1.UsersInternal/BatchGetUsers",
                "interlock.users.v1.UsersInternal/GetUser"
            ],
            "notifications: no roles at all, users read-only"
        );
        assert_eq!(
            reachable("users"),
            [
                "interlock.notifications.v1.NotificationsInternal/Create",
                "interlock.roles.v1.RolesInternal/GetRoles"
            ]
        );
        assert_eq!(
            reachable("roles"),
            ["interlock.notifications.v1.NotificationsInternal/Create"]
        );
    }

    /// Unknown services and methods have no route, so they are denied.
    #[test]
    fn unlisted_paths_have_no_route() {
        let p = Policy::embedded();
        assert!(p.route("/interlock.users.v1.UsersInternal").is_none());
        assert!(p.route("/interlock.secret.v1.Admin/Drop").is_none());
        assert!(
            p.route("/interlock.notifications.v1.NotificationsInternal/Delete")
                .is_none()
        );
        assert!(p.route("").is_none());
    }

    /// Typos in the policy are caught at load, all of them at once.
    #[test]
    fn inconsistent_policies_are_rejected_with_every_problem() {
        let text = r#"
            trust_domain = "t"
            [workloads]
            a = "/a"
            [[service]]
            name = "x.S"
            module = "a"
            exposure = "internal"
            callers = ["b"]
            public_methods = ["M"]
        "#;
        let err = Policy::parse(text).unwrap_err().to_string();
        assert!(err.contains("unknown workload \"b\""), "{err}");
        assert!(err.contains("no public methods"), "{err}");
    }
}
