//! Kustomize rendering through `kubectl kustomize`.
//!
//! The whole repository is written to a temporary directory, because overlays reach
//! their bases through `../`; kustomize's default load restrictor still keeps each
//! kustomization inside its own tree.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Manifest, RenderError, RenderOptions, join, kustomization_file, parse_documents};
use crate::source::Snapshot;

/// Runs `<kubectl> kustomize <tmp>/<root>` and parses what it prints. Origins name the
/// kustomization file, with the document's position in the output and line 1.
pub(super) fn render(
    snapshot: &Snapshot,
    root: &str,
    opts: &RenderOptions,
) -> Result<Vec<Manifest>, RenderError> {
    let tmp = tempfile::Builder::new()
        .prefix("kubectl-gitops-")
        .tempdir()
        .map_err(|source| RenderError::TempDir { source })?;
    snapshot
        .materialize(tmp.path())
        .map_err(|source| RenderError::Materialize { source })?;

    let output = Command::new(&opts.kubectl)
        .arg("kustomize")
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
    use crate::render::{Renderer, detect, render as render_any};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// The kubectl under test: `$KUBECTL`, else `kubectl` on PATH. A missing one fails.
    fn kubectl() -> RenderOptions {
        let kubectl =
            std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
        RenderOptions { kubectl }
    }

    fn snapshot(root: &str, files: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            files: files
                .iter()
                .map(|(path, text)| (path.to_string(), text.as_bytes().to_vec()))
                .collect::<BTreeMap<_, _>>(),
            root: root.to_string(),
            commit: None,
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
            m: {<<: *b, c: 2}\n  lit: |\n    0644\n  str: plain text\n";
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

    #[test]
    fn missing_kubectl_says_how_to_install_it() {
        let opts = RenderOptions {
            kubectl: PathBuf::from("/nonexistent/kubectl"),
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
