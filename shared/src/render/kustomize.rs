//! Kustomize rendering through `kubectl kustomize`.
//!
//! The whole repository is written to a temporary directory, because overlays reach
//! their bases through `../`. kustomize's default load restrictor keeps the *files* a
//! kustomization reads inside its own directory, but not the *directories* it loads as
//! bases and components: `resources: [../../../../home/me/other]` would read whatever
//! kustomization lies outside the temporary directory. So before kustomize runs, every
//! kustomization the root reaches is checked to stay inside the repository.
//!
//! `helmCharts:` (kustomize's `--enable-helm`) render with our helm: each remote chart is
//! fetched through our chart cache into the directory kustomize looks in before pulling,
//! so kustomize itself never reaches the network.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;

use super::remote::{self, RemoteChart};
use super::yaml::yaml_documents;
use super::{Manifest, RenderError, RenderOptions, join, kustomization_file, parse_documents};
use crate::source::Snapshot;

/// Kustomization fields whose entries may name a directory that kustomize then loads as a
/// new root, wherever it lies. (Fields naming files only, such as `patches` or generator
/// `files`, are held inside the kustomization's directory by kustomize itself.)
const ROOT_FIELDS: [&str; 6] = [
    "resources",
    "bases",
    "components",
    "generators",
    "transformers",
    "validators",
];

/// Runs `<kubectl> kustomize <tmp>/<root>` and parses what it prints. Origins name the
/// kustomization file, with the document's position in the output and line 1.
pub(super) fn render(
    snapshot: &Snapshot,
    root: &str,
    opts: &RenderOptions,
) -> Result<Vec<Manifest>, RenderError> {
    let kustomizations = check_confined(snapshot, root)?;
    let charts = helm_charts(&kustomizations);
    let tmp = tempfile::Builder::new()
        .prefix("kubectl-gitops-")
        .tempdir()
        .map_err(|source| RenderError::TempDir { source })?;
    let mut tree = snapshot.clone();
    for chart in &charts {
        chart.lay_into(&mut tree)?;
    }
    tree.materialize(tmp.path())
        .map_err(|source| RenderError::Materialize { source })?;

    let mut command = Command::new(&opts.kubectl);
    command.arg("kustomize");
    let inflates = kustomizations
        .iter()
        .flat_map(|reached| &reached.documents)
        .any(|document| document.get("helmCharts").is_some());
    if inflates {
        // kustomize templates the charts with our helm; each chart is in its chart home
        // already, so kustomize pulls nothing.
        command
            .arg("--enable-helm")
            .arg("--helm-command")
            .arg(&opts.helm.binary);
    }
    let output = command
        .arg(tmp.path().join(root))
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => RenderError::KubectlNotFound {
                kubectl: opts.kubectl.clone(),
            },
            _ => RenderError::KubectlStart {
                kubectl: opts.kubectl.clone(),
                source,
            },
        })?;

    let display_root = if root.is_empty() { "." } else { root };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut message = without_tmp(stderr.trim(), tmp.path());
        if let Some(rest) = message.strip_prefix("error: ") {
            message = rest.to_string();
        }
        if message.is_empty() {
            message = format!("kubectl exited with {}", output.status);
        }
        // kustomize before 5.6 asks `helm version -c`, which helm 4 no longer takes.
        if inflates && message.contains("version -c --short") {
            message.push_str(
                "; the kustomize in this kubectl runs helmCharts only with helm 3: use a newer \
                 kubectl (`kubectl version --client` shows its kustomize), or set $HELM to a helm 3",
            );
        }
        return Err(RenderError::Kustomize {
            root: display_root.to_string(),
            message,
        });
    }

    let file =
        kustomization_file(snapshot, root).unwrap_or_else(|| join(root, "kustomization.yaml"));
    let stdout = String::from_utf8(output.stdout).map_err(|_| RenderError::Kustomize {
        root: display_root.to_string(),
        message: "kustomize printed output that is not UTF-8".to_string(),
    })?;
    let mut manifests = parse_documents(&file, &stdout)?;
    for manifest in &mut manifests {
        manifest.origin.line = 1;
    }
    Ok(manifests)
}

/// Refuses a kustomization reachable from `root` whose bases, components or plugins lie
/// outside the repository (`..` past its top, an absolute path, a `file://` URL). Remote
/// bases by URL stay allowed: that is kustomize's own, explicit way to reach out.
/// A kustomization reached from the root.
struct Reached {
    dir: String,
    file: String,
    documents: Vec<Value>,
}

