//! What server reflection may describe: the external services, and only the
//! messages and enums a client of the edge can meet through their methods.
//!
//! [`external_only`] keeps a type when an external method's input or output
//! reaches it through message fields (map entries and nested types
//! included). Everything else — internal services, their requests and
//! responses, and the types only they use (a `Delivery` with its FCM token,
//! lease fields) — is left out, so `grpcurl describe` through the edge cannot
//! name them. The files stay a consistent set: a file keeps only the imports
//! its remaining types need, files nobody needs any more are dropped, and
//! source comments are renumbered with what they describe (or dropped with
//! it, so an internal method's comment does not survive its method).
//!
//! `build.rs` includes this file to write `EXTERNAL_FILE_DESCRIPTOR_SET`, and
//! the crate compiles it for its unit tests only, so it may use nothing but
//! `std` and `prost_types`.

use std::collections::{HashMap, HashSet};

use prost_types::source_code_info::Location;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet, SourceCodeInfo};

// Field numbers from descriptor.proto: the steps of a `SourceCodeInfo` path.
const FILE_DEPENDENCY: i32 = 3;
const FILE_MESSAGE_TYPE: i32 = 4;
const FILE_ENUM_TYPE: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_NESTED_TYPE: i32 = 3;
const MESSAGE_ENUM_TYPE: i32 = 4;

/// The files of `set` cut down to the services named in `external_services`
/// (fully qualified, without a leading dot) and the types reachable from
/// their methods.
///
/// A message that is not reachable itself but encloses a reachable nested
/// type stays as an empty shell (its name and the kept nested types, no
/// fields, options or comments), because the nested type's name resolves
/// through it.
///
/// Fails on a reference to an undeclared type and on extensions, which
/// this does not follow (no Interlock proto declares one).
pub fn external_only(
    set: &FileDescriptorSet,
    external_services: &[String],
) -> Result<FileDescriptorSet, String> {
    let decls = declarations(set)?;
    let is_external = |file: &FileDescriptorProto, service: &str| {
        external_services.contains(&qualified(file.package(), service))
    };

    let mut reachable: HashSet<String> = HashSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for file in &set.file {
        for service in file.service.iter().filter(|s| is_external(file, s.name())) {
            for method in &service.method {
                todo.extend([method.input_type(), method.output_type()]);
            }
        }
    }
    while let Some(name) = todo.pop() {
        let decl = decls
            .get(name)
            .ok_or_else(|| format!("{name} is used but not declared"))?;
        if reachable.insert(name.to_owned())
            && let Some(message) = decl.message
        {
            todo.extend(field_types(message));
        }
    }
    let mut kept = reachable.clone();
    for name in &reachable {
        let mut parent = decls[name.as_str()].parent.as_deref();
        while let Some(p) = parent {
            kept.insert(p.to_owned());
            parent = decls[p].parent.as_deref();
        }
    }

    // The files each file still needs: where its kept types and services
    // find the types they use.
    let mut needs: Vec<HashSet<usize>> = vec![HashSet::new(); set.file.len()];
    for name in &reachable {
        let decl = &decls[name.as_str()];
        if let Some(message) = decl.message {
            needs[decl.file].extend(field_types(message).map(|t| decls[t].file));
        }
    }
    for (i, file) in set.file.iter().enumerate() {
        for service in file.service.iter().filter(|s| is_external(file, s.name())) {
            for method in &service.method {
                needs[i].extend([method.input_type(), method.output_type()].map(|t| decls[t].file));
            }
        }
    }

    let mut pruned: Vec<(FileDescriptorProto, bool)> = Vec::with_capacity(set.file.len());
    for (i, file) in set.file.iter().enumerate() {
        let needed: HashSet<&str> = needs[i]
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| set.file[j].name())
            .collect();
        let plan = FilePlan::new(file, &needed, &kept, &reachable, |s| is_external(file, s));
        let has_services = plan.services.iter().any(Option::is_some);
        pruned.push((plan.apply(file), has_services));
    }

    // Keep the files with external services and, transitively, their imports.
    let by_name: HashMap<&str, usize> = pruned
        .iter()
        .enumerate()
        .map(|(i, (f, _))| (f.name(), i))
        .collect();
    let mut wanted = vec![false; pruned.len()];
    let mut todo: Vec<usize> = (0..pruned.len()).filter(|&i| pruned[i].1).collect();
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut wanted[i], true) {
            for dep in &pruned[i].0.dependency {
                let j = *by_name.get(dep.as_str()).ok_or_else(|| {
                    format!(
                        "{} imports {dep}, which is not in the set",
                        pruned[i].0.name()
                    )
                })?;
                todo.push(j);
            }
        }
    }
    Ok(FileDescriptorSet {
        file: pruned
            .into_iter()
            .zip(wanted)
            .filter_map(|((file, _), wanted)| wanted.then_some(file))
            .collect(),
    })
}

