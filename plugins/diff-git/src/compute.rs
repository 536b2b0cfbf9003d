//! What differs for each destination: a revision against a cluster (through the library's
//! sync preview), or two revisions against each other without one.

use anyhow::{Context, Result};
use gitops::apply::ownership::ForeignOwner;
use gitops::compare::Conflict;
use gitops::desired;
use gitops::diff::{ChangeSet, normalise};
use gitops::hooks::PlannedHook;
use gitops::kubeconfig::{self, Environment};
use gitops::objects::{BuiltinScopes, ObjectKey};
use gitops::release::store::ReleaseStore;
use gitops::render::{self, RenderOptions};
use gitops::source::LoadedTree;
use gitops::sync::flow;
use gitops_cli::destinations::{self, Layout};
use gitops_cli::targets::Target;
use gitops_cli::{ConnectionArgs, EarlyDiscovery, Outcome};

use crate::Args;
use crate::show::{Compared, alone};

/// Two revisions, no cluster: one section per app, whatever its contexts.
pub fn between_revisions(
    args: &Args,
    old: &LoadedTree,
    new: &LoadedTree,
    mut targets: Vec<Target>,
    layout: Layout,
) -> Result<Outcome> {
    targets.dedup_by(|a, b| a.app == b.app);
    let mut compared: Vec<Compared> = targets
        .iter()
        .map(|target| {
            let namespace = target
                .namespace(&args.connection)
                .unwrap_or_else(|| offline_namespace(&args.connection));
            let computed = between_trees(old, new, target, &namespace, args);
            Compared::new(args, target, "-".into(), namespace, computed)
        })
        .collect();
    if compared.len() > 1 {
        return destinations::report(&compared, layout);
    }
    match compared.pop() {
        Some(one) => alone(args, &one.computed?),
        None => Ok(Outcome::Clean),
    }
}

/// The revision against each destination's cluster: one alone (its error is the run's),
/// several at once, each in its section.
pub async fn on_clusters(
    args: &Args,
    tree: &LoadedTree,
    targets: &[Target],
    early: Option<EarlyDiscovery>,
    layout: Layout,
) -> Result<Outcome> {
    if let [target] = targets {
        let (_, _, computed) = against_cluster_of(args, tree, target, early).await?;
        return alone(args, &computed);
    }
    if let Some(early) = early {
        early.cancel();
    }
    let work = targets.iter().map(|target| async {
        match against_cluster_of(args, tree, target, None).await {
            Ok((context, namespace, computed)) => {
                Compared::new(args, target, context, namespace, Ok(computed))
            }
            // The context and namespace asked for, since none was reached.
            Err(error) => Compared::new(
                args,
                target,
                target.context.clone().unwrap_or_else(|| "-".into()),
                target
                    .namespace(&args.connection)
                    .unwrap_or_else(|| "-".into()),
                Err(error),
            ),
        }
    });
    destinations::run(work, layout).await
}

/// One destination's comparison, ready to print.
pub struct Computed {
    pub changes: ChangeSet,
    pub conflicts: Vec<Conflict>,
    /// Existing objects another app or Helm owns, and those nobody does.
    pub owners: Vec<ForeignOwner>,
    pub unowned: Vec<ObjectKey>,
    pub missing_namespaces: Vec<String>,
    /// The hooks a sync would run (listed, never a difference).
    pub hooks: Vec<PlannedHook>,
    /// Said on stderr before the diff.
    pub warnings: Vec<String>,
    pub before: String,
    pub after: String,
}

/// The revision against one cluster: (context, namespace, what differs).
async fn against_cluster_of(
    args: &Args,
    tree: &LoadedTree,
    target: &Target,
    early: Option<EarlyDiscovery>,
) -> Result<(String, String, Computed)> {
    let snapshot = target.snapshot(&tree.snapshot);
    let options = target.options(&args.connection);
    let (connection, cluster, rendered) = if target.chart.is_some()
        || render::is_chart_at(&snapshot, &snapshot.root)
    {
        // A chart sees the cluster's `.Capabilities`, which the discovery gives: it
        // renders once that is in, from the same answer the comparison uses.
        let discovering = EarlyDiscovery::begin(early, &args.connection, &options, None).await?;
        let (connection, cluster) = discovering.discovered().await?;
        let mut render_options = render_options(args, target, &connection.namespace);
        let version_given = render_options.helm.kube_version.is_some();
        render_options
            .helm
            .add_cluster(&cluster.capabilities(version_given)?);
        let rendered = desired::rendered(&snapshot, &render_options);
        (connection, cluster, rendered)
    } else {
        EarlyDiscovery::discover_while(early, &args.connection, &options, None, |namespace| {
            desired::rendered(&snapshot, &render_options(args, target, namespace))
        })
        .await?
    };
    let context = connection
        .context
        .clone()
        .unwrap_or_else(|| "in-cluster".into());
    let namespace = connection.namespace.clone();
    let (_, desired) = rendered?.keyed(&namespace, &cluster)?;
    let app = &target.app;
    let store = ReleaseStore::new(cluster.client().clone(), &namespace);
    let prune_crds = args.prune_crds.for_app(target.spec.as_ref());
    let preview = flow::preview(&cluster, &store, app, desired, prune_crds).await?;
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
        notes,
        warnings: unhonoured,
        owners,
        unowned,
        hooks,
        ..
    } = preview;
    warnings.extend(unhonoured.into_iter().map(|w| format!("warning: {w}")));
    warnings.extend(notes.into_iter().map(|note| format!("note: {note}")));
    if !args.output.show_secrets {
        changes.mask_secrets();
    }
    Ok((
        context,
        namespace,
        Computed {
            changes,
            conflicts,
            owners,
            unowned,
            missing_namespaces,
            hooks,
            warnings,
            before: "live".into(),
            after: tree.label.clone(),
        },
    ))
}

/// The renderers' settings for one destination: a chart's release is the app, its values
/// the flags', else the app list's.
fn render_options(args: &Args, target: &Target, namespace: &str) -> RenderOptions {
    let mut options = gitops::render::render_options(
        &target.app,
        namespace,
        target.values(&args.source.values),
        &target.set(&args.source.set),
    );
    options.jsonnet = target.jsonnet(&args.source.jsonnet());
    options.helm.remote = target.chart.clone();
    args.source.capabilities(&mut options);
    options
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
        // Moved, not copied: at 10,000 objects a copy of each side was a third of the
        // command's memory.
        Ok(desired
            .into_iter()
            .map(|o| {
                let mut object = o.object;
                normalise(&mut object);
                (o.key, object)
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
        owners: Vec::new(),
        unowned: Vec::new(),
        missing_namespaces: Vec::new(),
        hooks: Vec::new(),
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
