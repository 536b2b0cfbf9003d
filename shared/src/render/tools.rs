//! The tools renderers run (`kubectl`, `helm`), found as the user's shell would, and an
//! app's render settings built from them.

use std::path::{Path, PathBuf};

use super::{HelmOptions, RenderOptions};

/// The render settings of one app: the tools from the environment (`$KUBECTL`, `$HELM`),
/// the app's name and namespace as a chart's release name and namespace, and the chart's
/// `--values` files (repo-relative) and `--set` strings.
pub fn render_options(
    app: &str,
    namespace: &str,
    values_files: &[String],
    set: &[String],
) -> RenderOptions {
    RenderOptions {
        kubectl: kubectl_binary(),
        helm: HelmOptions {
            binary: helm_binary(),
            release_name: app.to_string(),
            namespace: namespace.to_string(),
            values_files: values_files.to_vec(),
            set: set.to_vec(),
            remote: None,
            kube_version: None,
            api_versions: Vec::new(),
        },
        jsonnet: super::JsonnetOptions::default(),
    }
}

/// The kubectl binary renderers run: `$KUBECTL` if set, else `kubectl` on PATH.
pub fn kubectl_binary() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("kubectl").to_path_buf())
}

/// The helm binary charts are rendered with: `$HELM` if set, else `helm` on PATH.
pub fn helm_binary() -> PathBuf {
    std::env::var_os("HELM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("helm").to_path_buf())
}
