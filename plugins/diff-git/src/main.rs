//! `kubectl diff-git`: what a git revision would change in the cluster, or what changed
//! between two revisions. A thin command line over the `gitops` library.

mod external;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use gitops::compare::Conflict;
use gitops::diff::{ChangeSet, normalise};
use gitops::kubeconfig::{self, Environment};
use gitops::load::{self, LoadedTree, TreeSpec};
use gitops::objects::BuiltinScopes;
use gitops::release::store::ReleaseStore;
use gitops::render::RenderOptions;
use gitops::sync::{app_name_for_path, flow};
use gitops_cli::destinations::{self, AppOnContext, Place, Row, Section};
use gitops_cli::targets::{self, Target};
use gitops_cli::{
    AppListArgs, AppNameArgs, ConnectionArgs, EarlyDiscovery, Outcome, OutputArgs, Selection,
    SourceArgs, UnifiedArgs, diff_view,
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
    let mut early = EarlyDiscovery::start(&args.connection, !range && !args.apps.all, None).await;
    let source = args.source.resolve(args.working_tree)?;
    let (tree, range) = match &source.selection {
        Selection::Range(a, b) => {
            let old = load::read_tree(&source.repo, &TreeSpec::Revision(a.clone()), &source.root)?;
            let new = load::read_tree(&source.repo, &TreeSpec::Revision(b.clone()), &source.root)?;
            (new, Some(old))
        }
        Selection::One(spec) => (load::read_tree(&source.repo, spec, &source.root)?, None),
    };
    let request = targets::Request {
        list: &args.apps,
        app: args.app.name.as_deref(),
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
    let json = args.output.format == Some(Format::Json);
    if let Some(old) = &range {
        // No cluster: one section per app, whatever its contexts.
        destinations.dedup_by(|a, b| a.app == b.app);
        let mut compared: Vec<Compared> = destinations
            .iter()
            .map(|target| {
                let namespace = target
                    .namespace(&args.connection)
                    .unwrap_or_else(|| offline_namespace(&args.connection));
                let computed = between_trees(old, &tree, target, &namespace, &args);
                Compared::new(&args, target, "-".into(), namespace, computed)
            })
            .collect();
        if compared.len() > 1 {
            return destinations::report(&compared, json);
        }
        return match compared.pop() {
            Some(one) => alone(&args, &one.computed?),
            None => Ok(Outcome::Clean),
        };
    }
    if let [target] = destinations.as_slice() {
        let (_, _, computed) = against_cluster_of(&args, &tree, target, early.take()).await?;
        return alone(&args, &computed);
    }
    if let Some(early) = early {
        early.cancel();
    }
    let work = destinations.iter().map(|target| async {
        match against_cluster_of(&args, &tree, target, None).await {
            Ok((context, namespace, computed)) => {
                Compared::new(&args, target, context, namespace, Ok(computed))
            }
            // The context and namespace asked for, since none was reached.
            Err(error) => Compared::new(
                &args,
                target,
                target.context.clone().unwrap_or_else(|| "-".into()),
                target
                    .namespace(&args.connection)
                    .unwrap_or_else(|| "-".into()),
                Err(error),
            ),
        }
    });
    destinations::run(work, json).await
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
        |namespace| load::rendered(&snapshot, &render_options(args, target, namespace)),
    )
    .await?;
    let context = connection
        .context
        .clone()
        .unwrap_or_else(|| "in-cluster".into());
    let namespace = connection.namespace.clone();
    let (_, desired) = rendered?.keyed(&namespace, &cluster)?;
    let app = &target.app;
    let store = ReleaseStore::new(cluster.client().clone(), &namespace);
    let preview = flow::preview(&cluster, &store, app, desired).await?;
    let mut warnings = Vec::new();
    if preview.parent_forbidden {
        warnings.push(format!(
            "warning: cannot read app {app}'s ApplySet in namespace {namespace} (forbidden), so objects a sync would prune are not shown"
        ));
    }
    let flow::Preview {
        mut changes,
        conflicts,
        missing_namespaces,
        ..
    } = preview;
    if !args.output.show_secrets {
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
    load::render_options(
        &target.app,
        namespace,
        target.values(&args.source.values),
        &target.set(&args.source.set),
    )
}

impl Computed {
    /// What stderr gets before the diff: the comparison's warnings, the namespaces that do
    /// not exist, the fields another manager owns.
    fn warn(&self, err: &mut dyn Write) -> std::io::Result<()> {
        for warning in &self.warnings {
            writeln!(err, "{warning}")?;
        }
        diff_view::missing_namespace_warnings(err, &self.missing_namespaces);
        diff_view::conflict_warnings(err, &self.conflicts);
        Ok(())
    }

    fn view<'a>(&'a self, args: &Args) -> diff_view::View<'a> {
        diff_view::View {
            changes: &self.changes,
            before: &self.before,
            after: &self.after,
            conflicts: &self.conflicts,
            context: args.unified.lines,
            color: args.output.color.enabled(),
        }
    }

    fn outcome(&self) -> Outcome {
        match self.changes.has_differences() {
            true => Outcome::Differences,
            false => Outcome::Clean,
        }
    }
}

