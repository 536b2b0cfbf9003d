//! One app on one cluster: lock, plan, show, ask, execute, through the library's sync flow,
//! printing as it goes.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use gitops::cancel::Cancel;
use gitops::compare::Missing;
use gitops::diff::{ChangeSet, Summary, summary_line};
use gitops::hooks::{self, PlannedHook};
use gitops::objects::hook::Occasion;
use gitops::release::record::ReleaseRecord;
use gitops::release::store::ReleaseStore;
use gitops::render::Renderer;
use gitops::sync::app_namespace::{self, Provided};
use gitops::sync::flow::SyncJob;
use gitops::sync::{SyncError, SyncPlan, flow};
use gitops_cli::JsonFormat;
use gitops_cli::diff_view::{self, View};
use gitops_cli::interrupt;
use gitops_cli::{EarlyDiscovery, Outcome, Target};

use crate::job::{self, Job};
use crate::session::{Session, retry_budget};
use crate::{Args, progress, report};

/// The revision's one app on its cluster: the lock is taken (and the parent read) on
/// another task as soon as the cluster is discovered, while the revision renders here.
pub async fn revision(
    args: &Args,
    source: &job::Source,
    target: &Target,
    early: Option<EarlyDiscovery>,
) -> Result<Outcome> {
    // The lock and the plan's reads follow the discovery on another task, while the
    // revision renders here.
    let discovering = EarlyDiscovery::begin(
        early,
        &args.connection,
        &target.options(&args.connection),
        Some(retry_budget(args, target.spec.as_ref())),
    )
    .await?;
    let namespace = discovering.connection.namespace.clone();
    let (app, lock_duration) = (target.app.clone(), args.change.lock_duration);
    // A dry run writes nothing, the Lease included.
    let locks = !args.dry_run;
    let reading = tokio::spawn(async move {
        let (connection, cluster) = discovering.discovered().await?;
        let who = connection.actor();
        let namespace = &connection.namespace;
        let locked = match locks {
            true => match flow::lock(&cluster, namespace, &app, &who, lock_duration).await {
                Ok(locked) => {
                    let store = ReleaseStore::new(cluster.client().clone(), namespace);
                    Some(Ok(locked.read_ahead(&cluster, &store, &app).await))
                }
                Err(error) => Some(Err(error)),
            },
            false => None,
        };
        anyhow::Ok((connection, cluster, locked))
    });
    // A chart renders with the cluster's `.Capabilities`, so once the discovery is in.
    let helm = source.renders_with_helm(target);
    // Files that alone decide the objects, and the same files the deployed release came
    // from, may prove the sync a no-op without rendering them: they render only if not.
    let digest = (!helm && locks)
        .then(|| job::source_digest(args, source, target, &namespace))
        .flatten();
    let early_render =
        (!helm && digest.is_none()).then(|| job::render(args, source, target, &namespace, None));
    let (connection, cluster, locked) = reading
        .await
        .map_err(|stopped| anyhow::anyhow!("reading the app's state stopped: {stopped}"))??;
    let session = Session::new(connection, cluster);
    let locked = match (digest, locked) {
        (Some(digest), Some(Ok(locked))) => {
            match resync_unchanged(args, &session, source, target, locked, digest).await? {
                Ok(outcome) => return Ok(outcome),
                Err(locked) => Some(Ok(locked)),
            }
        }
        (_, locked) => locked,
    };
    let rendered = match early_render {
        Some(rendered) => rendered,
        None if !helm => job::render(args, source, target, &namespace, None),
        None => session
            .cluster
            .capabilities(args.source.kube_version.is_some())
            .map_err(anyhow::Error::from)
            .and_then(|capabilities| {
                job::render(args, source, target, &namespace, Some(&capabilities))
            }),
    };
    let job = rendered.and_then(|r| job::from_rendered(args, &session, source, target, r));
    // Rendering's errors come first; then the lock's (held, an invalid app name).
    let (job, locked) = match (job, locked.transpose()) {
        (Ok(job), Ok(locked)) => (job, locked),
        (Err(error), locked) => {
            if let Ok(Some(locked)) = locked {
                // Best effort: the error that stopped the sync is the one to report.
                let _ = locked.release().await;
            }
            return Err(error);
        }
        // The sync makes the namespace exist first, if it can, and then takes the lock.
        (Ok(job), Err(error)) if namespace_missing(&error) => (job, None),
        (Ok(_), Err(error)) => return Err(error.into()),
    };
    single(args, &session, job, locked).await
}

