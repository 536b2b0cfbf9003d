//! Helm charts through the real `helm template`.
//!
//! The chart's directory and the values files are written from the snapshot (so from the
//! same revision) to a temporary directory, and helm runs there with an empty, private
//! environment: the user's repositories, cache, plugins, registry logins and kubeconfig
//! cannot change what it prints, and helm itself never reaches the network. Dependencies
//! that are not vendored under `charts/` are resolved first by [`crate::charts`], as
//! `helm dependency build` would (Chart.lock, version ranges, chart repositories, OCI
//! registries, the cache, the user's Helm credentials), and written into the temporary
//! chart's `charts/`; `file://` dependencies are read from the same snapshot. Hooks are
//! rendered with the rest: the desired set tells them from the app's objects by their
//! `helm.sh/hook` annotation, and a sync runs them at the points Helm runs them
//! (`helm test` hooks are listed and never run).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;

use super::{Manifest, RenderError, join, parse_documents, yaml_value};
use crate::charts::ChartSources;
use crate::charts::dependencies::{self, ChartFiles, DependencyError, Resolved};
use crate::error_text::one_line;
use crate::source::Snapshot;

/// The file that makes a directory a chart.
pub(super) const CHART_FILE: &str = "Chart.yaml";

/// What `helm template` is run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmOptions {
    /// The helm binary (`$HELM`, else `helm` on PATH).
    pub binary: PathBuf,
    /// `.Release.Name`: the app's name. Empty means the chart's name.
    pub release_name: String,
    /// `.Release.Namespace`: the app's namespace.
    pub namespace: String,
    /// `--values` files, repo-relative, read from the same revision as the chart.
    pub values_files: Vec<String>,
    /// `--set KEY=VALUE` strings, as helm takes them.
    pub set: Vec<String>,
    /// A chart from a chart repository or an OCI registry, rendered instead of the path
    /// (whose revision still gives the values files).
    pub remote: Option<super::RemoteChart>,
    /// `.Capabilities.KubeVersion` (`--kube-version`); `None` leaves helm's default.
    pub kube_version: Option<String>,
    /// Added to `.Capabilities.APIVersions` (`--api-versions`).
    pub api_versions: Vec<String>,
}

impl Default for HelmOptions {
    fn default() -> Self {
        HelmOptions {
            binary: PathBuf::from("helm"),
            release_name: String::new(),
            namespace: "default".into(),
            values_files: Vec::new(),
            set: Vec::new(),
            remote: None,
            kube_version: None,
            api_versions: Vec::new(),
        }
    }
}

impl HelmOptions {
    /// Whether values were given, which only a chart can take.
    pub fn has_values(&self) -> bool {
        !self.values_files.is_empty() || !self.set.is_empty()
    }
}

/// The chart a release was rendered from and the values it was given, as release records
/// keep them. `values` can hold credentials: show it only when asked.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChartInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// The `--values` files, repo-relative, in the order given.
    #[serde(default)]
    pub values_files: Vec<String>,
    /// The `--set` strings, in the order given.
    #[serde(default)]
    pub set: Vec<String>,
    /// The user-supplied values merged as helm merges them (files in order, then
    /// `--set`), without the chart's defaults: what Helm records as a release's `config`.
    #[serde(default)]
    pub values: Value,
    /// Where the chart came from when it is not in git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::ChartSource>,
}

impl ChartInfo {
    /// The keys `--set` assigned (`image.tag` of `image.tag=v2`): safe to show, unlike
    /// the values.
    pub fn set_keys(&self) -> Vec<String> {
        self.set
            .iter()
            .flat_map(|s| split_assignments(s))
            .map(|assignment| {
                let key = assignment.split_once('=').map_or(assignment, |(k, _)| k);
                key.to_string()
            })
            .collect()
    }
}