/// Returns each kustomization reached.
fn check_confined(snapshot: &Snapshot, root: &str) -> Result<Vec<Reached>, RenderError> {
    let mut pending = vec![root.to_string()];
    let mut seen = BTreeSet::new();
    let mut reached = Vec::new();
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(file) = kustomization_file(snapshot, &dir) else {
            continue; // a file, or a path kustomize will report missing
        };
        let bytes = snapshot.files.get(&file).map_or(&[][..], Vec::as_slice);
        let text = std::str::from_utf8(bytes).map_err(|_| RenderError::NotUtf8 {
            file: file.clone(),
            line: 1,
        })?;
        let documents: Vec<Value> = yaml_documents(&file, text)?
            .into_iter()
            .map(|(_, document)| document)
            .collect();
        for document in &documents {
            for field in ROOT_FIELDS {
                let Some(Value::Array(entries)) = document.get(field) else {
                    continue;
                };
                for entry in entries.iter().filter_map(Value::as_str) {
                    if let Some(target) = local_target(&file, &dir, field, entry)? {
                        pending.push(target);
                    }
                }
            }
        }
        reached.push(Reached {
            dir,
            file,
            documents,
        });
    }
    Ok(reached)
}

/// A `helmCharts:` entry whose chart comes from a chart repository or registry.
#[derive(Debug, PartialEq)]
struct HelmChart {
    chart: RemoteChart,
    /// The kustomization file that lists it.
    kustomization: String,
    /// Where kustomize looks for the chart before pulling it, repo-relative: kustomize
    /// 5.6 and later look in `<chartHome>/<name>-<version>/<name>` when a version is
    /// given, earlier ones (still in many kubectl builds) in `<chartHome>/<name>`.
    dirs: Vec<String>,
}

impl HelmChart {
    /// Fetches the chart (through the cache) into the directories kustomize reads it
    /// from, unless the repository has it there already (vendored).
    fn lay_into(&self, tree: &mut Snapshot) -> Result<(), RenderError> {
        let missing: Vec<&String> = self
            .dirs
            .iter()
            .filter(|dir| !tree.files.contains_key(&join(dir, "Chart.yaml")))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // Vendored in one of the places: the same chart in the others.
        let vendored = self.dirs.iter().find(|dir| !missing.contains(dir));
        let files = match vendored {
            Some(dir) => {
                let prefix = format!("{dir}/");
                tree.files
                    .iter()
                    .filter_map(|(path, data)| {
                        Some((path.strip_prefix(&prefix)?.to_string(), data.clone()))
                    })
                    .collect()
            }
            None => {
                let of = format!("the helmCharts: chart of {}", self.kustomization);
                remote::fetched(&self.chart, &of)?.1
            }
        };
        let tree_files = Arc::make_mut(&mut tree.files);
        for dir in missing {
            for (path, data) in files.iter() {
                tree_files.insert(join(dir, path), data.clone());
            }
        }
        Ok(())
    }
}

/// The remote charts of the reached kustomizations' `helmCharts:` (kustomize's
/// HelmChartInflationGenerator), with where kustomize expects each.
fn helm_charts(kustomizations: &[Reached]) -> Vec<HelmChart> {
    let mut charts = Vec::new();
    for Reached {
        dir,
        file,
        documents,
    } in kustomizations
    {
        for document in documents {
            let Some(Value::Array(entries)) = document.get("helmCharts") else {
                continue;
            };
            let home = document
                .pointer("/helmGlobals/chartHome")
                .and_then(Value::as_str)
                .unwrap_or("charts");
            for entry in entries {
                let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
                let (name, repo, version) = (text("name"), text("repo"), text("version"));
                if name.is_empty() || repo.is_empty() || name.contains('/') {
                    continue; // a local chart: kustomize reads it from the chart home
                }
                let home = join(dir, home);
                let mut dirs = vec![normalised(&join(&home, name))];
                if !version.is_empty() {
                    let versioned = join(&home, &format!("{name}-{version}"));
                    dirs.insert(0, normalised(&join(&versioned, name)));
                }
                charts.push(HelmChart {
                    kustomization: file.clone(),
                    chart: RemoteChart {
                        repository: repo.trim_end_matches('/').to_string(),
                        name: name.to_string(),
                        version: version.to_string(),
                    },
                    dirs,
                });
            }
        }
    }
    charts
}

