//! Pruning on small hand-made descriptor sets: shells, renumbered
//! comments, imports.

use prost_types::field_descriptor_proto::Type;
use prost_types::{FieldDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};

use super::*;

fn message(name: &str, fields: &[(&str, &str)], nested: Vec<DescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.into()),
        field: fields
            .iter()
            .zip(1..)
            .map(|(&(field, type_name), number)| FieldDescriptorProto {
                name: Some(field.into()),
                number: Some(number),
                r#type: Some(if type_name.is_empty() {
                    Type::String
                } else {
                    Type::Message
                } as i32),
                type_name: (!type_name.is_empty()).then(|| type_name.into()),
                ..Default::default()
            })
            .collect(),
        nested_type: nested,
        ..Default::default()
    }
}

fn service(name: &str, input: &str, output: &str) -> ServiceDescriptorProto {
    ServiceDescriptorProto {
        name: Some(name.into()),
        method: vec![MethodDescriptorProto {
            name: Some("Call".into()),
            input_type: Some(input.into()),
            output_type: Some(output.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn comment(path: &[i32], text: &str) -> Location {
    Location {
        path: path.to_vec(),
        leading_comments: Some(text.into()),
        ..Default::default()
    }
}

/// `a.proto`: an external service `p.Ext` whose request uses a type
/// nested in an internal-only message, next to an internal service and
/// an unused message; the internal message alone imports `t.proto`.
fn fixture() -> FileDescriptorSet {
    let imported = FileDescriptorProto {
        name: Some("t.proto".into()),
        package: Some("q".into()),
        message_type: vec![message("T", &[], vec![])],
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("a.proto".into()),
        package: Some("p".into()),
        dependency: vec!["t.proto".into()],
        message_type: vec![
            message("Unused", &[("secret", "")], vec![]),
            message(
                "Internal",
                &[("secret", ""), ("at", ".q.T")],
                vec![message("Inner", &[("x", "")], vec![])],
            ),
            message("Req", &[("inner", ".p.Internal.Inner")], vec![]),
            message("Resp", &[], vec![]),
        ],
        service: vec![
            service("Ext", ".p.Req", ".p.Resp"),
            service("Int", ".p.Internal", ".p.Resp"),
        ],
        source_code_info: Some(SourceCodeInfo {
            location: vec![
                comment(&[], "file"),
                comment(&[3, 0], "import of t.proto"),
                comment(&[4, 0], "Unused comment"),
                comment(&[4, 1], "Internal comment"),
                comment(&[4, 1, 2, 0], "Internal.secret comment"),
                comment(&[4, 1, 3, 0], "Inner comment"),
                comment(&[4, 1, 3, 0, 2, 0], "Inner.x comment"),
                comment(&[4, 2], "Req comment"),
                comment(&[6, 0, 2, 0], "Ext.Call comment"),
                comment(&[6, 1], "Int comment"),
            ],
        }),
        ..Default::default()
    };
    FileDescriptorSet {
        file: vec![imported, file],
    }
}

fn comments(file: &FileDescriptorProto) -> Vec<(Vec<i32>, &str)> {
    let info = file.source_code_info.as_ref().expect("source info");
    info.location
        .iter()
        .map(|l| (l.path.clone(), l.leading_comments()))
        .collect()
}

/// The message enclosing a reachable nested type survives only as an
/// empty shell: its fields (and what they import) stay hidden.
#[test]
fn nested_type_used_externally_keeps_its_parent_only_as_an_empty_shell() {
    let out = external_only(&fixture(), &["p.Ext".into()]).unwrap();
    let names: Vec<&str> = out.file.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["a.proto"], "t.proto was needed by Internal only");
    let file = &out.file[0];
    assert!(file.dependency.is_empty());
    let messages: Vec<&str> = file.message_type.iter().map(|m| m.name()).collect();
    assert_eq!(messages, ["Internal", "Req", "Resp"]);
    let shell = &file.message_type[0];
    assert!(shell.field.is_empty(), "{shell:?}");
    assert_eq!(shell.nested_type.len(), 1);
    assert_eq!(shell.nested_type[0].field.len(), 1, "Inner is kept whole");
    let services: Vec<&str> = file.service.iter().map(|s| s.name()).collect();
    assert_eq!(services, ["Ext"]);
}

/// Comments move with the elements they describe and vanish with the
/// removed ones.
#[test]
fn comments_follow_renumbered_elements_and_go_with_removed_ones() {
    let out = external_only(&fixture(), &["p.Ext".into()]).unwrap();
    assert_eq!(
        comments(&out.file[0]),
        [
            (vec![], "file"),
            (vec![4, 0, 3, 0], "Inner comment"),
            (vec![4, 0, 3, 0, 2, 0], "Inner.x comment"),
            (vec![4, 1], "Req comment"),
            (vec![6, 0, 2, 0], "Ext.Call comment"),
        ]
    );
}

/// An import stays while a kept type still uses it.
#[test]
fn import_used_by_a_reachable_type_is_kept() {
    let mut set = fixture();
    set.file[1].message_type[3] = message("Resp", &[("at", ".q.T")], vec![]);
    let out = external_only(&set, &["p.Ext".into()]).unwrap();
    let names: Vec<&str> = out.file.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["t.proto", "a.proto"]);
    assert_eq!(out.file[1].dependency, ["t.proto"]);
    assert_eq!(comments(&out.file[1])[1], (vec![3, 0], "import of t.proto"));
}

/// A method naming a type nobody declares is a build error, not a
/// silently incomplete reflection set.
#[test]
fn undeclared_type_is_an_error() {
    let mut set = fixture();
    set.file[1].service[0] = service("Ext", ".p.Missing", ".p.Resp");
    let err = external_only(&set, &["p.Ext".into()]).unwrap_err();
    assert_eq!(err, ".p.Missing is used but not declared");
}