/// A sync of files the deployed release was rendered from, proven a no-op without
/// rendering them (see [`flow::Locked::resync_unchanged`]), shown as a no-op sync is:
/// `Ok(Err(locked))` when it is not proven, for the caller to render and sync.
async fn resync_unchanged(
    args: &Args,
    session: &Session,
    source: &job::Source,
    target: &Target,
    locked: flow::Locked,
    digest: String,
) -> Result<Result<Outcome, flow::Locked>> {
    let mut options = job::revision_options(args, session, source, target, Renderer::Plain);
    options.source_digest = Some(digest);
    let taken_over = locked.taken_over().cloned();
    let mut display = progress::Display::new(None);
    let executed = locked
        .resync_unchanged(
            &session.cluster,
            &session.store,
            &target.app,
            options,
            |previous| source.commits_since(previous),
            &mut |event| display.event(event),
        )
        .await;
    display.finish();
    let executed = match executed {
        Ok(executed) => executed,
        Err(locked) => return Ok(Err(locked)),
    };
    let mut out = std::io::stdout();
    if let Some(gone) = taken_over {
        eprintln!(
            "took over the lock of app {} from {}, which is no longer running",
            gone.app, gone.holder
        );
    }
    if let Some(record) = &executed.record {
        if args.output.format.is_none() {
            let summary = Summary {
                unchanged: record.counts.unchanged,
                ..Summary::default()
            };
            writeln!(out, "{}", summary_line(&summary))?;
        }
        print_record(args, &mut out, record, executed.recorded)?;
    }
    executed.result.map_err(interrupt::sync_error)?;
    Ok(Ok(Outcome::Clean))
}

/// One app on one cluster, printing as it goes.
pub async fn single(
    args: &Args,
    session: &Session,
    job: Job<'_>,
    locked: Option<flow::Locked>,
) -> Result<Outcome> {
    let mut out = std::io::stdout();
    let done = sync_once(args, session, job, args.yes, &mut out, None, locked).await?;
    if let Some(record) = &done.record {
        print_record(args, &mut out, record, done.recorded)?;
    }
    done.result?;
    match done.dry_run {
        Some(dry_run) => {
            if args.output.format == Some(JsonFormat::Json) {
                serde_json::to_writer_pretty(&mut out, &dry_run.document)?;
                writeln!(out)?;
            }
            Ok(dry_run.outcome())
        }
        None => Ok(Outcome::Clean),
    }
}

/// The release a sync left; `recorded` false for a no-op sync (then it is the current
/// release, with what this sync found).
pub fn print_record(
    args: &Args,
    out: &mut dyn Write,
    record: &ReleaseRecord,
    recorded: bool,
) -> Result<()> {
    match args.output.format {
        Some(JsonFormat::Json) => report::json(out, record, recorded)?,
        None => report::table(out, record, recorded)?,
    }
    Ok(())
}

/// How a sync ended: the record it left (shown before an error, which it explains), and
/// the result.
pub struct Done {
    pub record: Option<ReleaseRecord>,
    /// Whether `record` is a new release (not for a no-op sync).
    pub recorded: bool,
    pub result: Result<()>,
    /// For --dry-run: what would change.
    pub dry_run: Option<DryRun>,
}

/// What a --dry-run found.
pub struct DryRun {
    pub changes: usize,
    /// `-o json`'s document: the app, where it is, and diff-git's document of the changes.
    pub document: serde_json::Value,
}

impl DryRun {
    /// As diff-git's: 1 when the sync would change something, so CI can gate on it.
    pub fn outcome(&self) -> Outcome {
        match self.changes {
            0 => Outcome::Clean,
            _ => Outcome::Differences,
        }
    }
}

