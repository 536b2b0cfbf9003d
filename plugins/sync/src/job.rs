//! What to sync: a git revision, or the manifest of a recorded release.

use anyhow::{Context, Result, bail};
use gitops::app_file::AppSpec;
use gitops::desired;
use gitops::objects::DesiredSet;
use gitops::release::record::{CHART_KEY, COMMITS_LISTED, JSONNET_KEY};
use gitops::release::rollback;
use gitops::render::{Capabilities, JsonnetOptions, RenderOptions, Renderer};
use gitops::source::{CommitInfo, LoadedTree, TreeSpec, read_tree};
use gitops::sync::flow::SyncJob;
use gitops::sync::{self, Guard, PruneRules, SyncOptions, app_name_for_path};
use gitops_cli::targets::{self, Target};
use gitops_cli::{ResolvedSource, Selection};

use crate::Args;
use crate::session::Session;

/// One sync's input, and how its diff names the after side.
pub struct Job<'s> {
    pub sync: SyncJob,
    /// The after side's label in the diff.
    pub label: String,
    /// The revision it syncs, to list the commits its release covers once the deployed
    /// release's commit is known.
    pub source: Option<&'s Source>,
    /// A line for stderr before the preview (which release a rollback goes to, and why).
    pub note: Option<String>,
    /// Create the app's namespace when it is missing and the objects do not hold it.
    pub create_namespace: bool,
}

impl<'s> Job<'s> {
    fn new(
        app: String,
        desired: DesiredSet,
        options: SyncOptions,
        (prune, guard): (bool, Guard),
        label: String,
    ) -> Job<'s> {
        Job {
            sync: SyncJob {
                app,
                desired,
                options,
                prune,
                record_manifest: None,
                guard,
            },
            label,
            source: None,
            note: None,
            create_namespace: false,
        }
    }
}

/// The app name: `--app`, else derived from the path (which needs the repository).
pub fn app_name(args: &Args) -> Result<String> {
    if let Some(app) = &args.app.name {
        return Ok(app.clone());
    }
    let source = args
        .source
        .resolve(false)
        .context("give the app's name with --app")?;
    Ok(app_name_for_path(&source.root, &source.repo_name()))
}

/// The revision to sync, read once for every destination.
pub struct Source {
    resolved: ResolvedSource,
    spec: TreeSpec,
    tree: LoadedTree,
}

impl Source {
    pub fn read(args: &Args) -> Result<Source> {
        let mut resolved = args.source.resolve(false)?;
        let spec = match &resolved.selection {
            Selection::One(spec) => spec.clone(),
            Selection::Range(a, b) => {
                bail!("sync applies one revision; {a}..{b} is a range (diff-git compares ranges)")
            }
        };
        let tree = read_tree(&resolved.repo, &spec, &resolved.root)?;
        resolved.repo.forget_checked_blobs();
        Ok(Source {
            resolved,
            spec,
            tree,
        })
    }

    /// The commits a release of this revision covers after the deployed release's
    /// `previous` commit, newest first (as `git log PREVIOUS..COMMIT`; just this commit
    /// when there is no previous one, it is this one or later, or git does not know it),
    /// at most [`COMMITS_LISTED`], and how many more there are.
    pub fn commits_since(&self, previous: Option<&CommitInfo>) -> (Vec<CommitInfo>, usize) {
        let Some(commit) = self.tree.commit() else {
            return (Vec::new(), 0);
        };
        let mut commits = previous
            .filter(|p| p.id != commit.id)
            .and_then(|p| self.resolved.repo.commits_between(&p.id, &commit.id).ok())
            .filter(|commits| !commits.is_empty())
            .unwrap_or_else(|| vec![commit.clone()]);
        let left_out = commits.len().saturating_sub(COMMITS_LISTED);
        commits.truncate(COMMITS_LISTED);
        (commits, left_out)
    }

    /// Whether `target`'s path is a Helm chart, which renders with its destination's
    /// `.Capabilities`, so only once the cluster is discovered.
    pub fn renders_with_helm(&self, target: &Target) -> bool {
        target.chart.is_some() || gitops::render::is_chart_at(&self.tree.snapshot, &target.root)
    }

    /// The apps and clusters the flags and the app list ask for.
    pub fn destinations(&self, args: &Args) -> Result<Vec<Target>> {
        self.destinations_in(args, &self.tree)
    }

