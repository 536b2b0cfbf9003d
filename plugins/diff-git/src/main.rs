//! `kubectl diff-git`: what a git revision would change in the cluster, or what changed
//! between two revisions. A thin command line over the `gitops` library.

mod external;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use gitops::apply::applyset;
use gitops::compare::{Conflict, against_cluster};
use gitops::desired;
use gitops::diff::{ChangeSet, NormaliseOptions, normalise};
use gitops::kubeconfig::{self, Environment};
use gitops::objects::BuiltinScopes;
use gitops::release::store::ReleaseStore;
use gitops::render::{self, RenderOptions};
use gitops::source::{LoadedTree, TreeSpec, read_tree};
use gitops::sync::{self, app_name_for_path};
use gitops_cli::targets::{self, Target};
use gitops_cli::{
    AppListArgs, ColorWhen, ConnectionArgs, EarlyDiscovery, Outcome, Selection, SourceArgs,
    diff_view,
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
    /// The app, for a path synced with `kubectl sync`: its ApplySet's members that the
    /// revision no longer has show as removed; a Helm chart's release name (default:
    /// derived from the path, as sync does).
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
    // The cluster the flags name is discovered while the revision is read (a range of
    // revisions needs no cluster at all).
    let range = args
        .source
        .revision
        .as_deref()
        .is_some_and(|r| r.contains(".."));
    let mut early = EarlyDiscovery::start(&args.connection, !range && !args.apps.all, None).await;
    let source = args.source.resolve(args.working_tree)?;
    let (tree, range) = match &source.selection {
        Selection::Range(a, b) => {
            let old = read_tree(&source.repo, &TreeSpec::Revision(a.clone()), &source.root)?;
            let new = read_tree(&source.repo, &TreeSpec::Revision(b.clone()), &source.root)?;
            (new, Some(old))
        }
        Selection::One(spec) => (read_tree(&source.repo, spec, &source.root)?, None),
    };
    let request = targets::Request {
        list: &args.apps,
        app: args.app.as_deref(),
        path_given: source.path_given,
        root: &source.root,
        default_app: app_name_for_path(&source.root, &source.repo_name()),
        contexts: &args.connection.contexts,
    };
    let mut destinations = targets::select(
        &request,
        &tree.snapshot,
        (&source.repo_label(), &tree.label),
    )?;
    if let Some(old) = &range {
        // No cluster: one section per app, whatever its contexts.
        destinations.dedup_by(|a, b| a.app == b.app);
        let several = destinations.len() > 1;
        return report(
            &args,
            destinations
                .iter()
                .map(|target| {
                    let namespace = target
                        .namespace(&args.connection)
                        .unwrap_or_else(|| offline_namespace(&args.connection));
                    let computed = between_trees(old, &tree, target, &namespace, &args);
                    (target, "-".to_string(), namespace, computed)
                })
                .collect(),
            several,
        );
    }
    if let [target] = destinations.as_slice() {
        let computed = against_cluster_of(&args, &tree, target, early.take()).await;
        return match computed {
            Ok((context, namespace, computed)) => report(
                &args,
                vec![(target, context, namespace, Ok(computed))],
                false,
            ),
            Err(error) => Err(error),
        };
    }
    if let Some(early) = early {
        early.cancel();
    }
    let results = futures::future::join_all(
        destinations
            .iter()
            .map(|target| against_cluster_of(&args, &tree, target, None)),
    )
    .await;
    let sections = destinations
        .iter()
        .zip(results)
        .map(|(target, result)| match result {
            Ok((context, namespace, computed)) => (target, context, namespace, Ok(computed)),
            Err(error) => (
                target,
                target.context.clone().unwrap_or_else(|| "-".into()),
                target
                    .namespace(&args.connection)
                    .unwrap_or_else(|| "-".into()),
                Err(error),
            ),
        })
        .collect();
    report(&args, sections, true)
}