fn qualified(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_owned()
    } else {
        format!("{package}.{name}")
    }
}

/// The types a message's fields use (fully qualified, with a leading dot).
fn field_types(message: &DescriptorProto) -> impl Iterator<Item = &str> {
    message
        .field
        .iter()
        .map(|f| f.type_name())
        .filter(|t| !t.is_empty())
}

/// Where a type is declared.
pub(crate) struct Decl<'a> {
    pub(crate) file: usize,
    /// The enclosing message of a nested type.
    pub(crate) parent: Option<String>,
    /// `None` for an enum.
    pub(crate) message: Option<&'a DescriptorProto>,
}

/// Every message and enum of `set` by fully qualified name (`.pkg.Outer.Inner`).
pub(crate) fn declarations(set: &FileDescriptorSet) -> Result<HashMap<String, Decl<'_>>, String> {
    let mut out = HashMap::new();
    for (i, file) in set.file.iter().enumerate() {
        if !file.extension.is_empty() {
            return Err(format!("{} declares extensions", file.name()));
        }
        let prefix = match file.package() {
            "" => String::new(),
            p => format!(".{p}"),
        };
        declare_messages(&mut out, i, &prefix, None, &file.message_type)?;
        for e in &file.enum_type {
            let decl = Decl {
                file: i,
                parent: None,
                message: None,
            };
            out.insert(format!("{prefix}.{}", e.name()), decl);
        }
    }
    Ok(out)
}

fn declare_messages<'a>(
    out: &mut HashMap<String, Decl<'a>>,
    file: usize,
    prefix: &str,
    parent: Option<&str>,
    messages: &'a [DescriptorProto],
) -> Result<(), String> {
    for m in messages {
        let name = format!("{prefix}.{}", m.name());
        if !m.extension.is_empty() {
            return Err(format!("{name} declares extensions"));
        }
        declare_messages(out, file, &name, Some(&name), &m.nested_type)?;
        for e in &m.enum_type {
            let decl = Decl {
                file,
                parent: Some(name.clone()),
                message: None,
            };
            out.insert(format!("{name}.{}", e.name()), decl);
        }
        let decl = Decl {
            file,
            parent: parent.map(str::to_owned),
            message: Some(m),
        };
        out.insert(name, decl);
    }
    Ok(())
}

/// Old index -> new index (`None`: removed), for one list of a descriptor.
type Renumbering = Vec<Option<i32>>;

fn renumber(keep: impl Iterator<Item = bool>) -> Renumbering {
    let mut next = 0;
    keep.map(|k| {
        k.then(|| {
            next += 1;
            next - 1
        })
    })
    .collect()
}

fn select<T: Clone>(items: &[T], plan: &Renumbering) -> Vec<T> {
    items
        .iter()
        .zip(plan)
        .filter_map(|(item, new)| new.map(|_| item.clone()))
        .collect()
}

/// What stays of one file.
struct FilePlan {
    messages: Vec<Option<MessagePlan>>,
    enums: Renumbering,
    services: Renumbering,
    dependencies: Renumbering,
}

/// What stays of one kept message.
struct MessagePlan {
    index: i32,
    /// Kept only because a nested type is reachable.
    shell: bool,
    nested: Vec<Option<MessagePlan>>,
    enums: Renumbering,
}

fn plan_messages(
    prefix: &str,
    messages: &[DescriptorProto],
    kept: &HashSet<String>,
    reachable: &HashSet<String>,
) -> Vec<Option<MessagePlan>> {
    let names: Vec<String> = messages
        .iter()
        .map(|m| format!("{prefix}.{}", m.name()))
        .collect();
    let numbers = renumber(names.iter().map(|n| kept.contains(n)));
    messages
        .iter()
        .zip(names)
        .zip(numbers)
        .map(|((m, name), index)| {
            Some(MessagePlan {
                index: index?,
                shell: !reachable.contains(&name),
                nested: plan_messages(&name, &m.nested_type, kept, reachable),
                enums: renumber(
                    m.enum_type
                        .iter()
                        .map(|e| reachable.contains(&format!("{name}.{}", e.name()))),
                ),
            })
        })
        .collect()
}

