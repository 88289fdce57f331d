//! The shared sections flattened into a service's settings: unknown and
//! unused sections refused, every problem reported at once.

use super::*;

/// A service's settings as the services write them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    #[serde(flatten)]
    common: CommonSettings,
    own: Own,
}

/// A service without a database or a `[jwt]`, like the sender.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lean {
    #[serde(flatten)]
    common: CommonSettings<Absent, Absent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    name: String,
}

const SERVER_AND_PEER: &str = r#"
[server]
listen = "unix:/run/interlock/users/grpc.sock"
[peer]
workload_api_socket = "unix:///run/spire/agent.sock"
"#;

const DATABASE_AND_JWT: &str = r#"
[database]
url = "postgres://users:secret@127.0.0.1/users"
[jwt]
jwks_url = "http://127.0.0.1:7000/.well-known/jwks.json"
"#;

/// The shared sections and the service's own come from one file; `[log]`
/// may be left out.
#[test]
fn common_sections_flatten_into_a_services_settings() {
    let text = format!("{SERVER_AND_PEER}{DATABASE_AND_JWT}[own]\nname = \"x\"\n");
    let full: Full = toml::from_str(&text).expect("parses");
    assert_eq!(
        full.common.server.listen,
        ListenAddr::Unix("/run/interlock/users/grpc.sock".into())
    );
    assert_eq!(full.common.log.format, LogFormat::Text);
    assert_eq!(full.common.database.max_connections, 10);
    assert_eq!(full.common.jwt.issuer, "interlock-auth");
    assert_eq!(full.own.name, "x");
    let mut problems = Vec::new();
    full.common.check(&mut problems);
    assert!(problems.is_empty(), "{problems:?}");
}

/// Flattening does not open the door to typos: an unknown section is still
/// an error, as it was before the shared sections were flattened.
#[test]
fn unknown_sections_are_refused() {
    let text = format!("{SERVER_AND_PEER}{DATABASE_AND_JWT}[own]\nname = \"x\"\n[databse]\n");
    let err = toml::from_str::<Full>(&text).unwrap_err().to_string();
    assert!(err.contains("databse"), "{err}");
}

/// A service that has no database refuses a `[database]` rather than
/// silently ignoring it, and needs neither section.
#[test]
fn sections_a_service_does_not_use_must_be_absent() {
    let lean: Lean = toml::from_str(SERVER_AND_PEER).expect("parses without them");
    assert_eq!(lean.common.database, Absent);
    let err = toml::from_str::<Lean>(&format!("{SERVER_AND_PEER}{DATABASE_AND_JWT}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not use it"), "{err}");
}

/// Every broken shared setting is reported in one go, not the first only.
#[test]
fn every_problem_in_the_shared_sections_is_reported() {
    let text = r#"
        [server]
        listen = "127.0.0.1:7000"
        unix_peer_uids = [1000]
        [peer]
        [log]
        otlp_endpoint = "collector:4317"
        sampling_ratio = 2.0
        [database]
        url = "mysql://x"
        max_connections = 0
        [jwt]
        jwks_url = "ftp://auth"
        revocation_refresh_ms = 1
        [own]
        name = "x"
    "#;
    let full: Full = toml::from_str(text).expect("parses");
    let mut problems = Vec::new();
    full.common.check(&mut problems);
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        [
            "server.unix_peer_uids",
            "peer",
            "log.otlp_endpoint",
            "log.sampling_ratio",
            "database.url",
            "database.max_connections",
            "jwt.jwks_url",
            "jwt.revocation_refresh_ms",
        ]
    );
    let err = problems_to_result("users", problems)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("configuration of users has 8 problem(s)"),
        "{err}"
    );
}

/// Listen addresses read and print the same way (`unix:` + absolute path).
#[test]
fn listen_addresses_round_trip() {
    for text in ["127.0.0.1:7000", "unix:/run/x.sock"] {
        let addr = ListenAddr::try_from(text.to_owned()).expect("valid");
        assert_eq!(addr.to_string(), text);
    }
    assert!(ListenAddr::try_from("unix:relative.sock".to_owned()).is_err());
    assert!(ListenAddr::try_from("localhost".to_owned()).is_err());
}

/// What the binaries do: the file, then `INTERLOCK_<SERVICE>__*` variables
/// on top, through the flattened sections too (numbers parsed from text).
#[test]
fn environment_overrides_the_file_in_flattened_sections() {
    let text = format!("{SERVER_AND_PEER}{DATABASE_AND_JWT}[own]\nname = \"x\"\n");
    let file = config::File::from_str(&text, config::FileFormat::Toml);
    let env = config::Map::from([
        (
            "INTERLOCK_USERS__DATABASE__MAX_CONNECTIONS".to_owned(),
            "3".to_owned(),
        ),
        (
            "INTERLOCK_USERS__SERVER__LISTEN".to_owned(),
            "127.0.0.1:7003".to_owned(),
        ),
        ("INTERLOCK_USERS__OWN__NAME".to_owned(), "y".to_owned()),
    ]);
    let full: Full = load_from("users", Some(file), Some(env)).expect("loads");
    assert_eq!(full.common.database.max_connections, 3);
    assert_eq!(
        full.common.server.listen,
        ListenAddr::Tcp("127.0.0.1:7003".parse().expect("addr"))
    );
    assert_eq!(full.own.name, "y");

    let typo = config::File::from_str(&format!("{text}[jwtt]\n"), config::FileFormat::Toml);
    let err = load_from::<Full>("users", Some(typo), Some(config::Map::new()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("jwtt"), "{err}");

    let lean = config::File::from_str(SERVER_AND_PEER, config::FileFormat::Toml);
    let lean: Lean = load_from("sender", Some(lean), Some(config::Map::new())).expect("loads");
    assert_eq!(lean.common.jwt, Absent);
    let database = config::Map::from([(
        "INTERLOCK_SENDER__DATABASE__URL".to_owned(),
        "postgres://x".to_owned(),
    )]);
    let file = config::File::from_str(SERVER_AND_PEER, config::FileFormat::Toml);
    let err = load_from::<Lean>("sender", Some(file), Some(database))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not use it"), "{err}");
}