/// One destination's comparison, ready to print.
struct Computed {
    changes: ChangeSet,
    conflicts: Vec<Conflict>,
    missing_namespaces: Vec<String>,
    /// Said on stderr before the diff.
    warnings: Vec<String>,
    before: String,
    after: String,
}

/// The revision against one cluster: (context, namespace, what differs).
async fn against_cluster_of(
    args: &Args,
    tree: &LoadedTree,
    target: &Target,
    early: Option<EarlyDiscovery>,
) -> Result<(String, String, Computed)> {
    let snapshot = target.snapshot(&tree.snapshot);
    let (connection, cluster, rendered) = EarlyDiscovery::discover_while(
        early,
        &args.connection,
        &target.options(&args.connection),
        None,
        |namespace| desired::rendered(&snapshot, &render_options(args, target, namespace)),
    )
    .await?;
    let context = connection
        .context
        .clone()
        .unwrap_or_else(|| "in-cluster".into());
    let namespace = connection.namespace.clone();
    let (_, desired) = rendered?.keyed(&namespace, &cluster)?;
    let app = &target.app;
    let mut warnings = Vec::new();
    // The records are read alongside the parent (they matter only if the parent exists),
    // and the objects' kinds are listed meanwhile: the LISTs need neither.
    let store = ReleaseStore::new(cluster.client().clone(), &namespace);
    let reads = cluster.shared_reads();
    let members = applyset::ApplySetId::for_app(app, &namespace).member_selector();
    let (parent, known, ()) = futures::join!(
        applyset::read(&cluster, &namespace, app),
        sync::known_fingerprints(&store, app),
        cluster.prefetch(desired.keys(), Some(&members))
    );
    let parent = match parent {
        Ok(parent) => parent,
        Err(error) if error.is_forbidden() => {
            warnings.push(format!(
                "warning: cannot read app {app}'s ApplySet in namespace {namespace} (forbidden), so objects a sync would prune are not shown"
            ));
            None
        }
        Err(error) => return Err(error.into()),
    };
    let (mut changes, conflicts, missing_namespaces) = if parent.is_some() {
        // A synced app: show exactly what `kubectl sync --prune` would do, removals included.
        let plan = sync::plan_with_parent(
            &cluster,
            parent,
            app,
            &namespace,
            desired,
            sync::PlanOptions {
                prune: true,
                known: known.as_ref(),
                ..Default::default()
            },
        )
        .await?;
        let changes = plan.change_set();
        (
            changes,
            plan.comparison.conflicts,
            plan.comparison.missing_namespaces,
        )
    } else {
        // Never synced: compare without the ApplySet bookkeeping sync would add.
        let comparison =
            against_cluster(&cluster, &desired, &NormaliseOptions::ignoring_applyset()).await?;
        (
            comparison.changes,
            comparison.conflicts,
            comparison.missing_namespaces,
        )
    };
    drop(reads);
    if !args.show_secrets {
        changes.mask_secrets();
    }
    Ok((
        context,
        namespace,
        Computed {
            changes,
            conflicts,
            missing_namespaces,
            warnings,
            before: "live".into(),
            after: tree.label.clone(),
        },
    ))
}

/// The renderers' settings for one destination: a chart's release is the app, its values
/// the flags', else the app list's.
fn render_options(args: &Args, target: &Target, namespace: &str) -> RenderOptions {
    render::render_options(
        &target.app,
        namespace,
        target.values(&args.source.values),
        &target.set(&args.source.set),
    )
}