/// helm's `--set a=1,b=2` holds two assignments; `\,` is a literal comma.
fn split_assignments(set: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (index, c) in set.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                parts.push(&set[start..index]);
                start = index + 1;
            }
            _ => escaped = false,
        }
    }
    parts.push(&set[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

/// Whether `root` is a chart: it holds a `Chart.yaml`.
pub(super) fn is_chart(snapshot: &Snapshot, root: &str) -> bool {
    snapshot.files.contains_key(&join(root, CHART_FILE))
}

/// Runs `helm template` on the chart at `root` and parses what it prints. Each object's
/// origin is the repository file of the template that made it (helm's `# Source:`).
pub(super) fn render(
    snapshot: &Snapshot,
    root: &str,
    opts: &HelmOptions,
) -> Result<Vec<Manifest>, RenderError> {
    let chart = chart_metadata(snapshot, root)?;
    let mut subtree = chart_subtree(snapshot, root);
    let fetched = add_dependencies(snapshot, root, &mut subtree)?;
    let work = Workspace::new(snapshot, opts, &subtree, &chart.name)?;
    let release = if opts.release_name.is_empty() {
        chart.name.as_str()
    } else {
        opts.release_name.as_str()
    };
    let chart_dir = work.chart_dir.to_string_lossy();
    let mut args = vec![
        "template",
        release,
        &chart_dir,
        "--namespace",
        &opts.namespace,
        "--include-crds",
    ];
    // The destination's `.Capabilities` (see `capabilities.rs`).
    if let Some(version) = &opts.kube_version {
        args.extend(["--kube-version", version]);
    }
    for api_version in &opts.api_versions {
        args.extend(["--api-versions", api_version]);
    }
    let output = work
        .helm(opts, root, &args)
        .map_err(|e| blame_fetched_dependency(e, root, &fetched))?;
    split_by_source(snapshot, root, &output)
}

/// A dependency fetched for this render: its name (and alias), and where it came from.
struct Fetched {
    names: Vec<String>,
    label: String,
    url: String,
    version: String,
}

/// Writes the chart's dependencies that are not vendored under `charts/` into
/// `subtree` (the chart alone): archives fetched from their repositories, `file://`
/// charts from `snapshot`.
fn add_dependencies(
    snapshot: &Snapshot,
    root: &str,
    subtree: &mut Snapshot,
) -> Result<Vec<Fetched>, RenderError> {
    let chart_path = join(root, CHART_FILE);
    let lock_path = join(root, "Chart.lock");
    let Some(chart_yaml) = subtree.files.get(CHART_FILE) else {
        return Ok(Vec::new());
    };
    let listed = dependencies::listed(&chart_path, chart_yaml)?;
    let files = ChartFiles {
        chart_path: &chart_path,
        chart_yaml,
        lock: subtree
            .files
            .get("Chart.lock")
            .map(|bytes| (lock_path.as_str(), bytes.as_slice())),
    };
    let vendored = |name: &str| is_vendored(subtree, name);
    let resolved = dependencies::resolve(&files, &vendored, &ChartSources::from_env)?;
    let mut added: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut fetched = Vec::new();
    for dependency in resolved {
        match dependency {
            Resolved::Archive { dependency, chart } => {
                let names = listed
                    .iter()
                    .filter(|d| d.name == chart.name)
                    .flat_map(|d| [d.name.clone(), d.alias.clone()])
                    .filter(|n| !n.is_empty())
                    .collect();
                fetched.push(Fetched {
                    names,
                    label: dependency,
                    url: chart.url.clone(),
                    version: chart.version.clone(),
                });
                added.insert(format!("charts/{}", chart.file_name()), chart.archive);
            }
            Resolved::Local { name, path } => {
                let outside = || DependencyError::FileOutside {
                    chart: chart_path.clone(),
                    dependency: name.clone(),
                    repository: format!("file://{path}"),
                };
                let dir = normalise_repo_path(&join(root, &path)).ok_or_else(outside)?;
                if !snapshot.files.contains_key(&join(&dir, CHART_FILE)) {
                    return Err(DependencyError::FileNotFound {
                        chart: chart_path.clone(),
                        dependency: name,
                        repository: format!("file://{path}"),
                        path: dir,
                    }
                    .into());
                }
                for (file, data) in chart_subtree(snapshot, &dir).files.iter() {
                    added.insert(format!("charts/{name}/{file}"), data.clone());
                }
            }
        }
    }
    Arc::make_mut(&mut subtree.files).extend(added);
    Ok(fetched)
}

/// Whether the chart's `charts/` holds the dependency `name`: as a directory, or as an
/// archive `name-<version>.tgz`.
fn is_vendored(chart: &Snapshot, name: &str) -> bool {
    if chart
        .files
        .contains_key(&format!("charts/{name}/{CHART_FILE}"))
    {
        return true;
    }
    let prefix = format!("charts/{name}-");
    chart.files.keys().any(|path| {
        path.strip_prefix(&prefix).is_some_and(|rest| {
            !rest.contains('/')
                && rest.ends_with(".tgz")
                && rest.starts_with(|c: char| c.is_ascii_digit() || c == 'v')
        })
    })
}

/// helm's failure, pinned on the fetched dependency whose templates it names.
fn blame_fetched_dependency(error: RenderError, root: &str, fetched: &[Fetched]) -> RenderError {
    let RenderError::Helm { message, .. } = &error else {
        return error;
    };
    let culprit = fetched.iter().find(|f| {
        f.names.iter().any(|name| {
            message.contains(&format!("charts/{name}/"))
                || message.contains(&format!("charts/{name}:"))
        })
    });
    match culprit {
        Some(f) => RenderError::FetchedDependencyFailed {
            chart: join(root, CHART_FILE),
            dependency: f.label.clone(),
            version: f.version.clone(),
            url: f.url.clone(),
            message: message.clone(),
        },
        None => error,
    }
}

/// The chart's name and versions from its `Chart.yaml`, and the merged user-supplied
/// values (helm computes them, so `--set` means exactly what it means to helm).
pub(super) fn chart_info(
    snapshot: &Snapshot,
    root: &str,
    opts: &HelmOptions,
) -> Result<ChartInfo, RenderError> {
    let chart = chart_metadata(snapshot, root)?;
    let values = if opts.has_values() {
        merged_values(snapshot, root, opts)?
    } else {
        Value::Object(Default::default())
    };
    Ok(ChartInfo {
        name: chart.name,
        version: chart.version,
        app_version: chart.app_version,
        values_files: opts.values_files.clone(),
        set: opts.set.clone(),
        values,
        source: None,
    })
}

struct ChartMetadata {
    name: String,
    version: String,
    app_version: Option<String>,
}

fn chart_metadata(snapshot: &Snapshot, root: &str) -> Result<ChartMetadata, RenderError> {
    let file = join(root, CHART_FILE);
    let bytes = snapshot.files.get(&file).map_or(&[][..], Vec::as_slice);
    let text = std::str::from_utf8(bytes).map_err(|_| RenderError::NotUtf8 {
        file: file.clone(),
        line: 1,
    })?;
    let invalid = |message: &str| RenderError::InvalidObject {
        file: file.clone(),
        line: 1,
        message: message.to_string(),
    };
    let value = yaml_value(text).ok_or_else(|| invalid("not a valid Chart.yaml (one YAML map)"))?;
    let text_of = |key: &str| match value.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        // `appVersion: 1.16` is a number to YAML; helm reads it as the text.
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let name = text_of("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("the chart has no name"))?;
    Ok(ChartMetadata {
        name,
        version: text_of("version").unwrap_or_default(),
        app_version: text_of("appVersion").filter(|v| !v.is_empty()),
    })
}

/// Helm's merge of the user's values, read back through a chart that has no defaults
/// and prints `.Values`.
fn merged_values(
    snapshot: &Snapshot,
    root: &str,
    opts: &HelmOptions,
) -> Result<Value, RenderError> {
    const TEMPLATE: &str = "values.json";
    let empty = Snapshot {
        files: Arc::new(BTreeMap::from([
            (
                CHART_FILE.to_string(),
                b"apiVersion: v2\nname: values\nversion: 0.0.0\n".to_vec(),
            ),
            (
                format!("templates/{TEMPLATE}"),
                b"{{ toJson .Values }}\n".to_vec(),
            ),
        ])),
        root: String::new(),
        commit: None,
    };
    let work = Workspace::new(snapshot, opts, &empty, "")?;
    let output = work.helm(
        opts,
        root,
        &[
            "template",
            "values",
            &work.chart_dir.to_string_lossy(),
            "--show-only",
            &format!("templates/{TEMPLATE}"),
        ],
    )?;
    let json = output
        .lines()
        .filter(|l| !l.starts_with("---") && !l.starts_with("# Source:"))
        .collect::<String>();
    serde_json::from_str(&json).map_err(|e| RenderError::Helm {
        root: display_root(root).to_string(),
        message: format!("cannot read the merged values back: {e}"),
    })
}

/// A temporary directory holding the chart and the values files, and helm's private homes.
struct Workspace {
    tmp: tempfile::TempDir,
    chart_dir: PathBuf,
    /// (temporary path, repo path) of each values file, in order.
    values: Vec<(PathBuf, String)>,
    /// The chart's name, which helm's messages use for its directory.
    chart_name: String,
}

/// The chart at `root` alone, as a tree of its own: templates can read only its files
/// (`.Files`), so nothing else of the repository is written out.
fn chart_subtree(snapshot: &Snapshot, root: &str) -> Snapshot {
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    Snapshot {
        files: snapshot
            .files
            .iter()
            .filter_map(|(path, data)| {
                let relative = path.strip_prefix(&prefix)?;
                Some((relative.to_string(), data.clone()))
            })
            .collect::<BTreeMap<_, _>>()
            .into(),
        root: String::new(),
        commit: None,
    }
}

impl Workspace {
    /// Writes `chart` and the values files `opts` names (read from `snapshot`).
    fn new(
        snapshot: &Snapshot,
        opts: &HelmOptions,
        chart: &Snapshot,
        chart_name: &str,
    ) -> Result<Workspace, RenderError> {
        let values = opts
            .values_files
            .iter()
            .map(|file| read_values_file(snapshot, file))
            .collect::<Result<Vec<_>, _>>()?;
        let tmp = tempfile::Builder::new()
            .prefix("kubectl-gitops-")
            .tempdir()
            .map_err(|source| RenderError::TempDir { source })?;
        let chart_dir = tmp.path().join("chart");
        chart
            .materialize(&chart_dir)
            .map_err(|source| RenderError::Materialize { source })?;
        let values_dir = tmp.path().join("values");
        let mut written = Vec::new();
        for (index, (path, data)) in values.into_iter().enumerate() {
            let target = values_dir.join(format!("{index}.yaml"));
            let write =
                std::fs::create_dir_all(&values_dir).and_then(|()| std::fs::write(&target, data));
            write.map_err(|e| RenderError::Materialize {
                source: crate::source::SourceError::Write {
                    path: target.clone(),
                    message: e.to_string(),
                },
            })?;
            written.push((target, path));
        }
        for dir in ["home", "home/plugins"] {
            std::fs::create_dir_all(tmp.path().join(dir))
                .map_err(|source| RenderError::TempDir { source })?;
        }
        Ok(Workspace {
            tmp,
            chart_dir,
            values: written,
            chart_name: chart_name.to_string(),
        })
    }

    /// Runs helm with `args`, then the values files and `--set`s, in an environment of
    /// its own; returns what it printed.
    fn helm(&self, opts: &HelmOptions, root: &str, args: &[&str]) -> Result<String, RenderError> {
        let home = self.tmp.path().join("home");
        let mut command = Command::new(&opts.binary);
        command.args(args);
        for (path, _) in &self.values {
            command.arg("--values").arg(path);
        }
        for set in &opts.set {
            command.arg("--set").arg(set);
        }
        command
            .env_clear()
            .env("HOME", &home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_PLUGINS", home.join("plugins"))
            .env("HELM_NO_PLUGINS", "1")
            .env("HELM_REGISTRY_CONFIG", home.join("registry.json"))
            .env("HELM_REPOSITORY_CONFIG", home.join("repositories.yaml"))
            .env("HELM_REPOSITORY_CACHE", home.join("repository"))
            // A kubeconfig that does not exist: `helm template` needs no cluster, and
            // the user's exec credential plugins must not run.
            .env("KUBECONFIG", home.join("kubeconfig"))
            .env("NO_COLOR", "1")
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        // PATH only so a helm that is a wrapper script still finds its interpreter.
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        let output = command.output().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => RenderError::HelmNotFound {
                helm: opts.binary.clone(),
            },
            _ => RenderError::HelmStart {
                helm: opts.binary.clone(),
                source,
            },
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = self.clean_message(&stderr, root);
            if let Some(missing) = missing_dependencies(&message) {
                return Err(RenderError::HelmDependencyNotVendored {
                    chart: join(root, CHART_FILE),
                    dependencies: missing,
                    charts_dir: join(root, "charts"),
                });
            }
            return Err(RenderError::Helm {
                root: display_root(root).to_string(),
                message: if message.is_empty() {
                    format!("helm exited with {}", output.status)
                } else {
                    message
                },
            });
        }
        String::from_utf8(output.stdout).map_err(|_| RenderError::Helm {
            root: display_root(root).to_string(),
            message: "helm printed output that is not UTF-8".to_string(),
        })
    }

    /// helm's error on one line, naming repository paths instead of temporary ones.
    fn clean_message(&self, stderr: &str, root: &str) -> String {
        let mut text = stderr
            .lines()
            .map(str::trim)
            // Advice for helm's own flags, which are not ours to give.
            .filter(|l| !l.is_empty() && !l.starts_with("Use --debug"))
            .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("; ");
        let mut replacements: Vec<(String, String)> = Vec::new();
        for (path, repo_path) in &self.values {
            replacements.push((path.to_string_lossy().into_owned(), repo_path.clone()));
        }
        replacements.push((
            self.chart_dir.to_string_lossy().into_owned(),
            display_root(root).to_string(),
        ));
        replacements.push((self.tmp.path().to_string_lossy().into_owned(), ".".into()));
        // Templates are named `CHART/templates/x.yaml`: name the repository's file.
        if !self.chart_name.is_empty() {
            for dir in ["templates/", "charts/", "crds/"] {
                replacements.push((format!("{}/{dir}", self.chart_name), join(root, dir)));
            }
        }
        for (from, to) in replacements {
            text = text.replace(&from, &to);
            if let Ok(canonical) = Path::new(&from).canonicalize() {
                text = text.replace(canonical.to_string_lossy().as_ref(), &to);
            }
        }
        one_line(&text)
    }
}

/// The dependencies helm says are listed but not under `charts/`.
fn missing_dependencies(message: &str) -> Option<Vec<String>> {
    const MARK: &str = "missing in charts/ directory: ";
    let start = message.find(MARK)? + MARK.len();
    let list = message[start..].split(';').next().unwrap_or_default();
    let names: Vec<String> = list
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    (!names.is_empty()).then_some(names)
}

fn display_root(root: &str) -> &str {
    if root.is_empty() { "." } else { root }
}

/// The values file `file` (repo-relative) from the snapshot, with its normalised path.
fn read_values_file(snapshot: &Snapshot, file: &str) -> Result<(String, Vec<u8>), RenderError> {
    let path = normalise_repo_path(file).ok_or_else(|| RenderError::ValuesFileOutside {
        file: one_line(file),
    })?;
    match snapshot.files.get(&path) {
        Some(data) => Ok((path, data.clone())),
        None => Err(RenderError::ValuesFileNotFound {
            file: one_line(file),
            at: match &snapshot.commit {
                Some(commit) => format!("at commit {}", commit.short_id),
                None => "in the working tree".to_string(),
            },
        }),
    }
}

/// `./a/../b/c.yaml` as `b/c.yaml`; `None` if it is absolute or climbs out of the repository.
fn normalise_repo_path(file: &str) -> Option<String> {
    if file.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in file.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Splits helm's output at its `# Source: CHART/PATH` comments and parses each part with
/// the repository file it came from as its origin.
fn split_by_source(
    snapshot: &Snapshot,
    root: &str,
    output: &str,
) -> Result<Vec<Manifest>, RenderError> {
    let mut parts: Vec<(String, String)> = Vec::new();
    let mut at_document_start = true;
    for line in output.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(source) = trimmed
            .strip_prefix("# Source: ")
            .filter(|_| at_document_start)
        {
            parts.push((repo_file(snapshot, root, source), String::new()));
            at_document_start = false;
            continue;
        }
        if trimmed.starts_with("---") {
            at_document_start = true;
        } else if !trimmed.is_empty() {
            at_document_start = false;
        }
        match parts.last_mut() {
            Some((_, text)) => text.push_str(line),
            None => parts.push((join(root, CHART_FILE), line.to_string())),
        }
    }
    let mut manifests = Vec::new();
    let mut documents: BTreeMap<String, usize> = BTreeMap::new();
    for (file, text) in parts {
        for mut manifest in parse_documents(&file, &text)? {
            let next = documents.entry(file.clone()).or_default();
            manifest.origin.document = *next;
            manifest.origin.line = 1;
            *next += 1;
            manifests.push(manifest);
        }
    }
    Ok(manifests)
}

/// The repository file behind helm's `CHART/templates/x.yaml`: the template itself, or,
/// for a subchart vendored as an archive, the archive; else the chart's `Chart.yaml`.
fn repo_file(snapshot: &Snapshot, root: &str, source: &str) -> String {
    let fallback = || join(root, CHART_FILE);
    let Some((_, inside)) = source.split_once('/') else {
        return fallback();
    };
    let path = join(root, inside);
    if snapshot.files.contains_key(&path) {
        return path;
    }
    // `charts/sub/templates/x.yaml` of `charts/sub-1.0.0.tgz`.
    let mut rest = inside;
    let mut dir = root.to_string();
    while let Some(sub) = rest.strip_prefix("charts/") {
        let Some((name, after)) = sub.split_once('/') else {
            break;
        };
        let charts = join(&dir, "charts");
        let archive = snapshot.files.keys().find(|p| {
            p.strip_prefix(&format!("{charts}/")).is_some_and(|f| {
                !f.contains('/')
                    && f.ends_with(".tgz")
                    && (f == format!("{name}.tgz") || f.starts_with(&format!("{name}-")))
            })
        });
        if let Some(archive) = archive {
            return archive.clone();
        }
        dir = join(&charts, name);
        rest = after;
    }
    fallback()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
