//! Turning a source tree into Kubernetes objects: plain YAML/JSON, Jsonnet, kustomize and
//! Helm.
//!
//! Every object keeps its [`Origin`] so that errors, diffs and duplicates can point at the
//! file and line a person would open. Which renderer runs is decided by what the requested
//! path holds ([`detect`]); adding one means a variant, a `detect` rule and a module.

mod capabilities;
mod helm;
mod jsonnet;
mod kustomize;
mod locate;
mod remote;
mod sops;
mod tools;
pub(crate) mod value;
mod yaml;

use std::fmt;
use std::path::PathBuf;

use crate::source::{Snapshot, SourceError};

pub use capabilities::{Capabilities, ServedVersion, check_kube_version, helm_api_versions};
pub use helm::{ChartInfo, HelmOptions};
pub use jsonnet::JsonnetOptions;
pub use remote::{ChartSource, RemoteChart};
pub use sops::{KeyFileError, SopsError};
pub use tools::{helm_binary, kubectl_binary, render_options};
pub(crate) use value::yaml11_reads_as_non_string;
pub use yaml::parse_documents;

/// The largest file (or kustomize output) we parse. Manifests are rarely above a few
/// hundred KiB; the cap keeps a hostile repository from exhausting memory.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// File names that make a directory a kustomization, in kustomize's own lookup order.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// Repo-relative path, `/`-separated. For kustomize output, the kustomization file.
    pub file: String,
    /// 0-based index of the document among the file's non-empty documents (for kustomize
    /// output: among the documents it printed).
    pub document: usize,
    /// 1-based line of the document's first line of content (comments and the `---`
    /// separator excluded). 1 for kustomize output, which has no line in the repository.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

impl Origin {
    /// Where in `text`, the file this origin names, the field a server's refusal
    /// `message` names is: `object`'s document, at the field's line when the message
    /// names a field the document has (see [`locate`]). Read again only when refused, so
    /// no line of a field is kept while parsing.
    pub fn of_refusal(&self, text: &str, object: &serde_json::Value, message: &str) -> Origin {
        let line = locate::refused_field(message)
            .and_then(|steps| locate::field_line(&self.file, text, self.document, object, &steps));
        Origin {
            line: line.unwrap_or(self.line),
            ..self.clone()
        }
    }
}

/// One Kubernetes object as rendered, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub object: serde_json::Value,
    pub origin: Origin,
}

/// How a path is turned into manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Renderer {
    /// Every `.yaml`, `.yml` and `.json` file under the path.
    Plain,
    /// `kubectl kustomize` on the path.
    Kustomize,
    /// `helm template` on the chart at the path.
    Helm,
    /// Every `.jsonnet` file under the path evaluated, beside its plain YAML/JSON files.
    Jsonnet,
}

impl fmt::Display for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Renderer::Plain => "plain",
            Renderer::Kustomize => "kustomize",
            Renderer::Helm => "helm",
            Renderer::Jsonnet => "jsonnet",
        })
    }
}