/// `a/./b/../c` as `a/c`.
fn normalised(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    parts.join("/")
}

/// Where a kustomization entry leads inside the repository; `None` for a remote URL or an
/// inline configuration. An entry leaving the repository is an error.
fn local_target(
    file: &str,
    dir: &str,
    field: &str,
    entry: &str,
) -> Result<Option<String>, RenderError> {
    let outside = |reason: &str| RenderError::KustomizeOutside {
        file: file.to_string(),
        field: field.to_string(),
        entry: crate::error_text::one_line(entry),
        reason: reason.to_string(),
    };
    // Generators and transformers may be inline YAML rather than a path.
    if entry.contains('\n') {
        return Ok(None);
    }
    let unprefixed = entry.strip_prefix("git::").unwrap_or(entry);
    if let Some((scheme, _)) = unprefixed.split_once("://") {
        return match scheme {
            "https" | "http" | "ssh" | "git" => Ok(None),
            _ => Err(outside(
                "only https, http, ssh and git URLs reach outside it",
            )),
        };
    }
    // scp-like `git@github.com:org/repo`: remote too.
    if unprefixed
        .split_once(':')
        .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'))
    {
        return Ok(None);
    }
    if unprefixed.starts_with('/') {
        return Err(outside("it is an absolute path"));
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in unprefixed.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(outside("it climbs above the top of the repository"));
                }
            }
            name => parts.push(name),
        }
    }
    Ok(Some(parts.join("/")))
}

