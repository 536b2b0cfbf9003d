//! `kubectl diff-git`: what a git revision would change in the cluster, or what changed
//! between two revisions. A thin command line over the `gitops` library.

mod external;
mod print;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use gitops::compare::{Conflict, against_cluster};
use gitops::diff::{ChangeSet, normalise};
use gitops::kubeconfig::{self, Environment};
use gitops::live::LiveCluster;
use gitops::load::{self, LoadedTree, TreeSpec};
use gitops::objects::BuiltinScopes;
use gitops::output::ColorChoice;
use gitops::render::RenderOptions;
use gitops::source::{self, Positional, Repo};
use gitops_cli::{ConnectionArgs, Outcome};

/// Show what applying a git revision would change in the cluster, or what changed between
/// two revisions.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl diff-git",
    bin_name = "kubectl diff-git",
    version,
    after_help = "Examples:
  # What would HEAD of this checkout change in the cluster?
  kubectl diff-git

  # A path inside the repository, at a tag
  kubectl diff-git v1.4.0 deploy/production

  # Uncommitted edits, against the cluster
  kubectl diff-git --working-tree deploy/production

  # What changed between two revisions (no cluster needed)
  kubectl diff-git main~3..main deploy/

  # For a pull-request comment
  kubectl diff-git origin/main..HEAD -o markdown

Exit status: 0 no differences, 1 differences found, 2 or more an error (as kubectl diff)."
)]
struct Args {
    /// A revision (HEAD if omitted) or REV_A..REV_B; a path if it names one.
    #[arg(value_name = "REVISION")]
    revision: Option<String>,
    /// The path inside the repository holding the manifests (default: the whole repository).
    #[arg(value_name = "PATH")]
    path: Option<String>,
    /// The repository: a directory or a URL (cloned into a cache with your git credentials).
    #[arg(long, value_name = "DIR|URL")]
    repo: Option<String>,
    /// Diff the files on disk, uncommitted changes included, instead of a revision.
    #[arg(long)]
    working_tree: bool,
    /// Output format: a colored unified diff (default), json, name or markdown.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// When to color the diff.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    color: ColorArg,
    /// Lines of context around each change.
    #[arg(short = 'U', long = "unified", default_value_t = 3, value_name = "N")]
    unified: usize,
    /// Show the values of Secrets instead of masking them.
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Name,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for ColorChoice {
    fn from(value: ColorArg) -> Self {
        match value {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    gitops_cli::run(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(args))
    })
}

/// What the positional arguments asked for.
struct Request {
    repo: Repo,
    root: String,
    target: Target,
}

enum Target {
    /// One tree against the live cluster.
    Cluster(TreeSpec),
    /// Two revisions against each other.
    Range(String, String),
}

fn parse_request(args: &Args) -> Result<Request> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = match &args.repo {
        Some(spec) if is_url(spec) => Repo::open_remote(spec, &load::repo_cache_dir())?,
        Some(dir) => Repo::discover(&PathBuf::from(dir))?,
        None => Repo::discover(&cwd)?,
    };
    // The first positional is a revision, a range, or (when it names one) a path.
    let (revision, path) = match &args.revision {
        None => (None, args.path.clone()),
        Some(first) => match source::classify_positional(&repo, first, &cwd)? {
            Positional::Path(p) => match &args.path {
                Some(second) => bail!(
                    "\"{first}\" is a path, so \"{second}\" is unexpected; give the revision first"
                ),
                None => (None, Some(p)),
            },
            Positional::Revision(rev) => (
                Some(Target::Cluster(TreeSpec::Revision(rev))),
                args.path.clone(),
            ),
            Positional::Range(a, b) => (Some(Target::Range(a, b)), args.path.clone()),
        },
    };
    let root = match &path {
        Some(p) => repo.repo_path(&cwd, p)?,
        // Inside a checkout, no path means the directory the user stands in, as git does.
        None if args.repo.is_none() => repo.repo_path(&cwd, ".")?,
        None => String::new(),
    };
    let target = match (revision, args.working_tree) {
        (Some(_), true) => {
            bail!("--working-tree diffs the files on disk; do not also give a revision")
        }
        (Some(target), false) => target,
        (None, true) => Target::Cluster(TreeSpec::WorkingTree),
        (None, false) => Target::Cluster(TreeSpec::Revision("HEAD".into())),
    };
    Ok(Request { repo, root, target })
}