/// One sync, start to finish: lock, plan, show, confirm, execute. The preview goes to
/// `out`; progress lines to stderr, after `prefix` when several run at once. `locked`
/// holds the lock (and the parent read under it) when it was taken while rendering.
pub async fn sync_once(
    args: &Args,
    session: &Session,
    job: Job<'_>,
    assume_yes: bool,
    out: &mut dyn Write,
    prefix: Option<&str>,
    locked: Option<flow::Locked>,
) -> Result<Done> {
    if args.dry_run {
        return dry_run(args, session, job, out, prefix).await;
    }
    let Job {
        sync: job,
        label,
        source,
        note,
        create_namespace,
    } = job;
    if let Some(note) = &note {
        writeln!(Prefixed::new(prefix), "{note}")?;
    }
    let locked = match locked {
        Some(locked) => locked,
        None => lock(args, session, &job, create_namespace, prefix).await?,
    };
    let (operation, no_hooks) = (job.options.operation, job.options.no_hooks);
    if let Some(gone) = locked.taken_over() {
        let mut err = Prefixed::new(prefix);
        writeln!(
            err,
            "took over the lock of app {} from {}, which is no longer running",
            gone.app, gone.holder
        )?;
    }
    // Without a prompt or a --dry-run nobody reads the preview before it is applied, so a
    // sync that only creates objects need not dry-run them first (it undoes its creations
    // if the server refuses one).
    let prompts = !assume_yes && std::io::stdin().is_terminal();
    let missing = if prompts {
        Missing::DryRun
    } else {
        Missing::FromManifestIfOnlyCreating
    };
    let mut planned = locked
        .plan(
            &session.cluster,
            &session.store,
            job,
            missing,
            &session.cancel,
        )
        .await
        .map_err(interrupt::sync_error)?;
    if let Some(source) = source {
        let previous = planned.previous().and_then(|p| p.commit.as_ref());
        let (commits, left_out) = source.commits_since(previous);
        planned.cover_commits(commits, left_out);
    }
    let changes = planned.plan.change_count();
    // Objects another owner holds refuse the sync when it executes: no question first.
    let refused = !planned.plan.comparison.owners.is_empty() && !args.adopt.adopt;
    let occasion = hooks::occasion(operation, planned.previous().is_some());
    let hooks = planned_hooks(&planned.plan, occasion, no_hooks);
    let asked = match show(args, &mut planned.plan, &hooks, &label, out, prefix) {
        Ok(_) if changes == 0 || !prompts || refused => Ok(true),
        Ok(_) => confirm(changes, &session.cancel).await,
        Err(error) => Err(error),
    };
    let go_on = match asked {
        Ok(go_on) => go_on,
        Err(error) => {
            // Best effort: the error that stopped the sync is the one to report.
            let _ = planned.stop().await;
            return Err(error);
        }
    };
    if !go_on {
        eprintln!("nothing applied");
        planned.stop().await?;
        return Ok(Done {
            record: None,
            recorded: false,
            result: Ok(()),
            dry_run: None,
        });
    }
    let mut display = progress::Display::new(prefix);
    let executed = planned
        .execute(
            &session.cluster,
            &session.store,
            &session.cancel,
            &mut |event| display.event(event),
        )
        .await;
    display.finish();
    Ok(Done {
        record: executed.record,
        recorded: executed.recorded,
        result: executed.result.map_err(interrupt::sync_error),
        dry_run: None,
    })
}