/// kustomize names files by their absolute temporary path; make them repo-relative.
fn without_tmp(message: &str, tmp: &Path) -> String {
    let mut out = message.to_string();
    let canonical = tmp.canonicalize().ok();
    for dir in canonical.iter().map(|p| p.as_path()).chain([tmp]) {
        let dir = dir.to_string_lossy();
        out = out
            .replace(&format!("{dir}/"), "")
            .replace(dir.as_ref(), ".");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::render::tests::snapshot;
    use crate::render::{Renderer, detect, render as render_any};
    use serde_json::json;
    use std::path::PathBuf;

    /// The kubectl under test: `$KUBECTL`, else `kubectl` on PATH. A missing one fails.
    fn kubectl() -> RenderOptions {
        let kubectl =
            std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
        RenderOptions {
            kubectl,
            ..RenderOptions::default()
        }
    }

    const BASE: &[(&str, &str)] = &[
        (
            "base/kustomization.yaml",
            "resources:\n- deploy.yaml\n- cm.yaml\n",
        ),
        (
            "base/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  \
             selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
             spec:\n      containers: [{name: web, image: nginx}]\n",
        ),
        (
            "base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  mode: '0644'\n",
        ),
        (
            "overlays/prod/kustomization.yml",
            "namespace: prod\nnamePrefix: prod-\nresources:\n- ../../base\npatches:\n- path: replicas.yaml\n",
        ),
        (
            "overlays/prod/replicas.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
        ),
    ];

    #[test]
    fn helm_charts_are_looked_for_where_kustomize_looks_before_pulling() {
        let kustomizations = vec![Reached {
            dir: "apps/mc".to_string(),
            file: "apps/mc/kustomization.yaml".to_string(),
            documents: vec![json!({
                "helmGlobals": {"chartHome": "../vendor"},
                "helmCharts": [
                    {"name": "minecraft", "repo": "https://charts.example.com/", "version": "4.1.0"},
                    {"name": "redis", "repo": "oci://registry.example.com/charts"},
                    {"name": "local"},
                ],
            })],
        }];
        let charts = helm_charts(&kustomizations);
        let found: Vec<(&str, &str, &str, String)> = charts
            .iter()
            .map(|c| {
                (
                    c.chart.repository.as_str(),
                    c.chart.name.as_str(),
                    c.chart.version.as_str(),
                    c.dirs.join(" "),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "https://charts.example.com",
                    "minecraft",
                    "4.1.0",
                    "apps/vendor/minecraft-4.1.0/minecraft apps/vendor/minecraft".to_string()
                ),
                (
                    "oci://registry.example.com/charts",
                    "redis",
                    "",
                    "apps/vendor/redis".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_helm_chart_vendored_in_its_chart_home_renders_with_our_helm_offline() {
        let helm = std::env::var_os("HELM").map_or_else(|| PathBuf::from("helm"), PathBuf::from);
        let mut opts = kubectl();
        opts.helm.binary = helm;
        // The repository cannot be reached: the chart must come from the chart home.
        let snap = snapshot(
            "app",
            &[
                (
                    "app/kustomization.yaml",
                    "helmCharts:\n- name: web\n  repo: https://127.0.0.1:9/charts\n  \
                     version: 0.1.0\n  releaseName: arcade\n  valuesInline: {replicas: 2}\n",
                ),
                (
                    "app/charts/web-0.1.0/web/Chart.yaml",
                    "apiVersion: v2\nname: web\nversion: 0.1.0\n",
                ),
                ("app/charts/web-0.1.0/web/values.yaml", "replicas: 1\n"),
                (
                    "app/charts/web-0.1.0/web/templates/cm.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n\
                     data:\n  replicas: \"{{ .Values.replicas }}\"\n",
                ),
            ],
        );
        let manifests = render_any(&snap, &opts).unwrap();
        assert_eq!(manifests.len(), 1, "{manifests:?}");
        assert_eq!(
            manifests[0].object,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "arcade"},
                   "data": {"replicas": "2"}})
        );
    }

    #[test]
    fn renders_base_and_overlay() {
        let snap = snapshot("overlays/prod", BASE);
        assert_eq!(detect(&snap), Renderer::Kustomize);
        let manifests = render_any(&snap, &kubectl()).expect("kubectl kustomize");
        let summary: Vec<_> = manifests
            .iter()
            .map(|m| {
                let meta = &m.object["metadata"];
                (
                    m.object["kind"].clone(),
                    meta["name"].clone(),
                    meta["namespace"].clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (json!("ConfigMap"), json!("prod-cfg"), json!("prod")),
                (json!("Deployment"), json!("prod-web"), json!("prod")),
            ]
        );
        assert_eq!(manifests[1].object["spec"]["replicas"], json!(3));
        assert_eq!(manifests[0].object["data"]["mode"], json!("0644"));
        let origins: Vec<_> = manifests.iter().map(|m| m.origin.to_string()).collect();
        assert_eq!(origins, ["overlays/prod/kustomization.yml:1"; 2]);
        assert_eq!(manifests[1].origin.document, 1);

        let base = render_any(&snapshot("base/", BASE), &kubectl()).expect("kubectl kustomize");
        assert_eq!(base.len(), 2);
        assert_eq!(base[0].origin.file, "base/kustomization.yaml");
    }

    #[test]
    fn kustomize_errors_name_repo_paths() {
        let mut files = BASE.to_vec();
        files.push(("broken/kustomization.yaml", "resources:\n- missing.yaml\n"));
        let err = render_any(&snapshot("broken", &files), &kubectl())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("kustomize failed for `broken`: "), "{err}");
        assert!(err.contains("broken/missing.yaml"), "{err}");
        assert!(
            !err.contains("kubectl-gitops-"),
            "temporary path leaked: {err}"
        );
    }

    /// Our YAML reading (render/value.rs) against kubectl's own: `kubectl patch --local`
    /// prints the object as kubectl decoded it, without a cluster.
    #[test]
    fn yaml_scalars_read_as_kubectl_reads_them() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scalars\nspec:\n  \
            mode: 0644\n  quoted: '0644'\n  dq: \"yes\"\n  y: n\n  off: 'no'\n  \
            big: 1_000\n  f: 08\n  neg: -010\n  t: !!str 0644\n  tag: !Thing 0644\n  \
            ver: 1.20\n  e: 1e3\n  one: 1.0\n  half: .5\n  hex: 0x1F\n  bin: 0b101\n  \
            oct: 0o17\n  nul: ~\n  empty:\n  tilde: '~'\n  date: 2024-01-01\n  \
            list: [Yes, NO, On, 'on', 1_0, +12]\n  base: &b {a: 1, c: 1}\n  \
            m: {<<: *b, c: 2}\n  q: {'<<': 1, !!str x: yes}\n  lit: |\n    0644\n  \
            str: plain text\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scalars.yaml");
        std::fs::write(&path, text).unwrap();
        let output = Command::new(kubectl().kubectl)
            .args([
                "patch",
                "--local",
                "--type=merge",
                "-p",
                "{}",
                "-o",
                "json",
                "-f",
            ])
            .arg(&path)
            .env("KUBECONFIG", dir.path().join("none"))
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let ours = parse_documents("scalars.yaml", text).unwrap();
        assert_eq!(ours[0].object, theirs);
    }

    /// A kustomization outside the repository, next to where the render's temporary
    /// directory is made, holding a value that must never show up.
    fn outside_kustomization() -> tempfile::TempDir {
        let outside = tempfile::Builder::new()
            .prefix("outside-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        std::fs::write(
            outside.path().join("kustomization.yaml"),
            "resources: [cm.yaml]\n",
        )
        .unwrap();
        std::fs::write(
            outside.path().join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaked}\ndata: {v: TOPSECRET}\n",
        )
        .unwrap();
        std::fs::write(outside.path().join("secret.txt"), "TOPSECRET\n").unwrap();
        outside
    }

    #[test]
    fn bases_outside_the_repository_are_refused_before_kustomize_runs() {
        let outside = outside_kustomization();
        let name = outside.path().file_name().unwrap().to_str().unwrap();
        // The temporary tree is <tmp>/kubectl-gitops-XXXX/<repo files>: from `app`,
        // `../../NAME` is <tmp>/NAME, which kustomize would load as a base.
        let escape = format!("../../{name}");
        let cases = [
            (
                vec![(
                    "app/kustomization.yaml",
                    format!("resources:\n- {escape}\n"),
                )],
                "app/kustomization.yaml: `../../outside-",
            ),
            (
                vec![
                    (
                        "app/kustomization.yaml",
                        "resources: [../base]\n".to_string(),
                    ),
                    (
                        "base/kustomization.yaml",
                        format!("components:\n- ../{escape}\n"),
                    ),
                ],
                "base/kustomization.yaml: `../../../outside-",
            ),
            (
                vec![(
                    "app/kustomization.yaml",
                    "resources: [../../../../../../etc]\n".to_string(),
                )],
                "app/kustomization.yaml: `../../../../../../etc` in resources points outside \
                 the repository: it climbs above the top of the repository",
            ),
            (
                vec![(
                    "app/kustomization.yaml",
                    format!("resources: [{}]\n", outside.path().display()),
                )],
                "it is an absolute path",
            ),
            (
                vec![(
                    "app/kustomization.yaml",
                    "bases: ['git::file:///srv/git/other']\n".to_string(),
                )],
                "only https, http, ssh and git URLs reach outside it",
            ),
        ];
        for (files, want) in cases {
            let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
            let err = render_any(&snapshot("app", &files), &kubectl())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("TOPSECRET"), "{err}");
        }
    }

    #[test]
    fn remote_inline_and_inside_entries_are_allowed() {
        for entry in [
            "https://github.com/org/repo//deploy?ref=v1",
            "git::https://example.com/repo.git",
            "ssh://git@example.com/repo.git",
            "git@github.com:org/repo.git",
            "{apiVersion: builtin, kind: LabelTransformer}\nmetadata: {name: x}",
        ] {
            assert_eq!(
                local_target("k", "app", "resources", entry).unwrap(),
                None,
                "{entry}"
            );
        }
        assert_eq!(
            local_target("k", "overlays/prod", "resources", "./../../base/").unwrap(),
            Some("base".to_string())
        );
        // A self-reference or a loop is for kustomize to report; the check terminates.
        let files = [
            ("a/kustomization.yaml", "resources: [../b, .]\n"),
            ("b/kustomization.yaml", "resources: [../a]\n"),
        ];
        check_confined(&snapshot("a", &files), "a").unwrap();
    }

    #[test]
    fn files_outside_a_kustomization_are_refused_by_kustomize() {
        let outside = outside_kustomization();
        let name = outside.path().file_name().unwrap().to_str().unwrap();
        let text = format!("configMapGenerator:\n- name: x\n  files: [../../{name}/secret.txt]\n");
        let err = render_any(
            &snapshot("app", &[("app/kustomization.yaml", &text)]),
            &kubectl(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("kustomize failed for `app`: "), "{err}");
        assert!(err.contains("is not in or below"), "{err}");
        assert!(!err.contains("TOPSECRET"), "{err}");
    }

    #[test]
    fn missing_kubectl_says_how_to_install_it() {
        let opts = RenderOptions {
            kubectl: PathBuf::from("/nonexistent/kubectl"),
            ..RenderOptions::default()
        };
        let err = render_any(&snapshot("base", BASE), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`/nonexistent/kubectl` was not found;"),
            "{err}"
        );
        assert!(
            err.contains("https://kubernetes.io/docs/tasks/tools/"),
            "{err}"
        );
    }
}