/// Settings the renderers need from the outside world.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The binary run as `<kubectl> kustomize <dir>`.
    pub kubectl: PathBuf,
    /// How a chart is templated: release name, namespace, values.
    pub helm: HelmOptions,
    /// What Jsonnet programs are given: top-level arguments, external variables, library
    /// directories.
    pub jsonnet: JsonnetOptions,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            kubectl: PathBuf::from("kubectl"),
            helm: HelmOptions::default(),
            jsonnet: JsonnetOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("`{root}` does not exist in the source")]
    RootNotFound { root: String },

    #[error("{file}: the file is {size} bytes, more than the {limit}-byte limit for one file")]
    TooLarge {
        file: String,
        size: usize,
        limit: usize,
    },

    #[error("{file}:{line}: the file is not valid UTF-8 text")]
    NotUtf8 { file: String, line: usize },

    /// Malformed YAML or JSON, or a document that expands past the limits.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// A document that claims to be a Kubernetes object (apiVersion and kind) but is not
    /// a usable one.
    #[error("{file}:{line}: {message}")]
    InvalidObject {
        file: String,
        line: usize,
        message: String,
    },

    /// A Jsonnet program that does not parse, fails, or gives no objects: `at` is
    /// `file:line:column` where the place is known, else the program's file.
    #[error("{at}: {message}")]
    Jsonnet { at: String, message: String },
    /// A sops-encrypted file that cannot be decrypted, or should not be applied.
    #[error("{file}: sops: {source}")]
    Sops { file: String, source: SopsError },

    /// A value still in sops's `ENC[...]` form after rendering.
    #[error(
        "{file}: the {kind} `{name}` holds a sops-encrypted value at `{path}` that was not \
         decrypted (sops files are decrypted in a plain path of YAML/JSON files, not yet \
         through kustomize or Helm); an encrypted value is never applied as data"
    )]
    StillEncrypted {
        file: String,
        kind: String,
        name: String,
        path: String,
    },

    #[error("could not create a temporary directory for kustomize")]
    TempDir { source: std::io::Error },

    #[error("could not write the source tree to a temporary directory for kustomize")]
    Materialize { source: SourceError },

    #[error(
        "`{}` was not found; rendering a kustomization runs `kubectl kustomize`, so install \
         kubectl (https://kubernetes.io/docs/tasks/tools/) or give the path to it",
        kubectl.display()
    )]
    KubectlNotFound { kubectl: PathBuf },

    #[error("could not run `{} kustomize`", kubectl.display())]
    KubectlStart {
        kubectl: PathBuf,
        source: std::io::Error,
    },

    #[error("kustomize failed for `{root}`: {message}")]
    Kustomize { root: String, message: String },

    #[error(
        "`{}` was not found; rendering a Helm chart runs `helm template`, so install Helm \
         (https://helm.sh/docs/intro/install/) or set $HELM to its path",
        helm.display()
    )]
    HelmNotFound { helm: PathBuf },

    #[error("could not run `{} template`", helm.display())]
    HelmStart {
        helm: PathBuf,
        source: std::io::Error,
    },

    #[error("helm template failed for `{root}`: {message}")]
    Helm { root: String, message: String },

    #[error(
        "{chart} lists the {} {}, not vendored under {charts_dir}/ and with no repository to \
         fetch it from: vendor it under {charts_dir}/ (`helm dependency build`), or give its \
         `repository:` in Chart.yaml",
        if dependencies.len() == 1 { "dependency" } else { "dependencies" },
        dependencies.join(", ")
    )]
    HelmDependencyNotVendored {
        chart: String,
        dependencies: Vec<String>,
        charts_dir: String,
    },

    /// A chart that is not in git could not be fetched.
    #[error("{of} `{name}` {version}: {source}")]
    ChartSource {
        /// Whose chart: the app's (`chart:` or `--chart`), or a kustomization's.
        of: String,
        name: String,
        version: String,
        source: Box<crate::charts::ChartSourceError>,
    },

    #[error("the chart archive of {chart} cannot be read: {message}")]
    ChartArchive { chart: String, message: String },

    /// A dependency that could not be resolved or fetched (nothing is rendered).
    #[error(transparent)]
    ChartDependency(#[from] crate::charts::dependencies::DependencyError),

    #[error(
        "{chart}: the dependency `{dependency}` {version} fetched from {url} fails to template: \
         {message}; pin another version in Chart.yaml and run `helm dependency update`, or \
         vendor a fixed copy under charts/"
    )]
    FetchedDependencyFailed {
        chart: String,
        dependency: String,
        version: String,
        url: String,
        message: String,
    },

    #[error(
        "values file `{file}` does not exist {at} (--values paths are relative to the top of \
         the repository)"
    )]
    ValuesFileNotFound { file: String, at: String },

    #[error("values file `{file}` is outside the repository: give a path relative to its top")]
    ValuesFileOutside { file: String },

    #[error(
        "--values and --set are for Helm charts, but `{root}` has no Chart.yaml (it is rendered \
         as {renderer})"
    )]
    ValuesWithoutChart { root: String, renderer: Renderer },

    /// A kustomization whose bases or components would make kustomize read outside the
    /// repository.
    #[error("{file}: `{entry}` in {field} points outside the repository: {reason}")]
    KustomizeOutside {
        file: String,
        field: String,
        entry: String,
        reason: String,
    },
}

/// The value of a single-document YAML text as [`parse_documents`] reads it (YAML 1.1, the
/// same limits); `None` if it does not parse or holds another number of documents.
pub(crate) fn yaml_value(text: &str) -> Option<serde_json::Value> {
    let mut documents = yaml::yaml_documents("yaml", text).ok()?;
    match documents.pop() {
        Some((_, value)) if documents.is_empty() => Some(value),
        _ => None,
    }
}

