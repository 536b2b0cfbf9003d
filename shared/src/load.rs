//! From a repository, a revision and a path to the objects that revision wants: the first
//! half of every plugin's flow (read, render, key), in one place.

use std::path::{Path, PathBuf};

use crate::objects::{DesiredSet, ObjectsError, ScopeResolver};
use crate::render::{self, ChartInfo, HelmOptions, Manifest, RenderError, RenderOptions, Renderer};
use crate::source::{CommitInfo, Repo, Snapshot, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Objects(#[from] ObjectsError),
}

/// Which tree to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSpec {
    /// A revision, read from the object database.
    Revision(String),
    /// The files on disk, uncommitted changes included.
    WorkingTree,
}

/// A revision's tree, read and described.
pub struct LoadedTree {
    pub snapshot: Snapshot,
    /// A short name for diff headers: the short commit id, or `working-tree`.
    pub label: String,
}

impl LoadedTree {
    pub fn commit(&self) -> Option<&CommitInfo> {
        self.snapshot.commit.as_ref()
    }
}

/// Reads the tree `spec` names at `root` (repo-relative).
pub fn read_tree(repo: &Repo, spec: &TreeSpec, root: &str) -> Result<LoadedTree, LoadError> {
    Ok(match spec {
        TreeSpec::Revision(rev) => {
            let commit = repo.resolve(rev)?;
            let label = commit.short_id.clone();
            LoadedTree {
                snapshot: repo.snapshot(&commit, root)?,
                label,
            }
        }
        TreeSpec::WorkingTree => LoadedTree {
            snapshot: repo.working_tree(root)?,
            label: "working-tree".into(),
        },
    })
}

/// Renders a tree and keys its objects.
pub fn desired_set(
    snapshot: &Snapshot,
    options: &RenderOptions,
    namespace: &str,
    scopes: &dyn ScopeResolver,
) -> Result<(Renderer, DesiredSet), LoadError> {
    rendered(snapshot, options)?.keyed(namespace, scopes)
}

/// A tree rendered, its objects not yet keyed: rendering needs no cluster, so it can run
/// while the client connects; keying needs the cluster's scopes.
pub struct Rendered {
    pub renderer: Renderer,
    manifests: Vec<Manifest>,
}

/// The first half of [`desired_set`].
pub fn rendered(snapshot: &Snapshot, options: &RenderOptions) -> Result<Rendered, LoadError> {
    Ok(Rendered {
        renderer: render::detect(snapshot),
        manifests: render::render(snapshot, options)?,
    })
}

impl Rendered {
    /// The second half of [`desired_set`]: the objects keyed, with `namespace` for those
    /// without one.
    pub fn keyed(
        self,
        namespace: &str,
        scopes: &dyn ScopeResolver,
    ) -> Result<(Renderer, DesiredSet), LoadError> {
        Ok((
            self.renderer,
            DesiredSet::build(self.manifests, namespace, scopes)?,
        ))
    }
}

/// The chart a tree's path holds and the values given to it, for the release record;
/// `None` when the path is not a Helm chart.
pub fn chart_info(
    snapshot: &Snapshot,
    options: &RenderOptions,
) -> Result<Option<ChartInfo>, LoadError> {
    Ok(render::chart_info(snapshot, options)?)
}

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
        },
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

/// The repository a `--repo` value names: a URL (cloned or fetched into
/// [`repo_cache_dir`] with the user's git) or a directory inside a checkout.
pub fn open_repo(spec: &str) -> Result<Repo, SourceError> {
    if is_url(spec) {
        Repo::open_remote(spec, &repo_cache_dir())
    } else {
        Repo::discover(Path::new(spec))
    }
}

/// `scheme://...`, or scp-like `user@host:path` that is not a directory here.
pub fn is_url(spec: &str) -> bool {
    spec.contains("://") || (spec.contains('@') && spec.contains(':') && !Path::new(spec).exists())
}

/// Where `--repo URL` clones are kept: `$XDG_CACHE_HOME/kubectl-gitops/repos`.
pub fn repo_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubectl-gitops").join("repos")
}
