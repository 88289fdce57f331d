//! What server reflection serves (`EXTERNAL_FILE_DESCRIPTOR_SET`): every
//! external service with everything grpcurl needs to describe it, and
//! nothing of the internal API — not its services, not its messages.

use std::collections::{HashMap, HashSet};

use interlock_proto::{EXTERNAL_FILE_DESCRIPTOR_SET, FILE_DESCRIPTOR_SET};
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

/// The services `mesh/policy.toml` marks `exposure = "external"`.
const EXTERNAL_SERVICES: [&str; 4] = [
    "interlock.auth.v1.AuthService",
    "interlock.roles.v1.RolesAdmin",
    "interlock.users.v1.UsersService",
    "interlock.notifications.v1.NotificationsService",
];

fn decode(bytes: &[u8]) -> FileDescriptorSet {
    FileDescriptorSet::decode(bytes).expect("a valid descriptor set")
}

fn prefix(file: &FileDescriptorProto) -> String {
    match file.package() {
        "" => String::new(),
        p => format!(".{p}"),
    }
}

/// Every message of `set` (nested ones too) by fully qualified name, with
/// the file that declares it.
fn messages(set: &FileDescriptorSet) -> HashMap<String, (&FileDescriptorProto, &DescriptorProto)> {
    fn walk<'a>(
        out: &mut HashMap<String, (&'a FileDescriptorProto, &'a DescriptorProto)>,
        file: &'a FileDescriptorProto,
        prefix: &str,
        list: &'a [DescriptorProto],
    ) {
        for m in list {
            let name = format!("{prefix}.{}", m.name());
            walk(out, file, &name, &m.nested_type);
            out.insert(name, (file, m));
        }
    }
    let mut out = HashMap::new();
    for file in &set.file {
        walk(&mut out, file, &prefix(file), &file.message_type);
    }
    out
}

/// Every message and enum name of `set`, with the name of the declaring file.
fn types(set: &FileDescriptorSet) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = messages(set)
        .into_iter()
        .map(|(name, (file, _))| (name, file.name().to_owned()))
        .collect();
    for (name, (file, m)) in messages(set) {
        for e in &m.enum_type {
            out.insert(format!("{name}.{}", e.name()), file.name().to_owned());
        }
    }
    for file in &set.file {
        for e in &file.enum_type {
            out.insert(
                format!("{}.{}", prefix(file), e.name()),
                file.name().to_owned(),
            );
        }
    }
    out
}

/// (service, input type, output type) of every method in `set`.
fn methods(set: &FileDescriptorSet) -> Vec<(String, String, String)> {
    set.file
        .iter()
        .flat_map(|f| f.service.iter().map(move |s| (f, s)))
        .flat_map(|(f, s)| {
            s.method.iter().map(move |m| {
                (
                    format!("{}.{}", f.package(), s.name()),
                    m.input_type().to_owned(),
                    m.output_type().to_owned(),
                )
            })
        })
        .collect()
}

/// The finding: `grpcurl describe interlock.notifications.v1.Delivery`
/// through the edge showed the FCM token and lease fields. Neither that
/// message nor any request, response or type used only by an internal
/// service is in the set reflection serves.
#[test]
fn reflection_set_omits_internal_only_messages_and_enums() {
    let full = decode(FILE_DESCRIPTOR_SET);
    let external = decode(EXTERNAL_FILE_DESCRIPTOR_SET);
    let served = types(&external);

    let external_io: HashSet<String> = methods(&full)
        .into_iter()
        .filter(|(s, _, _)| EXTERNAL_SERVICES.contains(&s.as_str()))
        .flat_map(|(_, i, o)| [i, o])
        .collect();
    let internal_only: Vec<String> = methods(&full)
        .into_iter()
        .filter(|(s, _, _)| !EXTERNAL_SERVICES.contains(&s.as_str()))
        .flat_map(|(_, i, o)| [i, o])
        .filter(|t| !external_io.contains(t))
        .collect();
    assert!(internal_only.len() > 20, "{internal_only:?}");
    let reached_only_internally = [
        ".interlock.notifications.v1.Delivery",
        ".interlock.notifications.v1.PendingNotification",
        ".interlock.notifications.v1.DeliveryResult",
        ".interlock.notifications.v1.DeliveryRecord",
        ".interlock.notifications.v1.DeliveryStatus",
    ];
    for name in internal_only
        .iter()
        .map(String::as_str)
        .chain(reached_only_internally)
    {
        assert!(!served.contains_key(name), "reflection serves {name}");
    }

    for (name, (_, m)) in messages(&external) {
        for field in &m.field {
            let f = field.name();
            assert!(!f.contains("lease"), "{name}.{f} is served");
            assert!(f != "token_hint", "{name}.{f} is served");
            if f == "fcm_token" {
                assert_eq!(
                    name, ".interlock.notifications.v1.RegisterDeviceRequest",
                    "only the external request that carries a token in may name it"
                );
            }
        }
    }
}

