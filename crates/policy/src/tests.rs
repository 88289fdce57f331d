//! The repository's policy says what the design says, and bad policies
//! are refused with every problem.

use super::*;

/// The repository's policy parses and says what docs/security.md says.
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
    let discovery = p.route("/.well-known/openid-configuration").unwrap();
    assert!(discovery.allows("edge") && !discovery.allows("users"));
    let external: Vec<&str> = p.external_http().map(|r| r.path.as_str()).collect();
    assert_eq!(
        external,
        [
            "/.well-known/jwks.json",
            "/.well-known/openid-configuration"
        ],
        "only the discovery documents are public HTTP"
    );
}

/// An endpoint served to anyone at the edge must let the edge call it,
/// or its public route would only ever be refused by the sidecar.
#[test]
fn external_http_endpoints_must_allow_the_edge() {
    let text = r#"
        trust_domain = "t"
        [workloads]
        a = "/a"
        edge = "/edge"
        [[http]]
        path = "/doc"
        module = "a"
        callers = ["a"]
        exposure = "external"
    "#;
    let err = Policy::parse(text).unwrap_err().to_string();
    assert!(
        err.contains("/doc: an external endpoint must list the edge"),
        "{err}"
    );
}

/// Internal APIs are granted per method, only to the modules whose code
/// makes the call: users only GetRoles, auth only the registration
/// saga's calls, notifications nothing of roles and only the read-only
/// user lookups the design grants it; of the notifications methods,
/// users and roles keep only Create (docs/security.md, "Deliberate grants").
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
            "interlock.roles.v1.RolesInternal/BatchGetRoles",
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

/// Health and reflection read the same lists the edge and the sidecars are
/// generated from: each module's services, and the external ones.
#[test]
fn modules_serve_their_services_and_the_edge_sees_the_external_ones() {
    let p = Policy::embedded();
    let names = |rules: Vec<&ServiceRule>| -> Vec<String> {
        rules.into_iter().map(|r| r.name.clone()).collect()
    };
    assert_eq!(
        names(p.services_of("users").collect()),
        [
            "interlock.users.v1.UsersInternal",
            "interlock.users.v1.UsersService"
        ]
    );
    assert_eq!(
        names(p.services_of("auth").collect()),
        ["interlock.auth.v1.AuthService"]
    );
    assert!(p.services_of("sender").next().is_none(), "health only");
    assert_eq!(
        names(p.external_services().collect()),
        [
            "interlock.auth.v1.AuthService",
            "interlock.notifications.v1.NotificationsService",
            "interlock.roles.v1.RolesAdmin",
            "interlock.users.v1.UsersService",
        ]
    );
}

/// A misspelt top-level table would otherwise leave the policy empty, which
/// denies every call without saying why.
#[test]
fn unknown_top_level_keys_are_refused() {
    let text = r#"
        trust_domain = "t"
        [workloads]
        a = "/a"
        [[services]]
        name = "x.S"
    "#;
    let err = Policy::parse(text).unwrap_err();
    assert!(matches!(err, PolicyError::Parse(_)), "{err}");
    assert!(err.to_string().contains("services"), "{err}");
}