/// `--dry-run`: the plan a sync would carry out, shown as it would show it, made with
/// diff-git's reads alone (no lock, nothing written).
async fn dry_run(
    args: &Args,
    session: &Session,
    job: Job<'_>,
    out: &mut dyn Write,
    prefix: Option<&str>,
) -> Result<Done> {
    // The commits a release would list are the sync's to find: a dry run records none.
    let Job {
        sync: job,
        label,
        source: _,
        note,
        create_namespace,
    } = job;
    if let Some(note) = &note {
        writeln!(Prefixed::new(prefix), "{note}")?;
    }
    let app = job.app.clone();
    let (operation, no_hooks) = (job.options.operation, job.options.no_hooks);
    let namespace = session.connection.namespace.clone();
    // Only --create-namespace costs the check: the plan warns of a missing namespace anyway.
    let creates = app_namespace::provider(&namespace, &job.desired, create_namespace)
        == Some(Provided::Created)
        && app_namespace::is_missing(&session.cluster, &namespace).await?;
    let mut planned = flow::dry_run(&session.cluster, &session.store, job, &session.cancel)
        .await
        .map_err(interrupt::sync_error)?;
    if planned.parent_forbidden {
        writeln!(
            Prefixed::new(prefix),
            "warning: the ApplySet parent of app {app} may not be read with these credentials: \
             what a sync would prune is not shown"
        )?;
    }
    let occasion = hooks::occasion(operation, planned.deployed_before);
    let plan = &mut planned.plan;
    let hooks = planned_hooks(plan, occasion, no_hooks);
    let preview = show(args, plan, &hooks, &label, out, prefix)?;
    if creates {
        writeln!(
            Prefixed::new(prefix),
            "namespace {namespace} would be created (--create-namespace); it is not one of app {app}'s objects"
        )?;
    }
    let changes = plan.change_count();
    let view = View {
        changes: &preview,
        before: "live",
        after: &label,
        conflicts: &plan.comparison.conflicts,
        owners: &plan.comparison.owners,
        hooks: &hooks,
        context: 3,
        color: false,
    };
    let mut document = serde_json::json!({
        "app": app,
        "namespace": plan.namespace,
        "context": session.connection.context.as_deref().unwrap_or("in-cluster"),
        "dry_run": true,
        "dry_run_changes": changes,
        "warnings": plan.object_options.warnings,
    });
    if let (Some(item), serde_json::Value::Object(changes)) =
        (document.as_object_mut(), diff_view::document(&view))
    {
        item.extend(changes);
    }
    Ok(Done {
        record: None,
        recorded: false,
        result: Ok(()),
        dry_run: Some(DryRun { changes, document }),
    })
}

/// Takes the app's lock (and reads its parent) for a sync that did not take it ahead. The
/// lock is a Lease in the app's namespace: when that namespace does not exist, the
/// revision's own Namespace object (else `--create-namespace`) makes it exist first.
async fn lock(
    args: &Args,
    session: &Session,
    job: &SyncJob,
    create_namespace: bool,
    prefix: Option<&str>,
) -> Result<flow::Locked> {
    let connection = &session.connection;
    let who = connection.actor();
    let namespace = &connection.namespace;
    let duration = args.change.lock_duration;
    let app = &job.app;
    match flow::lock(&session.cluster, namespace, app, &who, duration).await {
        Err(error) if namespace_missing(&error) => {}
        taken => return Ok(taken?),
    }
    let provided = app_namespace::provide(
        &session.cluster,
        namespace,
        app,
        &job.desired,
        create_namespace,
    )
    .await?;
    let mut err = Prefixed::new(prefix);
    match provided {
        None => bail!(
            "namespace {namespace} does not exist, and app {app} keeps its lock and release records there: \
             create it, add it to the revision, or sync with --create-namespace"
        ),
        Some(Provided::FromRevision) => writeln!(
            err,
            "applied Namespace {namespace} first: app {app} keeps its lock and release records there"
        )?,
        Some(Provided::Created) => writeln!(
            err,
            "created namespace {namespace} (--create-namespace; it is not one of app {app}'s objects)"
        )?,
    }
    Ok(flow::lock(&session.cluster, namespace, app, &who, duration).await?)
}

/// The lock failed because the app's namespace does not exist.
fn namespace_missing(error: &SyncError) -> bool {
    matches!(error, SyncError::Lock(lock) if lock.is_namespace_missing())
}

