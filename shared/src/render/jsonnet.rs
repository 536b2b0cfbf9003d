//! Jsonnet, as Argo CD's directory source renders it: every `*.jsonnet` file under the
//! path is evaluated (`.libsonnet` files are only imported), beside the plain YAML/JSON
//! files of the same tree.
//!
//! Evaluated in-process with jrsonnet, so that `import` and `importstr` read the
//! snapshot (the same revision as the manifests) and nothing else: no disk, no path
//! outside the repository.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jrsonnet_evaluator::error::ErrorKind;
use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::tla::TlaArg;
use jrsonnet_evaluator::trace::PathResolver;
use jrsonnet_evaluator::{
    AsPathLike, Error, IStr, ImportResolver, ResolvePath, SourcePath, State, apply_tla,
};
use jrsonnet_gcmodule::Acyclic;
use jrsonnet_ir::SourceFile;
use serde_json::Value;

use super::yaml::{check_size, collect, render_plain};
use super::{Manifest, RenderError};
use crate::error_text::one_line;

/// What a Jsonnet program is given from outside, named as Argo CD names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonnetOptions {
    /// Top-level arguments, as strings (`jsonnet --tla-str`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tlas: BTreeMap<String, String>,
    /// External variables, as strings (`jsonnet --ext-str`), read with `std.extVar`.
    #[serde(default, alias = "extVars", skip_serializing_if = "BTreeMap::is_empty")]
    pub ext_vars: BTreeMap<String, String>,
    /// Repo-relative directories searched for imports not found beside the importing file
    /// (`jsonnet -J`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libs: Vec<String>,
}

impl JsonnetOptions {
    pub fn is_empty(&self) -> bool {
        self.tlas.is_empty() && self.ext_vars.is_empty() && self.libs.is_empty()
    }

    /// These options with `flags` on top: their arguments and variables win by name,
    /// their library directories are searched first.
    pub fn overlaid(&self, flags: &JsonnetOptions) -> JsonnetOptions {
        let mut merged = self.clone();
        merged.tlas.extend(flags.tlas.clone());
        merged.ext_vars.extend(flags.ext_vars.clone());
        merged.libs = flags.libs.iter().chain(&self.libs).cloned().collect();
        merged
    }
}

/// True when `root` is a `.jsonnet` file or a directory holding one (hidden directories
/// aside, as for plain files).
pub(super) fn has_jsonnet(files: &BTreeMap<String, Vec<u8>>, root: &str) -> bool {
    if files.contains_key(root) {
        return root.ends_with(".jsonnet");
    }
    under(files, root).any(|(path, _)| path.ends_with(".jsonnet"))
}

/// The objects of every `.jsonnet` file under `root`, after those of its YAML and JSON
/// files.
pub(super) fn render(
    files: &BTreeMap<String, Vec<u8>>,
    root: &str,
    options: &JsonnetOptions,
) -> Result<Vec<Manifest>, RenderError> {
    let state = state(files, options);
    if files.contains_key(root) {
        return evaluate(&state, files, root, options);
    }
    let mut manifests = render_plain(files, root)?;
    let programs: Vec<&str> = under(files, root)
        .map(|(path, _)| path)
        .filter(|path| path.ends_with(".jsonnet"))
        .collect();
    for path in programs {
        manifests.extend(evaluate(&state, files, path, options)?);
    }
    Ok(manifests)
}

