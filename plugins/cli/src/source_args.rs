use anyhow::{Context, Result, bail};
use clap::Args;
use gitops::render::{self, JsonnetOptions, RemoteChart, RenderOptions};
use gitops::source::{self, Positional, Repo, TreeSpec};

use crate::RepoArgs;

/// `[REVISION] [PATH]` and `--repo`: which repository, revision and path the manifests
/// come from, shared by the plugins that read git.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// A revision git understands (default HEAD); diff-git also takes REV_A..REV_B. A path
    /// if it names one.
    #[arg(value_name = "REVISION")]
    pub revision: Option<String>,
    /// The path inside the repository holding the manifests: relative to the current
    /// directory inside a checkout (default: that directory), to the repository's top
    /// with --repo (default: all of it).
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// For a Helm chart: a values file, relative to the top of the repository and read
    /// from the same revision as the chart (repeatable; later files win).
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<String>,
    /// For a Helm chart: set a value, as `helm --set` does (repeatable; wins over --values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A Helm chart that is not in git, rendered instead of PATH with --values from git:
    /// `oci://HOST/PATH/NAME`, or NAME in the chart repository --chart-repo names.
    #[arg(long = "chart", value_name = "CHART")]
    pub chart: Option<String>,
    /// The chart repository (`https://…`, as `helm --repo`) or OCI registry path
    /// (`oci://HOST/PATH`) holding --chart.
    #[arg(long = "chart-repo", value_name = "URL", requires = "chart")]
    pub chart_repo: Option<String>,
    /// --chart's version, or a semver range such as `^6.5` (default: the newest).
    #[arg(long = "chart-version", value_name = "VERSION", requires = "chart")]
    pub chart_version: Option<String>,
    /// For a Helm chart: the Kubernetes version `.Capabilities.KubeVersion` holds, as
    /// `helm template --kube-version` takes it (default: the destination cluster's, or
    /// helm's built-in one without a cluster; given, it wins over the cluster's).
    #[arg(long = "kube-version", value_name = "VERSION", value_parser = kube_version)]
    pub kube_version: Option<String>,
    /// For a Helm chart: API versions added to `.Capabilities.APIVersions`, as
    /// `helm template --api-versions` takes them (repeatable or comma-separated; added to
    /// those the destination cluster serves).
    #[arg(
        long = "api-versions",
        value_name = "GROUP/VERSION[/KIND]",
        value_delimiter = ','
    )]
    pub api_versions: Vec<String>,
    /// For Jsonnet: a top-level argument given as a string, as `jsonnet --tla-str` does
    /// (repeatable; wins over the app list's `jsonnet.tlas`).
    #[arg(long = "tla", value_name = "NAME=VALUE", value_parser = name_value)]
    pub tla: Vec<(String, String)>,
    /// For Jsonnet: an external variable (`std.extVar`) given as a string, as
    /// `jsonnet --ext-str` does (repeatable; wins over the app list's `jsonnet.ext_vars`).
    #[arg(long = "ext-str", value_name = "NAME=VALUE", value_parser = name_value)]
    pub ext_str: Vec<(String, String)>,
    /// For Jsonnet: a repo-relative directory searched for imports, read from the same
    /// revision (repeatable; searched before the app list's `jsonnet.libs`).
    #[arg(long = "jsonnet-lib", value_name = "DIR")]
    pub jsonnet_lib: Vec<String>,
}

/// A Kubernetes version helm accepts.
fn kube_version(text: &str) -> Result<String, String> {
    render::check_kube_version(text)
}

/// `NAME=VALUE`, split at the first `=`.
fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got \"{text}\"")),
    }
}

/// What the arguments asked for.
pub enum Selection {
    /// One tree.
    One(TreeSpec),
    /// Two revisions.
    Range(String, String),
}

pub struct ResolvedSource {
    pub repo: Repo,
    /// The path inside the repository, repo-relative ("" for all of it).
    pub root: String,
    /// Whether the command line named the path (else it is the current directory's).
    pub path_given: bool,
    pub selection: Selection,
}

impl ResolvedSource {
    /// How records and messages name the repository: the URL or directory given, else the
    /// checkout's directory.
    pub fn repo_label(&self) -> String {
        self.repo.label().to_string()
    }

    /// The repository's own name (its directory or the URL's last part), for default app names.
    pub fn repo_name(&self) -> String {
        let label = self
            .repo
            .label()
            .trim_end_matches('/')
            .trim_end_matches(".git");
        label.rsplit(['/', ':']).next().unwrap_or(label).to_string()
    }
}