/// The plan as diff-git shows it (unless -o), then warnings and notes on stderr. Returns
/// the changes shown (Secrets masked unless --show-secrets), taken out of `plan`: carrying
/// it out needs no object's contents from its comparison.
fn show(
    args: &Args,
    plan: &mut SyncPlan,
    hooks: &[PlannedHook],
    label: &str,
    out: &mut dyn Write,
    prefix: Option<&str>,
) -> Result<ChangeSet> {
    let mut preview = plan.take_preview();
    let masks = !args.output.show_secrets;
    if masks {
        preview.mask_secrets();
    }
    if args.output.format.is_none() {
        let view = View {
            changes: &preview,
            before: "live",
            after: label,
            conflicts: &plan.comparison.conflicts,
            owners: &plan.comparison.owners,
            hooks,
            context: 3,
            color: args.output.color.enabled(),
        };
        diff_view::unified_shown(out, &view, &|change| match plan
            .comparison
            .shown(change, &plan.desired)
        {
            Cow::Owned(mut filled) => {
                if masks {
                    filled.mask_secret();
                }
                Cow::Owned(filled)
            }
            borrowed => borrowed,
        })?;
    }
    let mut err = Prefixed::new(prefix);
    diff_view::conflict_warnings(&mut err, &plan.comparison.conflicts);
    let comparison = &plan.comparison;
    diff_view::ownership_lines(
        &mut err,
        &comparison.owners,
        &comparison.unowned,
        args.adopt.adopt,
    );
    diff_view::missing_namespace_warnings(&mut err, &plan.comparison.missing_namespaces);
    for warning in &plan.object_options.warnings {
        writeln!(err, "warning: {warning}")?;
    }
    diff_view::hook_lines(
        &mut err,
        "hooks (they run when the sync changes objects, or the hooks themselves changed):",
        hooks,
    )?;
    for note in plan.notes() {
        writeln!(err, "note: {note}")?;
    }
    if !plan.prune && !plan.stale.is_empty() {
        writeln!(
            err,
            "note: {} object(s) of app {} are no longer in the revision and stay (--prune deletes them): {}",
            plan.stale.len(),
            plan.app,
            plan.stale
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(preview)
}

/// The hooks a sync of `plan` runs on `occasion` (none with --no-hooks), and those that
/// never run.
fn planned_hooks(plan: &SyncPlan, occasion: Occasion, no_hooks: bool) -> Vec<PlannedHook> {
    if no_hooks {
        return Vec::new();
    }
    hooks::planned(plan.desired.hooks(), occasion)
}

/// Lines for stderr, each after a prefix naming the destination when several run at once.
struct Prefixed<'a> {
    prefix: Option<&'a str>,
    at_line_start: bool,
}

impl<'a> Prefixed<'a> {
    fn new(prefix: Option<&'a str>) -> Prefixed<'a> {
        Prefixed {
            prefix,
            at_line_start: true,
        }
    }
}

impl Write for Prefixed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        for line in buf.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start
                && let Some(prefix) = self.prefix
            {
                write!(err, "{prefix} ")?;
            }
            err.write_all(line)?;
            self.at_line_start = line.ends_with(b"\n");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Asks on the terminal. Ctrl-C at the question answers it: nothing was written, so the
/// caller only gives the lock up.
pub async fn confirm(changes: usize, cancel: &Cancel) -> Result<bool> {
    let question = format!(
        "Apply {changes} change{}?",
        if changes == 1 { "" } else { "s" }
    );
    ask(&question, cancel).await
}

/// Asks `question` (a yes/no one) on the terminal; see [`confirm`].
pub async fn ask(question: &str, cancel: &Cancel) -> Result<bool> {
    {
        let mut err = std::io::stderr().lock();
        write!(err, "{question} [y/N] ")?;
        err.flush()?;
    }
    // A thread of its own, not the runtime's blocking pool: the read cannot be stopped,
    // and the runtime would wait for it when the run ends.
    let (answered, answer) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        let _ = answered.send(read.map(|_| answer));
    });
    tokio::select! {
        answer = answer => {
            let answer = answer.map_err(|_| anyhow::anyhow!("the question was not answered"))??;
            Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
        }
        () = cancel.cancelled() => {
            eprintln!();
            Err(interrupt::sync_error(SyncError::InterruptedBeforeWriting))
        }
    }
}