/// Non-hidden files below directory `root`.
fn under<'a>(
    files: &'a BTreeMap<String, Vec<u8>>,
    root: &str,
) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let skip = prefix.len();
    files
        .range::<str, _>((
            std::ops::Bound::Included(prefix.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(move |(path, _)| path.starts_with(&prefix))
        .filter_map(move |(path, bytes)| {
            let relative = &path[skip..];
            let hidden = relative.split('/').any(|part| part.starts_with('.'));
            (!hidden).then_some((path.as_str(), bytes.as_slice()))
        })
}

/// An evaluator whose imports read `files`, with the options' external variables.
fn state(files: &BTreeMap<String, Vec<u8>>, options: &JsonnetOptions) -> State {
    let context = jrsonnet_stdlib::ContextInitializer::new(PathResolver::FileName);
    for (name, value) in &options.ext_vars {
        context.add_ext_str(name.as_str().into(), value.as_str().into());
    }
    let mut builder = State::builder();
    builder
        .import_resolver(SnapshotImports {
            files: files.clone(),
            libs: options
                .libs
                .iter()
                .map(|lib| lib.trim_matches('/').to_string())
                .collect(),
            refused_at: RefCell::new(None),
        })
        .context_initializer(context);
    builder.build()
}

/// Evaluates one program and unpacks its value: an object, an array of objects or a
/// `List`. Each object's origin is the file, line 1.
fn evaluate(
    state: &State,
    files: &BTreeMap<String, Vec<u8>>,
    path: &str,
    options: &JsonnetOptions,
) -> Result<Vec<Manifest>, RenderError> {
    check_size(path, files.get(path).map_or(0, Vec::len))?;
    let _entered = state.try_enter();
    // Interned strings hash by their stable contents; the interior mutability clippy
    // sees is the interner's reference count.
    #[allow(clippy::mutable_key_type)]
    let tlas: HashMap<IStr, TlaArg> = options
        .tlas
        .iter()
        .map(|(name, value)| (name.as_str().into(), TlaArg::String(value.as_str().into())))
        .collect();
    let json = state
        .import_resolved(source_path(path))
        .and_then(|value| apply_tla(&tlas, value))
        .and_then(|value| value.manifest(JsonFormat::minify()))
        .map_err(|err| located(state, path, &err))?;
    let value: Value = serde_json::from_str(&json).map_err(|err| RenderError::Jsonnet {
        at: path.to_string(),
        message: format!("the output is not JSON: {err}"),
    })?;
    let mut manifests = Vec::new();
    match value {
        Value::Array(items) => {
            for (index, item) in items.into_iter().enumerate() {
                if !item.is_object() {
                    return Err(RenderError::Jsonnet {
                        at: path.to_string(),
                        message: format!(
                            "item {index} of the output array is not an object; a program \
                             gives an object, an array of objects or a List"
                        ),
                    });
                }
                collect(path, index, 1, item, &mut manifests)?;
            }
        }
        Value::Object(_) => collect(path, 0, 1, value, &mut manifests)?,
        other => {
            return Err(RenderError::Jsonnet {
                at: path.to_string(),
                message: format!(
                    "the output is {}; a program gives an object, an array of objects or a List",
                    kind_of(&other)
                ),
            });
        }
    }
    Ok(manifests)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The error at its innermost place in a repository file: `file:line:column`, else the
/// program evaluated.
fn located(state: &State, program: &str, err: &Error) -> RenderError {
    let refused_at = (state.import_resolver() as &dyn std::any::Any)
        .downcast_ref::<SnapshotImports>()
        .and_then(|imports| imports.refused_at.borrow_mut().take());
    let traced = err.trace().0.iter().find_map(|frame| {
        let span = frame.location.as_ref()?;
        let file = span.0.source_path().path()?.to_str()?.to_string();
        let [start] = span.0.map_source_locations(&[span.1]);
        Some(format!("{file}:{}:{}", start.line, start.column))
    });
    let place = refused_at.or(traced);
    let message = match err.error() {
        ErrorKind::ImportSyntaxError { error, .. } => format!("syntax error: {}", error.message),
        // `error 'text'` says what the program's author wants read, as it stands.
        ErrorKind::RuntimeError(message) => message.to_string(),
        other => other.to_string(),
    };
    RenderError::Jsonnet {
        at: place.unwrap_or_else(|| program.to_string()),
        message: one_line(&message),
    }
}

fn source_path(path: &str) -> SourcePath {
    SourcePath::new(SourceFile::new(PathBuf::from(path)))
}

/// Imports resolved in the snapshot: beside the importing file, then in each library
/// directory; never outside the repository.
#[derive(Acyclic)]
struct SnapshotImports {
    files: BTreeMap<String, Vec<u8>>,
    libs: Vec<String>,
    /// `file:line:column` of the last import refused: the evaluator's error for a failed
    /// resolution carries no place.
    refused_at: RefCell<Option<String>>,
}

impl SnapshotImports {
    fn refuse(&self, from: &str, wanted: &str, message: String) -> Error {
        let place = self
            .files
            .get(from)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| import_place(text, wanted))
            .map(|(line, column)| format!("{from}:{line}:{column}"));
        *self.refused_at.borrow_mut() = place;
        runtime(message)
    }
}

/// 1-based line and column of the `import` (or `importstr`, `importbin`) keyword that
/// names `wanted`.
fn import_place(text: &str, wanted: &str) -> Option<(usize, usize)> {
    ['\'', '"'].iter().find_map(|quote| {
        let literal = format!("{quote}{wanted}{quote}");
        text.match_indices(&literal).find_map(|(at, _)| {
            let before = text[..at].trim_end();
            let keyword = ["importstr", "importbin", "import"]
                .iter()
                .find(|k| before.ends_with(*k))?;
            let start = before.len() - keyword.len();
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line = 1 + text[..start].matches('\n').count();
            Some((line, 1 + text[line_start..start].chars().count()))
        })
    })
}

impl ImportResolver for SnapshotImports {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &dyn AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let wanted = match path.as_path() {
            ResolvePath::Str(s) => s.to_string(),
            ResolvePath::Path(p) => p.to_string_lossy().into_owned(),
        };
        let from_file = from.path().and_then(Path::to_str).unwrap_or("");
        if wanted.starts_with('/') {
            return Err(self.refuse(from_file, &wanted, format!(
                "import \"{wanted}\" is an absolute path; imports are read from the repository, \
                 relative to the importing file or a library directory"
            )));
        }
        let dir = from
            .path()
            .and_then(Path::parent)
            .and_then(Path::to_str)
            .unwrap_or("")
            .to_string();
        for base in std::iter::once(&dir).chain(&self.libs) {
            let joined = if base.is_empty() {
                wanted.clone()
            } else {
                format!("{base}/{wanted}")
            };
            let Some(resolved) = normalize(&joined) else {
                let message = format!(
                    "import \"{wanted}\" from {} leads outside the repository",
                    if base.is_empty() {
                        "the top"
                    } else {
                        base.as_str()
                    }
                );
                return Err(self.refuse(from_file, &wanted, message));
            };
            if self.files.contains_key(&resolved) {
                return Ok(source_path(&resolved));
            }
        }
        let searched = std::iter::once(if dir.is_empty() { "." } else { dir.as_str() })
            .chain(self.libs.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ");
        let message =
            format!("import \"{wanted}\" not found in the repository (searched {searched})");
        Err(self.refuse(from_file, &wanted, message))
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        let path = resolved.path().and_then(Path::to_str).unwrap_or("");
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| runtime(format!("{path} is not in the repository")))
    }
}

fn runtime(message: String) -> Error {
    ErrorKind::RuntimeError(message.into()).into()
}

/// `a/./b/../c` as `a/c`; `None` when `..` climbs above the top.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::render::tests::snapshot;
    use crate::render::{RenderOptions, Renderer, detect};

    fn render_with(
        files: &[(&str, &str)],
        jsonnet: JsonnetOptions,
    ) -> Result<Vec<Manifest>, RenderError> {
        let snap = snapshot("apps/web", files);
        assert_eq!(detect(&snap), Renderer::Jsonnet);
        crate::render::render(
            &snap,
            &RenderOptions {
                jsonnet,
                ..RenderOptions::default()
            },
        )
    }

    fn names(manifests: &[Manifest]) -> Vec<String> {
        manifests
            .iter()
            .map(|m| {
                format!(
                    "{} {} @{}",
                    m.object["kind"].as_str().unwrap(),
                    m.object["metadata"]["name"].as_str().unwrap(),
                    m.origin
                )
            })
            .collect()
    }

    const CM: &str =
        "function(name) { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name } }";

    #[test]
    fn an_object_an_array_and_a_list_render_beside_yaml() {
        let files = [
            ("apps/web/cm.libsonnet", CM),
            ("apps/web/a.jsonnet", "(import 'cm.libsonnet')('one')"),
            (
                "apps/web/b.jsonnet",
                "local cm = import 'cm.libsonnet'; [cm('two'), cm('three')]",
            ),
            (
                "apps/web/sub/c.jsonnet",
                "{ apiVersion: 'v1', kind: 'List', items: [(import '../cm.libsonnet')('four')] }",
            ),
            (
                "apps/web/plain.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: five\n",
            ),
            ("apps/web/.hidden/x.jsonnet", "error 'not read'"),
        ];
        let got = render_with(&files, JsonnetOptions::default()).unwrap();
        assert_eq!(
            names(&got),
            [
                "ConfigMap five @apps/web/plain.yaml:1",
                "ConfigMap one @apps/web/a.jsonnet:1",
                "ConfigMap two @apps/web/b.jsonnet:1",
                "ConfigMap three @apps/web/b.jsonnet:1",
                "ConfigMap four @apps/web/sub/c.jsonnet:1",
            ]
        );
    }

    #[test]
    fn a_library_directory_a_tla_and_an_ext_var() {
        let files = [
            ("lib/k8s.libsonnet", CM),
            ("lib/suffix.txt", "-x"),
            (
                "apps/web/main.jsonnet",
                "local cm = import 'k8s.libsonnet';\n\
                 function(env) cm(env + '-' + std.extVar('team') + importstr 'suffix.txt')",
            ),
        ];
        let options = JsonnetOptions {
            tlas: [("env".to_string(), "prod".to_string())].into(),
            ext_vars: [("team".to_string(), "blue".to_string())].into(),
            libs: vec!["lib".to_string()],
        };
        let got = render_with(&files, options.clone()).unwrap();
        assert_eq!(
            names(&got),
            ["ConfigMap prod-blue-x @apps/web/main.jsonnet:1"]
        );
        // Without the library directory the import is not found, and the error says where
        // it looked.
        let options = JsonnetOptions {
            libs: Vec::new(),
            ..options
        };
        let err = render_with(&files, options.clone()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("apps/web/main.jsonnet:1:12: import \"k8s.libsonnet\" not found"),
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let files = [("apps/web/main.jsonnet", "{\n  a: 1,\n  b: ,\n}\n")];
        let err = render_with(&files, JsonnetOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("apps/web/main.jsonnet:3:6: syntax error"),
            "{err}"
        );
        let runtime = [(
            "apps/web/main.jsonnet",
            "{\n  a: error 'no %s' % 'way',\n}\n",
        )];
        let err = render_with(&runtime, JsonnetOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("apps/web/main.jsonnet:2:6: no way"),
            "{err}"
        );
    }

    #[test]
    fn an_import_escaping_the_repository_is_refused() {
        for import in ["../../../etc/passwd", "/etc/passwd"] {
            let files = [(
                "apps/web/main.jsonnet",
                format!("importstr '{import}'").leak() as &str,
            )];
            let err = render_with(&files, JsonnetOptions::default()).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("apps/web/main.jsonnet:1:1: import"),
                "{text}"
            );
            assert!(
                text.contains("outside the repository") || text.contains("absolute path"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_value_that_is_not_objects_is_an_error() {
        let files = [("apps/web/main.jsonnet", "[1]")];
        let err = render_with(&files, JsonnetOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("item 0 of the output array is not an object"),
            "{err}"
        );
    }
}