impl FilePlan {
    fn new(
        file: &FileDescriptorProto,
        needed: &HashSet<&str>,
        kept: &HashSet<String>,
        reachable: &HashSet<String>,
        is_external: impl Fn(&str) -> bool,
    ) -> Self {
        let prefix = match file.package() {
            "" => String::new(),
            p => format!(".{p}"),
        };
        // A type can also come through an `import public` of an import; the
        // direct imports cannot tell which, so such a file keeps them all.
        let direct = needed
            .iter()
            .all(|n| file.dependency.iter().any(|d| d == n));
        let re_exported: HashSet<i32> = file
            .public_dependency
            .iter()
            .chain(&file.weak_dependency)
            .copied()
            .collect();
        let dependencies = renumber(
            file.dependency
                .iter()
                .zip(0..)
                .map(|(d, i)| !direct || needed.contains(d.as_str()) || re_exported.contains(&i)),
        );
        Self {
            messages: plan_messages(&prefix, &file.message_type, kept, reachable),
            enums: renumber(
                file.enum_type
                    .iter()
                    .map(|e| reachable.contains(&format!("{prefix}.{}", e.name()))),
            ),
            services: renumber(file.service.iter().map(|s| is_external(s.name()))),
            dependencies,
        }
    }

    fn apply(&self, file: &FileDescriptorProto) -> FileDescriptorProto {
        let new_dep = |old: &i32| -> i32 {
            let kept = usize::try_from(*old)
                .ok()
                .and_then(|i| self.dependencies.get(i).copied().flatten());
            kept.expect("public and weak imports are always kept")
        };
        FileDescriptorProto {
            dependency: select(&file.dependency, &self.dependencies),
            public_dependency: file.public_dependency.iter().map(new_dep).collect(),
            weak_dependency: file.weak_dependency.iter().map(new_dep).collect(),
            message_type: prune_messages(&file.message_type, &self.messages),
            enum_type: select(&file.enum_type, &self.enums),
            service: select(&file.service, &self.services),
            source_code_info: file.source_code_info.as_ref().map(|info| SourceCodeInfo {
                location: info
                    .location
                    .iter()
                    .filter_map(|l| {
                        let path = self.remap(&l.path)?;
                        Some(Location { path, ..l.clone() })
                    })
                    .collect(),
            }),
            ..file.clone()
        }
    }

    /// A source location's path in the pruned file, `None` if what it
    /// describes is gone.
    fn remap(&self, path: &[i32]) -> Option<Vec<i32>> {
        let [list, old, rest @ ..] = path else {
            return Some(path.to_vec());
        };
        let renumbering = match *list {
            FILE_MESSAGE_TYPE => {
                let plan = self.messages.get(usize::try_from(*old).ok()?)?.as_ref()?;
                return Some(step(FILE_MESSAGE_TYPE, plan.index, &plan.remap(rest)?));
            }
            FILE_ENUM_TYPE => &self.enums,
            FILE_SERVICE => &self.services,
            FILE_DEPENDENCY => &self.dependencies,
            _ => return Some(path.to_vec()),
        };
        let new = (*renumbering.get(usize::try_from(*old).ok()?)?)?;
        Some(step(*list, new, rest))
    }
}

impl MessagePlan {
    fn remap(&self, path: &[i32]) -> Option<Vec<i32>> {
        match path {
            [MESSAGE_NESTED_TYPE, old, rest @ ..] => {
                let plan = self.nested.get(usize::try_from(*old).ok()?)?.as_ref()?;
                Some(step(MESSAGE_NESTED_TYPE, plan.index, &plan.remap(rest)?))
            }
            [MESSAGE_ENUM_TYPE, old, rest @ ..] => {
                let new = (*self.enums.get(usize::try_from(*old).ok()?)?)?;
                Some(step(MESSAGE_ENUM_TYPE, new, rest))
            }
            // A shell keeps none of its own comments, fields or options.
            _ if self.shell => None,
            _ => Some(path.to_vec()),
        }
    }
}

/// A path that goes to element `index` of list `list`, then on by `rest`.
fn step(list: i32, index: i32, rest: &[i32]) -> Vec<i32> {
    [list, index]
        .into_iter()
        .chain(rest.iter().copied())
        .collect()
}

fn prune_messages(
    messages: &[DescriptorProto],
    plans: &[Option<MessagePlan>],
) -> Vec<DescriptorProto> {
    messages
        .iter()
        .zip(plans)
        .filter_map(|(m, plan)| plan.as_ref().map(|p| prune_message(m, p)))
        .collect()
}

fn prune_message(message: &DescriptorProto, plan: &MessagePlan) -> DescriptorProto {
    let nested_type = prune_messages(&message.nested_type, &plan.nested);
    let enum_type = select(&message.enum_type, &plan.enums);
    if plan.shell {
        DescriptorProto {
            name: message.name.clone(),
            nested_type,
            enum_type,
            ..Default::default()
        }
    } else {
        DescriptorProto {
            nested_type,
            enum_type,
            ..message.clone()
        }
    }
}

// A path relative to this file, so build.rs's `#[path]` include resolves it
// the same way (for rustfmt; the build script never compiles tests).
#[cfg(test)]
#[path = "reflection/tests.rs"]
mod tests;