/// Chooses the renderer by what `snapshot.root` holds: a `Chart.yaml` means Helm, a
/// kustomization file (`kustomization.yaml`, `kustomization.yml` or `Kustomization`)
/// kustomize, a `.jsonnet` file (or a directory holding one) Jsonnet, anything else
/// (including a single file) plain YAML/JSON.
pub fn detect(snapshot: &Snapshot) -> Renderer {
    let root = root_of(snapshot);
    if helm::is_chart(snapshot, root) {
        Renderer::Helm
    } else if kustomization_file(snapshot, root).is_some() {
        Renderer::Kustomize
    } else if jsonnet::has_jsonnet(&snapshot.files, root) {
        Renderer::Jsonnet
    } else {
        Renderer::Plain
    }
}

/// Renders `snapshot.root` with the renderer [`detect`] picks.
///
/// Synchronous: kustomize runs as a child process and this waits for it. Call it through
/// `tokio::task::spawn_blocking` from async code that must not stall a worker thread.
pub fn render(snapshot: &Snapshot, opts: &RenderOptions) -> Result<Vec<Manifest>, RenderError> {
    if let Some(chart) = &opts.helm.remote {
        let (tree, _) = remote::attached(snapshot, chart)?;
        let manifests = helm::render(&tree, root_of(&tree), &opts.helm)?;
        refuse_encrypted_values(&manifests)?;
        return Ok(manifests);
    }
    let root = root_of(snapshot);
    let renderer = detect(snapshot);
    if renderer != Renderer::Helm && opts.helm.has_values() {
        return Err(RenderError::ValuesWithoutChart {
            root: if root.is_empty() { "." } else { root }.to_string(),
            renderer,
        });
    }
    let manifests = match renderer {
        Renderer::Plain => yaml::render_plain(&snapshot.files, root),
        Renderer::Kustomize => kustomize::render(snapshot, root, opts),
        Renderer::Helm => helm::render(snapshot, root, &opts.helm),
        Renderer::Jsonnet => jsonnet::render(&snapshot.files, root, &opts.jsonnet),
    }?;
    refuse_encrypted_values(&manifests)?;
    Ok(manifests)
}

/// A digest of the files `snapshot`'s path renders from, when they alone decide its
/// objects: plain YAML or JSON, no chart, no values. None for the other renderers, whose
/// objects depend on more than the path's files (a chart's dependencies and the cluster's
/// version, kustomize's bases elsewhere in the repository or on the network, Jsonnet's
/// library paths), and for SOPS-encrypted files. Two renders of paths with one digest give
/// the same objects.
pub fn source_digest(snapshot: &Snapshot, opts: &RenderOptions) -> Option<String> {
    if opts.helm.remote.is_some() || opts.helm.has_values() || detect(snapshot) != Renderer::Plain {
        return None;
    }
    yaml::plain_digest(&snapshot.files, root_of(snapshot))
}

