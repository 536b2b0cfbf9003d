//! `kubectl diff-git`: what a git revision would change in the cluster, or what changed
//! between two revisions. A thin command line over the `gitops` library.

mod external;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use gitops::apply::applyset;
use gitops::compare::{Conflict, against_cluster};
use gitops::diff::{ChangeSet, NormaliseOptions, normalise};
use gitops::kubeconfig::{self, Environment};
use gitops::live::LiveCluster;
use gitops::load::{self, LoadedTree, TreeSpec};
use gitops::objects::BuiltinScopes;
use gitops::release::store::ReleaseStore;
use gitops::render::RenderOptions;
use gitops::sync::{self, app_name_for_path};
use gitops_cli::{ColorWhen, ConnectionArgs, Outcome, Selection, SourceArgs, diff_view};

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
    /// Diff the files on disk, uncommitted changes included, instead of a revision.
    #[arg(long)]
    working_tree: bool,
    /// The app, for a path synced with `kubectl sync`: its ApplySet's members that the
    /// revision no longer has show as removed (default: derived from the path, as sync does).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Output format: a colored unified diff (default), json, name or markdown.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// When to color the diff.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
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

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>(
        "kubectl-diff_git",
        gitops_cli::completion::FirstPositional::RevisionOrPath,
        run,
    )
}

/// What the positional arguments asked for.
async fn run(args: Args) -> Result<Outcome> {
    let source = args.source.resolve(args.working_tree)?;
    let render_options = RenderOptions {
        kubectl: load::kubectl_binary(),
    };
    let mut conflicts: Vec<Conflict> = Vec::new();
    let (mut changes, before_label, after_label) = match &source.selection {
        Selection::Range(a, b) => {
            let namespace = offline_namespace(&args.connection);
            let old = load::read_tree(&source.repo, &TreeSpec::Revision(a.clone()), &source.root)?;
            let new = load::read_tree(&source.repo, &TreeSpec::Revision(b.clone()), &source.root)?;
            let changes = between_trees(&old, &new, &render_options, &namespace)?;
            (changes, old.label, new.label)
        }
        Selection::One(spec) => {
            let tree = load::read_tree(&source.repo, spec, &source.root)?;
            let connection = args.connection.connect().await?;
            let cluster = LiveCluster::connect(&connection).await?;
            let (_, desired) = load::desired_set(
                &tree.snapshot,
                &render_options,
                &connection.namespace,
                &cluster,
            )?;
            let app = args
                .app
                .clone()
                .unwrap_or_else(|| app_name_for_path(&source.root, &source.repo_name()));
            let parent = match applyset::read(&cluster, &connection.namespace, &app).await {
                Ok(parent) => parent,
                Err(error) if error.is_forbidden() => {
                    eprintln!(
                        "warning: cannot read app {app}'s ApplySet in namespace {} (forbidden), so objects a sync would prune are not shown",
                        connection.namespace
                    );
                    None
                }
                Err(error) => return Err(error.into()),
            };
            let changes = if parent.is_some() {
                // A synced app: show exactly what `kubectl sync --prune` would do, removals included.
                let store = ReleaseStore::new(cluster.client().clone(), &connection.namespace);
                let known = sync::known_fingerprints(&store, &app).await;
                let plan = sync::plan_with_parent(
                    &cluster,
                    parent,
                    &app,
                    &connection.namespace,
                    desired,
                    true,
                    known.as_ref(),
                )
                .await?;
                diff_view::missing_namespace_warnings(&plan.comparison.missing_namespaces);
                conflicts = plan.comparison.conflicts.clone();
                plan.change_set()
            } else {
                // Never synced: compare without the ApplySet bookkeeping sync would add.
                let comparison =
                    against_cluster(&cluster, &desired, &NormaliseOptions::ignoring_applyset())
                        .await?;
                diff_view::missing_namespace_warnings(&comparison.missing_namespaces);
                conflicts = comparison.conflicts;
                comparison.changes
            };
            (changes, "live".to_string(), tree.label)
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
    let view = diff_view::View {
        changes: &changes,
        before: &before_label,
        after: &after_label,
        conflicts: &conflicts,
        context: args.unified,
        color: args.color.enabled(),
    };
    diff_view::conflict_warnings(&conflicts);
    match args.output {
        Some(Format::Json) => diff_view::json(&view)?,
        Some(Format::Name) => diff_view::names(&view)?,
        Some(Format::Markdown) => diff_view::markdown(&view)?,
        None => match std::env::var("KUBECTL_EXTERNAL_DIFF")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(command) => external::run(&command, &view)?,
            None => diff_view::unified(&view)?,
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