impl SourceArgs {
    /// How app `app` in `namespace` is rendered: the tools from the environment, and for a
    /// Helm chart the release name, namespace and these --values and --set flags.
    pub fn render_options(&self, app: &str, namespace: &str) -> RenderOptions {
        let mut options = render::render_options(app, namespace, &self.values, &self.set);
        options.jsonnet = self.jsonnet();
        self.capabilities(&mut options);
        options
    }

    /// The chart --chart, --chart-repo and --chart-version name, if any.
    pub fn remote_chart(&self) -> Result<Option<RemoteChart>> {
        let Some(chart) = &self.chart else {
            return Ok(None);
        };
        let version = self.chart_version.clone().unwrap_or_default();
        let (repository, name) = match (&self.chart_repo, chart.strip_prefix("oci://")) {
            (Some(repo), None) => (repo.trim_end_matches('/').to_string(), chart.clone()),
            (None, Some(reference)) => match reference.trim_end_matches('/').rsplit_once('/') {
                Some((path, name)) if !name.is_empty() => {
                    (format!("oci://{path}"), name.to_string())
                }
                _ => bail!("--chart {chart}: give oci://HOST/PATH/NAME"),
            },
            (Some(_), Some(_)) => {
                bail!("--chart {chart} is a whole oci:// reference already; leave out --chart-repo")
            }
            (None, None) => bail!(
                "--chart {chart} needs --chart-repo URL (a chart repository), or give oci://HOST/PATH/NAME"
            ),
        };
        if !["https://", "http://", "oci://"]
            .iter()
            .any(|scheme| repository.starts_with(scheme))
        {
            bail!(
                "--chart-repo {repository}: give a https:// chart repository or an oci:// registry path"
            );
        }
        if name.is_empty() || name.contains('/') {
            bail!("--chart {chart}: \"{name}\" is not a chart's name");
        }
        Ok(Some(RemoteChart {
            repository,
            name,
            version,
        }))
    }

    /// Gives a chart what --kube-version and --api-versions say, before a destination's
    /// own capabilities are added ([`gitops::render::HelmOptions::add_cluster`]).
    pub fn capabilities(&self, options: &mut RenderOptions) {
        options.helm.kube_version = self.kube_version.clone();
        options.helm.api_versions = self
            .api_versions
            .iter()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
    }

    /// What --tla, --ext-str and --jsonnet-lib give Jsonnet programs.
    pub fn jsonnet(&self) -> JsonnetOptions {
        JsonnetOptions {
            tlas: self.tla.iter().cloned().collect(),
            ext_vars: self.ext_str.iter().cloned().collect(),
            libs: self.jsonnet_lib.clone(),
        }
    }

    /// Opens the repository and sorts out the positional arguments. `working_tree` asks
    /// for the files on disk instead of a revision.
    pub fn resolve(&self, working_tree: bool) -> Result<ResolvedSource> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let repo = match &self.repo.location {
            Some(spec) => source::open_repo(spec)?,
            None => Repo::discover(&cwd)?,
        };
        // With --repo, PATH is inside that repository: relative to its top, wherever the
        // command runs. Without it, relative to the current directory, as git's paths are.
        let base = match (&self.repo.location, repo.workdir()) {
            (Some(_), Some(top)) => top.to_path_buf(),
            _ => cwd,
        };
        let cwd = base;
        // The first positional is a revision, a range, or (when it names one) a path.
        let (selection, path) = match &self.revision {
            None => (None, self.path.clone()),
            Some(first) => match source::classify_positional(&repo, first, &cwd)? {
                Positional::Path(p) => match &self.path {
                    Some(second) => {
                        bail!(
                            "\"{first}\" is a path, so \"{second}\" is unexpected; give the revision first"
                        )
                    }
                    None => (None, Some(p)),
                },
                Positional::Revision(rev) => (
                    Some(Selection::One(TreeSpec::Revision(rev))),
                    self.path.clone(),
                ),
                Positional::Range(a, b) => (Some(Selection::Range(a, b)), self.path.clone()),
            },
        };
        let root = match &path {
            Some(p) => repo.repo_path(&cwd, p)?,
            // Inside a checkout, no path means the directory the user stands in, as git does.
            None if self.repo.location.is_none() => repo.repo_path(&cwd, ".")?,
            None => String::new(),
        };
        let selection = match (selection, working_tree) {
            (Some(_), true) => {
                bail!("--working-tree reads the files on disk; do not also give a revision")
            }
            (Some(selection), false) => selection,
            (None, true) => Selection::One(TreeSpec::WorkingTree),
            (None, false) => Selection::One(TreeSpec::Revision("HEAD".into())),
        };
        Ok(ResolvedSource {
            repo,
            root,
            path_given: path.is_some(),
            selection,
        })
    }
}