/// An `ENC[...]` value left in an object (a sops file rendered through kustomize, or
/// stripped of its `sops` block) would be applied as the literal text: refuse it.
fn refuse_encrypted_values(manifests: &[Manifest]) -> Result<(), RenderError> {
    for manifest in manifests {
        if let Some(path) = sops::leftover_encrypted(&manifest.object) {
            let field = |pointer: &str| {
                manifest
                    .object
                    .pointer(pointer)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            return Err(RenderError::StillEncrypted {
                file: manifest.origin.file.clone(),
                kind: field("/kind"),
                name: field("/metadata/name"),
                path,
            });
        }
    }
    Ok(())
}

/// The chart at `snapshot.root` and the values it is given, for the release record;
/// `None` when the path is not a chart. Runs helm when values are given, to merge them
/// as helm does.
pub fn chart_info(
    snapshot: &Snapshot,
    opts: &RenderOptions,
) -> Result<Option<ChartInfo>, RenderError> {
    if let Some(chart) = &opts.helm.remote {
        let (tree, source) = remote::attached(snapshot, chart)?;
        let mut info = helm::chart_info(&tree, root_of(&tree), &opts.helm)?;
        info.source = Some(source);
        return Ok(Some(info));
    }
    let root = root_of(snapshot);
    if !helm::is_chart(snapshot, root) {
        return Ok(None);
    }
    helm::chart_info(snapshot, root, &opts.helm).map(Some)
}

/// The renderer `opts` and the path call for: Helm for a chart from outside git, else
/// what [`detect`] finds.
pub fn renderer_for(snapshot: &Snapshot, opts: &RenderOptions) -> Renderer {
    match opts.helm.remote {
        Some(_) => Renderer::Helm,
        None => detect(snapshot),
    }
}

/// The requested path without `./` or surrounding slashes; `""` is the whole repository.
fn root_of(snapshot: &Snapshot) -> &str {
    clean_root(&snapshot.root)
}

fn clean_root(root: &str) -> &str {
    let root = root.trim_start_matches("./").trim_matches('/');
    if root == "." { "" } else { root }
}

/// Whether path `root` of `snapshot`'s tree (whatever its own root) is a Helm chart, as
/// [`detect`] would find: such a path renders with its destination's `.Capabilities`.
pub fn is_chart_at(snapshot: &Snapshot, root: &str) -> bool {
    helm::is_chart(snapshot, clean_root(root))
}

/// The repo-relative path of the kustomization file directly in `root`, if there is one.
fn kustomization_file(snapshot: &Snapshot, root: &str) -> Option<String> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| join(root, name))
        .find(|path| snapshot.files.contains_key(path))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_plain_paths_digest_follows_the_manifests_it_renders_and_nothing_else() {
        let cm = |name: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
        };
        let (a, b) = (cm("a"), cm("b"));
        let digest = |root: &str, files: &[(&str, &str)]| {
            source_digest(&snapshot(root, files), &RenderOptions::default())
        };
        let base = digest("app", &[("app/a.yaml", &a), ("app/b.yaml", &b)]);
        assert!(base.is_some());
        // Files the render does not read leave it as it was.
        let unread = [
            ("app/a.yaml", a.as_str()),
            ("app/b.yaml", b.as_str()),
            ("app/README.md", "notes"),
            ("app/.github/ci.yaml", "on: push"),
            ("other/c.yaml", "kind: ConfigMap"),
        ];
        assert_eq!(digest("app", &unread), base);
        // A manifest's content, its name, one more: another digest.
        let reformatted = a.replace("k: v", "k: \"v\"");
        for changed in [
            vec![("app/a.yaml", reformatted.as_str()), ("app/b.yaml", &b)],
            vec![("app/a.yaml", &a), ("app/c.yaml", &b)],
            vec![("app/a.yaml", &a), ("app/b.yaml", &b), ("app/c.yml", "{}")],
        ] {
            let other = digest("app", &changed);
            assert!(other.is_some() && other != base, "{changed:?}");
        }
        // Objects decided by more than the files, or by keys: none.
        let sops = format!("{a}sops:\n  version: 3.9.0\n");
        assert_eq!(digest("app", &[("app/a.yaml", &sops)]), None);
        let kustomize = [
            ("app/kustomization.yaml", "resources: [a.yaml]"),
            ("app/a.yaml", &a),
        ];
        assert_eq!(digest("app", &kustomize), None);
        let mut with_values = RenderOptions::default();
        with_values.helm.set = vec!["x=1".into()];
        assert_eq!(
            source_digest(&snapshot("app", &[("app/a.yaml", &a)]), &with_values),
            None
        );
        assert_eq!(digest("gone", &[("app/a.yaml", &a)]), None);
    }

    pub(crate) fn snapshot(root: &str, files: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            files: files
                .iter()
                .map(|(path, text)| (path.to_string(), text.as_bytes().to_vec()))
                .collect::<BTreeMap<_, _>>()
                .into(),
            root: root.to_string(),
            commit: None,
        }
    }

    #[test]
    fn detect_kustomize_only_at_the_root() {
        let files = [
            ("apps/web/kustomization.yml", "resources: []\n"),
            ("apps/web/deploy.yaml", ""),
            ("apps/Kustomization", ""),
        ];
        assert_eq!(detect(&snapshot("apps/web", &files)), Renderer::Kustomize);
        assert_eq!(detect(&snapshot("./apps/", &files)), Renderer::Kustomize);
        assert_eq!(detect(&snapshot("", &files)), Renderer::Plain);
        assert_eq!(
            detect(&snapshot("apps/web/deploy.yaml", &files)),
            Renderer::Plain
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        let snap = snapshot("nope", &[("apps/a.yaml", "")]);
        let err = render(&snap, &RenderOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "`nope` does not exist in the source");
    }
}