fn is_url(spec: &str) -> bool {
    spec.contains("://")
        || (spec.contains('@') && spec.contains(':') && !std::path::Path::new(spec).exists())
}

async fn run(args: Args) -> Result<Outcome> {
    let request = parse_request(&args)?;
    let render_options = RenderOptions {
        kubectl: load::kubectl_binary(),
    };
    let mut conflicts: Vec<Conflict> = Vec::new();
    let (mut changes, before_label, after_label) = match &request.target {
        Target::Range(a, b) => {
            let namespace = offline_namespace(&args.connection);
            let old =
                load::read_tree(&request.repo, &TreeSpec::Revision(a.clone()), &request.root)?;
            let new =
                load::read_tree(&request.repo, &TreeSpec::Revision(b.clone()), &request.root)?;
            let changes = between_trees(&old, &new, &render_options, &namespace)?;
            (changes, old.label, new.label)
        }
        Target::Cluster(spec) => {
            let tree = load::read_tree(&request.repo, spec, &request.root)?;
            let connection = args.connection.connect().await?;
            let cluster = LiveCluster::connect(&connection).await?;
            let (_, desired) = load::desired_set(
                &tree.snapshot,
                &render_options,
                &connection.namespace,
                &cluster,
            )?;
            let comparison = against_cluster(&cluster, &desired).await?;
            conflicts = comparison.conflicts;
            print::missing_namespace_warnings(&comparison.missing_namespaces);
            (comparison.changes, "live".to_string(), tree.label)
        }
    };
    if !args.show_secrets {
        changes.mask_secrets();
    }
    let outcome = if changes.has_differences() {
        Outcome::Differences
    } else {
        Outcome::Clean
    };
    let view = print::View {
        changes: &changes,
        before: &before_label,
        after: &after_label,
        conflicts: &conflicts,
        context: args.unified,
        color: ColorChoice::from(args.color).enabled(),
    };
    print::conflict_warnings(&conflicts);
    match args.output {
        Some(Format::Json) => print::json(&view)?,
        Some(Format::Name) => print::names(&view)?,
        Some(Format::Markdown) => print::markdown(&view)?,
        None => match std::env::var("KUBECTL_EXTERNAL_DIFF")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(command) => external::run(&command, &view)?,
            None => print::unified(&view)?,
        },
    }
    Ok(outcome)
}

/// Two revisions compared without a cluster: each side rendered and keyed with the
/// built-in scopes, then normalised so only what the manifests say is compared.
fn between_trees(
    old: &LoadedTree,
    new: &LoadedTree,
    options: &RenderOptions,
    namespace: &str,
) -> Result<ChangeSet> {
    let side = |tree: &LoadedTree| -> Result<_> {
        let (_, desired) = load::desired_set(&tree.snapshot, options, namespace, &BuiltinScopes)
            .with_context(|| format!("at revision {}", tree.label))?;
        Ok(desired
            .iter()
            .map(|o| {
                let mut object = o.object.clone();
                normalise(&mut object);
                (o.key.clone(), object)
            })
            .collect())
    };
    Ok(ChangeSet::between(side(old)?, side(new)?))
}

/// The namespace for a diff without a cluster: `-n`, else the kubeconfig context's, else
/// `default`. A broken or missing kubeconfig is fine here: nothing connects.
fn offline_namespace(connection: &ConnectionArgs) -> String {
    if let Some(ns) = &connection.namespace {
        return ns.clone();
    }
    let options = connection.options();
    kubeconfig::load(&options, &Environment::from_process())
        .ok()
        .flatten()
        .and_then(|loaded| {
            let name = options
                .context
                .clone()
                .or(loaded.merged.current_context.clone())?;
            let context = loaded
                .merged
                .contexts
                .into_iter()
                .find(|c| c.name == name)?;
            context.context?.namespace
        })
        .unwrap_or_else(|| "default".into())
}