/// Everything an external method uses is there, declared in its file or a
/// direct import of it, so grpcurl can resolve and describe every external
/// service and message; and only the external services are listed.
#[test]
fn reflection_set_resolves_every_external_service_and_type() {
    let external = decode(EXTERNAL_FILE_DESCRIPTOR_SET);
    let served = types(&external);

    let mut services: Vec<String> = methods(&external).into_iter().map(|(s, _, _)| s).collect();
    services.dedup();
    services.sort();
    let mut expected = EXTERNAL_SERVICES.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(services, expected);

    let mut seen = HashSet::new();
    for file in &external.file {
        for dep in &file.dependency {
            assert!(
                seen.contains(dep.as_str()),
                "{} imports missing {dep}",
                file.name()
            );
        }
        seen.insert(file.name());
    }

    let visible = |file: &FileDescriptorProto, type_name: &str| match served.get(type_name) {
        Some(declared_in) => {
            declared_in == file.name() || file.dependency.iter().any(|d| d == declared_in)
        }
        None => false,
    };
    for file in &external.file {
        for s in &file.service {
            for m in &s.method {
                for t in [m.input_type(), m.output_type()] {
                    assert!(
                        visible(file, t),
                        "{}.{}: {t} unresolved",
                        s.name(),
                        m.name()
                    );
                }
            }
        }
    }
    for (name, (file, m)) in messages(&external) {
        for field in m.field.iter().filter(|f| !f.type_name().is_empty()) {
            let t = field.type_name();
            assert!(visible(file, t), "{name}.{}: {t} unresolved", field.name());
        }
    }
    for kept in [
        ".interlock.notifications.v1.RegisterDeviceRequest",
        ".interlock.notifications.v1.Platform",
        ".interlock.users.v1.User",
        ".google.protobuf.Timestamp",
    ] {
        assert!(served.contains_key(kept), "{kept} is missing");
    }
}

/// Whether a source location path names an element that exists: removed
/// elements must take their comments with them.
fn path_resolves(file: &FileDescriptorProto, path: &[i32]) -> bool {
    fn in_message(m: &DescriptorProto, path: &[i32]) -> bool {
        let get = |len: usize, i: i32| usize::try_from(i).is_ok_and(|i| i < len);
        match path {
            [2, i, ..] => get(m.field.len(), *i),
            [3, i, rest @ ..] => usize::try_from(*i)
                .ok()
                .and_then(|i| m.nested_type.get(i))
                .is_some_and(|n| in_message(n, rest)),
            [4, i, ..] => get(m.enum_type.len(), *i),
            _ => true,
        }
    }
    let get = |len: usize, i: i32| usize::try_from(i).is_ok_and(|i| i < len);
    match path {
        [3, i, ..] => get(file.dependency.len(), *i),
        [4, i, rest @ ..] => usize::try_from(*i)
            .ok()
            .and_then(|i| file.message_type.get(i))
            .is_some_and(|m| in_message(m, rest)),
        [5, i, ..] => get(file.enum_type.len(), *i),
        [6, i, rest @ ..] => usize::try_from(*i)
            .ok()
            .and_then(|i| file.service.get(i))
            .is_some_and(|s| match rest {
                [2, j, ..] => get(s.method.len(), *j),
                _ => true,
            }),
        _ => true,
    }
}

/// Comments of internal services and messages do not ride along in the
/// source info (they would describe the internal API in prose).
#[test]
fn reflection_set_keeps_no_comments_of_removed_elements() {
    let external = decode(EXTERNAL_FILE_DESCRIPTOR_SET);
    for file in &external.file {
        let Some(info) = &file.source_code_info else {
            continue;
        };
        for l in &info.location {
            assert!(
                path_resolves(file, &l.path),
                "{}: dangling {:?}",
                file.name(),
                l.path
            );
            let text = format!("{} {}", l.leading_comments(), l.trailing_comments());
            for word in ["lease", "ListPending", "sender replica"] {
                assert!(!text.contains(word), "{}: comment {text:?}", file.name());
            }
        }
    }
}