/// One destination's comparison, alone on the command line: no heading, no summary, and
/// its error is the run's.
fn alone(args: &Args, computed: &Computed) -> Result<Outcome> {
    computed.warn(&mut std::io::stderr())?;
    show(args, computed, &mut std::io::stdout().lock())?;
    Ok(computed.outcome())
}

/// The diff in the format asked for; without -o, `KUBECTL_EXTERNAL_DIFF` (as kubectl
/// diff) or the colored unified diff.
fn show(args: &Args, computed: &Computed, out: &mut dyn Write) -> Result<()> {
    let view = computed.view(args);
    match args.output.format {
        Some(Format::Json) => diff_view::json(out, &view)?,
        Some(Format::Name) => diff_view::names(out, &view)?,
        Some(Format::Markdown) => diff_view::markdown(out, &view)?,
        None => match std::env::var("KUBECTL_EXTERNAL_DIFF")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(command) => external::run(&command, &view)?,
            None => diff_view::unified(out, &view)?,
        },
    }
    Ok(())
}

/// One destination of several: where it is, and what differs there or why that is unknown.
struct Compared<'a> {
    args: &'a Args,
    place: AppOnContext,
    computed: Result<Computed>,
}

impl<'a> Compared<'a> {
    fn new(
        args: &'a Args,
        target: &Target,
        context: String,
        namespace: String,
        computed: Result<Computed>,
    ) -> Compared<'a> {
        let place = AppOnContext {
            app: target.app.clone(),
            context,
            namespace,
        };
        Compared {
            args,
            place,
            computed,
        }
    }
}

impl Section for Compared<'_> {
    fn place(&self) -> Place<'_> {
        Place::App(&self.place)
    }

    fn error(&self) -> Option<String> {
        self.computed.as_ref().err().map(targets::one_line)
    }

    fn warn(&self, err: &mut dyn Write) -> std::io::Result<()> {
        match &self.computed {
            Ok(computed) => computed.warn(err),
            Err(_) => Ok(()),
        }
    }

    fn print(&self, out: &mut dyn Write) -> Result<()> {
        match &self.computed {
            Ok(computed) => show(self.args, computed, out),
            Err(_) => Ok(()),
        }
    }

    /// The destination, then the document `-o json` prints for one.
    fn item(&self) -> serde_json::Value {
        let AppOnContext {
            app,
            context,
            namespace,
        } = &self.place;
        let mut item = serde_json::json!({
            "app": app, "context": context, "namespace": namespace, "error": self.error(),
        });
        if let (Some(item), Ok(computed)) = (item.as_object_mut(), &self.computed)
            && let serde_json::Value::Object(doc) = diff_view::document(&computed.view(self.args))
        {
            item.extend(doc);
        }
        item
    }

    fn rows(&self) -> Vec<Row> {
        let result = match &self.computed {
            Ok(computed) if computed.changes.has_differences() => {
                Ok(gitops::diff::summary_line(&computed.changes.summary()))
            }
            Ok(_) => Ok("no differences".to_string()),
            Err(error) => Err(targets::one_line(error)),
        };
        vec![self.place.row(result)]
    }

    fn outcome(&self) -> Outcome {
        match &self.computed {
            Ok(computed) => computed.outcome(),
            Err(_) => Outcome::Clean,
        }
    }
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
        let (_, desired) = load::desired_set(&snapshot, &options, namespace, &BuiltinScopes)
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
    if !args.output.show_secrets {
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