    /// The revision's whole tree.
    pub fn snapshot(&self) -> &gitops::source::Snapshot {
        &self.tree.snapshot
    }

    /// The same repository and path at another revision (the commit a deployed release
    /// came from).
    pub fn tree_at(&self, revision: &str) -> Result<LoadedTree> {
        let spec = TreeSpec::Revision(revision.to_string());
        Ok(read_tree(&self.resolved.repo, &spec, &self.resolved.root)?)
    }

    /// [`Source::destinations`] as `tree`'s app list has them.
    pub fn destinations_in(&self, args: &Args, tree: &LoadedTree) -> Result<Vec<Target>> {
        let request = targets::Request {
            list: &args.apps,
            app: args.app.name.as_deref(),
            path_given: self.resolved.path_given,
            root: &self.resolved.root,
            default_app: app_name_for_path(&self.resolved.root, &self.resolved.repo_name()),
            contexts: &args.connection.contexts,
            chart: args.source.remote_chart()?,
        };
        targets::select(
            &request,
            &tree.snapshot,
            (&self.resolved.repo_label(), &tree.label),
        )
    }
}

/// The revision of the repository, for the one app the flags name (`--watch`).
pub fn from_git<'s>(args: &Args, session: &Session, source: &'s Source) -> Result<Job<'s>> {
    match source.destinations(args)?.as_slice() {
        [target] => from_tree(args, session, source, target),
        _ => bail!("--watch follows one app on one cluster"),
    }
}

/// One app of the revision, rendered for the session's cluster and namespace.
pub fn from_tree<'s>(
    args: &Args,
    session: &Session,
    source: &'s Source,
    target: &Target,
) -> Result<Job<'s>> {
    let cluster = source
        .renders_with_helm(target)
        .then(|| {
            session
                .cluster
                .capabilities(args.source.kube_version.is_some())
        })
        .transpose()?;
    let rendered = render(
        args,
        source,
        target,
        &session.connection.namespace,
        cluster.as_ref(),
    )?;
    from_rendered(args, session, source, target, rendered)
}

/// An app rendered, its objects not yet keyed, and the chart it came from if any.
pub struct Rendered {
    objects: desired::Rendered,
    chart: Option<gitops::render::ChartInfo>,
    /// The Jsonnet options it was rendered with, recorded so drift renders it alike.
    jsonnet: Option<JsonnetOptions>,
    /// The digest of the files that alone decide its objects, if they do.
    source_digest: Option<String>,
}

/// How `target` renders for `namespace`; a chart sees `cluster`'s `.Capabilities`.
fn render_options(
    args: &Args,
    target: &Target,
    namespace: &str,
    cluster: Option<&Capabilities>,
) -> RenderOptions {
    let mut options = gitops::render::render_options(
        &target.app,
        namespace,
        target.values(&args.source.values),
        &target.set(&args.source.set),
    );
    options.jsonnet = target.jsonnet(&args.source.jsonnet());
    options.helm.remote = target.chart.clone();
    args.source.capabilities(&mut options);
    if let Some(cluster) = cluster {
        options.helm.add_cluster(cluster);
    }
    options
}

/// The digest of the files that alone decide `target`'s objects, if they do (see
/// [`gitops::render::source_digest`]): known before rendering them.
pub fn source_digest(
    args: &Args,
    source: &Source,
    target: &Target,
    namespace: &str,
) -> Option<String> {
    let snapshot = target.snapshot(&source.tree.snapshot);
    gitops::render::source_digest(&snapshot, &render_options(args, target, namespace, None))
}

/// One app of the revision rendered for `namespace`; a chart sees `cluster`'s
/// `.Capabilities` (see [`Source::renders_with_helm`]). The rest needs no cluster.
pub fn render(
    args: &Args,
    source: &Source,
    target: &Target,
    namespace: &str,
    cluster: Option<&Capabilities>,
) -> Result<Rendered> {
    let snapshot = target.snapshot(&source.tree.snapshot);
    let options = render_options(args, target, namespace, cluster);
    let objects = desired::rendered(&snapshot, &options)?;
    let jsonnet = (objects.renderer == Renderer::Jsonnet && !options.jsonnet.is_empty())
        .then_some(options.jsonnet.clone());
    Ok(Rendered {
        objects,
        chart: gitops::render::chart_info(&snapshot, &options)?,
        jsonnet,
        source_digest: gitops::render::source_digest(&snapshot, &options),
    })
}

