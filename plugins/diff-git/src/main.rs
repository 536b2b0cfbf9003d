//! `kubectl diff-git`: what a git revision would change in the cluster, or what changed
//! between two revisions. A thin command line over the `gitops` library.

mod compute;
mod external;
mod show;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use gitops::source::{TreeSpec, read_tree};
use gitops::sync::app_name_for_path;
use gitops_cli::destinations::Layout;
use gitops_cli::targets;
use gitops_cli::{
    AdoptArgs, AppListArgs, AppNameArgs, ConnectionArgs, EarlyDiscovery, Outcome, OutputArgs,
    PruneCrdsArgs, Selection, SourceArgs, UnifiedArgs,
};

/// Show what applying a git revision would change in the cluster, or what changed between
/// two revisions.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl diff-git",
    bin_name = "kubectl diff-git",
    version = gitops_cli::VERSION,
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
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    apps: AppListArgs,
    /// Diff the files on disk, uncommitted changes included, instead of a revision.
    #[arg(long)]
    working_tree: bool,
    #[command(flatten)]
    app: AppNameArgs,
    #[command(flatten)]
    prune_crds: PruneCrdsArgs,
    #[command(flatten)]
    adopt: AdoptArgs,
    #[command(flatten)]
    output: OutputArgs<Format>,
    #[command(flatten)]
    unified: UnifiedArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Name,
    Markdown,
}

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>(
        "kubectl-diff_git",
        gitops_cli::completion::FirstPositional::RevisionOrPath,
        run,
    )
}

/// What the positional arguments asked for.
async fn run(args: Args) -> Result<Outcome> {
    // The cluster the flags name is discovered while the revision is read (a range of
    // revisions needs no cluster at all).
    let range = args
        .source
        .revision
        .as_deref()
        .is_some_and(|r| r.contains(".."));
    let early = EarlyDiscovery::start(&args.connection, !range && !args.apps.all, None).await;
    let mut source = args.source.resolve(args.working_tree)?;
    let (tree, range) = match &source.selection {
        Selection::Range(a, b) => {
            let old = read_tree(&source.repo, &TreeSpec::Revision(a.clone()), &source.root)?;
            let new = read_tree(&source.repo, &TreeSpec::Revision(b.clone()), &source.root)?;
            (new, Some(old))
        }
        Selection::One(spec) => (read_tree(&source.repo, spec, &source.root)?, None),
    };
    source.repo.forget_checked_blobs();
    let request = targets::Request {
        list: &args.apps,
        app: args.app.name.as_deref(),
        path_given: source.path_given,
        root: &source.root,
        default_app: app_name_for_path(&source.root, &source.repo_name()),
        contexts: &args.connection.contexts,
        chart: args.source.remote_chart()?,
    };
    let destinations = targets::select(
        &request,
        &tree.snapshot,
        (&source.repo_label(), &tree.label),
    )?;
    let layout = match args.output.format {
        Some(Format::Json) => Layout::Items,
        Some(Format::Name) => Layout::Lines,
        _ => Layout::Sections,
    };
    match &range {
        Some(old) => compute::between_revisions(&args, old, &tree, destinations, layout),
        None => compute::on_clusters(&args, &tree, &destinations, early, layout).await,
    }
}