/// Prints each destination's section (headed when there are `several`), then a summary
/// row each; the outcome is the worst of them.
fn report(
    args: &Args,
    sections: Vec<(&Target, String, String, Result<Computed>)>,
    several: bool,
) -> Result<Outcome> {
    let mut outcome = Outcome::Clean;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    for (target, context, namespace, computed) in sections {
        if several && args.output != Some(Format::Json) {
            targets::heading(&mut out, &target.app, &context, &namespace)?;
        }
        let computed = match computed {
            Ok(computed) => computed,
            Err(error) if !several => return Err(error),
            Err(error) => {
                let line = targets::one_line(&error);
                writeln!(
                    err,
                    "error: app {} on context {context}: {line}",
                    target.app
                )?;
                if args.output == Some(Format::Json) {
                    items.push(serde_json::json!({
                        "app": target.app, "context": context, "namespace": namespace, "error": line,
                    }));
                }
                rows.push(targets::Row {
                    app: target.app.clone(),
                    context,
                    namespace,
                    result: Err(line),
                });
                continue;
            }
        };
        for warning in &computed.warnings {
            writeln!(err, "{warning}")?;
        }
        diff_view::missing_namespace_warnings(&mut err, &computed.missing_namespaces);
        diff_view::conflict_warnings(&mut err, &computed.conflicts);
        if computed.changes.has_differences() {
            outcome = Outcome::Differences;
        }
        let view = diff_view::View {
            changes: &computed.changes,
            before: &computed.before,
            after: &computed.after,
            conflicts: &computed.conflicts,
            context: args.unified,
            color: args.color.enabled(),
        };
        match args.output {
            Some(Format::Json) if several => {
                let mut item = serde_json::json!({
                    "app": target.app, "context": context, "namespace": namespace, "error": null,
                });
                if let (Some(item), serde_json::Value::Object(doc)) =
                    (item.as_object_mut(), diff_view::document(&view))
                {
                    item.extend(doc);
                }
                items.push(item);
            }
            Some(Format::Json) => diff_view::json(&mut out, &view)?,
            Some(Format::Name) => diff_view::names(&mut out, &view)?,
            Some(Format::Markdown) => diff_view::markdown(&mut out, &view)?,
            None => match std::env::var("KUBECTL_EXTERNAL_DIFF")
                .ok()
                .filter(|v| !v.trim().is_empty())
            {
                Some(command) => external::run(&command, &view)?,
                None => diff_view::unified(&mut out, &view)?,
            },
        }
        rows.push(targets::Row {
            app: target.app.clone(),
            context,
            namespace,
            result: Ok(match computed.changes.has_differences() {
                true => gitops::diff::summary_line(&computed.changes.summary()),
                false => "no differences".to_string(),
            }),
        });
    }
    if several {
        match args.output {
            Some(Format::Json) => {
                serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "items": items }))?;
                writeln!(out)?;
            }
            _ => {
                writeln!(out)?;
                targets::summary(&mut out, &rows)?;
            }
        }
        targets::failed(&rows)?;
    }
    Ok(outcome)
}

/// Two revisions compared without a cluster: each side rendered and keyed with the
/// built-in scopes, then normalised so only what the manifests say is compared.
fn between_trees(
    old: &LoadedTree,
    new: &LoadedTree,
    target: &Target,
    namespace: &str,
    args: &Args,
) -> Result<Computed> {
    let options = render_options(args, target, namespace);
    let side = |tree: &LoadedTree| -> Result<_> {
        let snapshot = target.snapshot(&tree.snapshot);
        let (_, desired) = desired::desired_set(&snapshot, &options, namespace, &BuiltinScopes)
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
    // The two revisions render independently: one on another core.
    let (before, after) = std::thread::scope(|scope| {
        let before = scope.spawn(|| side(old));
        let after = side(new);
        (before.join(), after)
    });
    let before =
        before.map_err(|_| anyhow::anyhow!("rendering revision {} failed", old.label))??;
    let mut changes = ChangeSet::between(before, after?);
    if !args.show_secrets {
        changes.mask_secrets();
    }
    Ok(Computed {
        changes,
        conflicts: Vec::new(),
        missing_namespaces: Vec::new(),
        warnings: Vec::new(),
        before: old.label.clone(),
        after: new.label.clone(),
    })
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