/// [`from_tree`] for an app [`render`]ed already (for the session's namespace).
pub fn from_rendered<'s>(
    args: &Args,
    session: &Session,
    source: &'s Source,
    target: &Target,
    rendered: Rendered,
) -> Result<Job<'s>> {
    let guard = Guard {
        rules: rules(args, target.spec.as_ref()),
        empty_render: rendered.objects.nothing_rendered().map(str::to_string),
    };
    let (renderer, desired) = rendered
        .objects
        .keyed(&session.connection.namespace, &session.cluster)?;
    let mut sync_options = revision_options(args, session, source, target, renderer);
    sync_options.source_digest = rendered.source_digest;
    if let Some(chart) = rendered.chart {
        sync_options
            .extra
            .insert(CHART_KEY.to_string(), serde_json::to_value(chart)?);
    }
    if let Some(jsonnet) = rendered.jsonnet {
        sync_options
            .extra
            .insert(JSONNET_KEY.to_string(), serde_json::to_value(jsonnet)?);
    }
    let mut job = Job::new(
        target.app.clone(),
        desired,
        sync_options,
        (prune(args, target.spec.as_ref()), guard),
        source.tree.label.clone(),
    );
    job.source = Some(source);
    job.create_namespace = args.create_namespace.for_app(target.spec.as_ref());
    Ok(job)
}

/// What a sync of `target` at the source's revision records, rendered by `renderer`.
pub fn revision_options(
    args: &Args,
    session: &Session,
    source: &Source,
    target: &Target,
    renderer: Renderer,
) -> SyncOptions {
    let commit = source.tree.commit().cloned();
    let description = match (&source.spec, &commit) {
        (TreeSpec::Revision(rev), Some(c)) => {
            format!("sync of {rev} ({} {})", c.short_id, c.subject)
        }
        _ => "sync".to_string(),
    };
    let mut options = base_options(args, session, target.spec.as_ref());
    options.description = description;
    options.repo = Some(source.resolved.repo_label());
    options.path = target.root.clone();
    options.renderer = renderer.to_string();
    options.commit = commit;
    options
}

/// The manifest stored in a release: `revision`, else the one [`rollback::choose`]
/// chooses (the newest earlier deployed release whose objects differ from the current
/// one's).
pub async fn from_release(
    args: &Args,
    session: &Session,
    revision: Option<u32>,
) -> Result<Job<'static>> {
    let app = app_name(args)?;
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    for entry in session.store.list(&app).await? {
        match entry {
            Ok(record) => records.push(record),
            Err(bad) => unreadable.push(bad),
        }
    }
    // Asked for by number, an unreadable record says why, rather than seeming absent.
    if let Some(bad) = revision.and_then(|n| unreadable.iter().find(|u| u.revision == Some(n))) {
        bail!("{bad}");
    }
    let chosen = rollback::choose(&app, &session.connection.namespace, &records, revision)?;
    let target = chosen.release;
    let sync = sync::rollback_job(
        &app,
        target,
        base_options(args, session, None),
        rules(args, None),
    )?;
    Ok(Job {
        sync,
        label: format!("release-{}", target.revision),
        source: None,
        note: Some(format!(
            "rolling back to release {} ({})",
            target.revision, chosen.reason
        )),
        create_namespace: args.create_namespace.enabled,
    })
}

/// `--prune`, else the app list's `prune:`.
pub fn prune(args: &Args, spec: Option<&AppSpec>) -> bool {
    args.prune || spec.and_then(|s| s.prune).unwrap_or(false)
}

/// What the sync may prune beyond the members: the flags, else the app list's fields.
pub fn rules(args: &Args, spec: Option<&AppSpec>) -> PruneRules {
    PruneRules {
        prune_crds: args.prune_crds.for_app(spec),
        prune_cascade: args.prune_cascade,
        allow_empty: args.allow_empty || spec.and_then(|s| s.allow_empty).unwrap_or(false),
    }
}

/// Options shared by every kind of job.
pub fn base_options(args: &Args, session: &Session, spec: Option<&AppSpec>) -> SyncOptions {
    SyncOptions {
        force_conflicts: args.force_conflicts,
        adopt: args.adopt.adopt,
        wait: args.change.wait_for(spec),
        timeout: args.change.timeout_for(spec),
        no_hooks: args.no_hooks,
        history_max: args.change.history_max,
        ..SyncOptions::by(session.connection.actor())
    }
}
