//! `kubectl sync`: apply a git revision to the cluster as one app, prune what it no longer
//! has, wait for health, and record a release; or roll back to a recorded release.

mod job;
mod progress;
mod report;
mod watch;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use gitops::app_file::AppSpec;
use gitops::compare::Missing;
use gitops::kubeconfig::{ConnectOptions, Connection};
use gitops::live::LiveCluster;
use gitops::release::record::ReleaseRecord;
use gitops::release::store::ReleaseStore;
use gitops::sync::{SyncOptions, SyncPlan, flow};
use gitops_cli::destinations::{self, AppOnContext, Place, Row, Section};
use gitops_cli::diff_view::{self, View};
use gitops_cli::{
    AppListArgs, AppNameArgs, ChangeArgs, ConnectionArgs, EarlyDiscovery, Outcome, OutputArgs,
    SourceArgs, Target, WatchArgs,
};

use crate::job::Job;

/// Apply a git revision to the cluster as one app: server-side apply, prune, wait for
/// health, and record a release you can roll back to.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl sync",
    bin_name = "kubectl sync",
    version = gitops_cli::VERSION,
    after_help = "Examples:
  # Sync HEAD of this checkout's deploy/ directory as the app \"shop\", deleting what git removed
  kubectl sync HEAD deploy --app shop -n shop --prune

  # Show what would change, change nothing
  kubectl sync v2.1.0 deploy --app shop -n shop --dry-run

  # Roll back to the previous deployed release (no git needed)
  kubectl sync --rollback --app shop -n shop

  # Follow a branch: sync every new commit (auto-sync), checking every 30 seconds
  kubectl sync origin/main deploy --app shop -n shop --prune --watch --interval 30s

Exit status: 0 the sync succeeded and everything is healthy, 2 or more it failed (the
release record says why)."
)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    apps: AppListArgs,
    #[command(flatten)]
    app: AppNameArgs,
    /// Show what would change and stop.
    #[arg(long)]
    dry_run: bool,
    /// Apply without asking (a non-interactive stdin never asks).
    #[arg(short = 'y', long)]
    yes: bool,
    /// Delete the app's objects that the revision no longer has.
    #[arg(long)]
    prune: bool,
    /// Take over fields that other field managers own.
    #[arg(long)]
    force_conflicts: bool,
    #[command(flatten)]
    change: ChangeArgs,
    /// Re-apply the manifest of release N (default: the previous deployed one), with prune.
    #[arg(long, num_args = 0..=1, value_name = "N")]
    rollback: Option<Option<u32>>,
    #[command(flatten)]
    output: OutputArgs<Format>,
    #[command(flatten)]
    repeat: WatchArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// How long requests are retried: the sync's timeout (`--timeout`, else the app list's).
fn retry_budget(args: &Args, spec: Option<&AppSpec>) -> Duration {
    args.change.timeout_for(spec)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
}

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>(
        "kubectl-sync",
        gitops_cli::completion::FirstPositional::RevisionOrPath,
        run,
    )
}

/// The connection, the cluster and the record store one run works with.
pub struct Session {
    pub connection: Connection,
    pub cluster: LiveCluster,
    pub store: ReleaseStore,
}

impl Session {
    /// Connects as `options` say; requests are retried for at most the sync's timeout.
    async fn connect(
        args: &Args,
        options: &ConnectOptions,
        spec: Option<&AppSpec>,
    ) -> Result<Session> {
        Ok(Session::connect_while(args, options, spec, None, |_| ())
            .await?
            .0)
    }

    /// [`Session::connect`], running `meanwhile` with the namespace while the cluster is
    /// discovered (see [`EarlyDiscovery::discover_while`]); `early`'s discovery serves if it
    /// was started for the same connection.
    async fn connect_while<T>(
        args: &Args,
        options: &ConnectOptions,
        spec: Option<&AppSpec>,
        early: Option<EarlyDiscovery>,
        meanwhile: impl FnOnce(&str) -> T,
    ) -> Result<(Session, T)> {
        let (connection, cluster, value) = EarlyDiscovery::discover_while(
            early,
            &args.connection,
            options,
            Some(retry_budget(args, spec)),
            meanwhile,
        )
        .await?;
        Ok((Session::new(connection, cluster), value))
    }

    fn new(connection: Connection, cluster: LiveCluster) -> Session {
        let store = ReleaseStore::new(cluster.client().clone(), &connection.namespace);
        Session {
            connection,
            cluster,
            store,
        }
    }
}

async fn run(args: Args) -> Result<Outcome> {
    if args.repeat.watch && (args.rollback.is_some() || args.dry_run) {
        bail!("--watch follows a revision; it cannot be combined with --rollback or --dry-run");
    }
    if args.rollback.is_some() || args.repeat.watch {
        if args.apps.all || args.connection.contexts.len() > 1 {
            bail!(
                "--rollback and --watch act on one app on one cluster; leave out --all and extra --context flags"
            );
        }
        let session = Session::connect(&args, &args.connection.options(), None).await?;
        if args.repeat.watch {
            return watch::run(&args, &session).await;
        }
        let job = job::from_release(&args, &session, args.rollback.flatten()).await?;
        return single(&args, &session, job, None).await;
    }
    // The cluster the flags name is discovered while the revision is read (unless the
    // app list sends the app elsewhere, it is the one), and the revision renders while
    // that discovery finishes.
    let early = EarlyDiscovery::start(
        &args.connection,
        !args.apps.all,
        Some(retry_budget(&args, None)),
    )
    .await;
    let source = job::Source::read(&args)?;
    let destinations = source.destinations(&args)?;
    if let [target] = destinations.as_slice() {
        // The lock and the plan's reads follow the discovery on another task, while the
        // revision renders here.
        let discovering = EarlyDiscovery::begin(
            early,
            &args.connection,
            &target.options(&args.connection),
            Some(retry_budget(&args, target.spec.as_ref())),
        )
        .await?;
        let namespace = discovering.connection.namespace.clone();
        let (app, lock_duration) = (target.app.clone(), args.change.lock_duration);
        let reading = tokio::spawn(async move {
            let (connection, cluster) = discovering.discovered().await?;
            let who = connection.actor();
            let namespace = &connection.namespace;
            let locked = flow::lock(&cluster, namespace, &app, &who, lock_duration).await;
            anyhow::Ok((connection, cluster, locked))
        });
        let rendered = job::render(&args, &source, target, &namespace);
        let (connection, cluster, locked) = reading
            .await
            .map_err(|stopped| anyhow::anyhow!("reading the app's state stopped: {stopped}"))??;
        let session = Session::new(connection, cluster);
        let job = rendered.and_then(|r| job::from_rendered(&args, &session, &source, target, r));
        // Rendering's errors come first; then the lock's (held, an invalid app name).
        let (job, locked) = match (job, locked) {
            (Ok(job), Ok(locked)) => (job, locked),
            (Err(error), locked) => {
                if let Ok(locked) = locked {
                    // Best effort: the error that stopped the sync is the one to report.
                    let _ = locked.release().await;
                }
                return Err(error);
            }
            (Ok(_), Err(error)) => return Err(error.into()),
        };
        return single(&args, &session, job, Some(locked)).await;
    }
    if let Some(early) = early {
        early.cancel();
    }
    if !args.yes && !args.dry_run && std::io::stdin().is_terminal() {
        bail!(
            "{} destinations would be synced without a question each: add --yes (--dry-run previews them)",
            destinations.len()
        );
    }
    let work = destinations
        .iter()
        .map(|target| sync_destination(&args, &source, target));
    destinations::run(work, args.output.format == Some(Format::Json)).await
}

/// One app on one cluster, printing as it goes.
async fn single(
    args: &Args,
    session: &Session,
    job: Job,
    locked: Option<flow::Locked>,
) -> Result<Outcome> {
    let mut out = std::io::stdout();
    let done = sync_once(args, session, job, args.yes, &mut out, None, locked).await?;
    if let Some(record) = &done.record {
        print_record(args, &mut out, record)?;
    }
    done.result?;
    Ok(Outcome::Clean)
}

/// One destination of several: its output kept for its section, the release it left.
struct Destination {
    place: AppOnContext,
    output: Vec<u8>,
    record: Option<ReleaseRecord>,
    /// For --dry-run, how many changes there would be.
    result: Result<Option<usize>>,
}

impl Destination {
    fn new(place: AppOnContext, output: Vec<u8>, done: Result<Done>) -> Destination {
        let (record, result) = match done {
            Ok(done) => (done.record, done.result.map(|()| done.dry_run)),
            Err(error) => (None, Err(error)),
        };
        Destination {
            place,
            output,
            record,
            result,
        }
    }
}

async fn sync_destination(args: &Args, source: &job::Source, target: &Target) -> Destination {
    let mut output = Vec::new();
    let mut place = AppOnContext {
        app: target.app.clone(),
        context: target.context.clone().unwrap_or_else(|| "-".into()),
        namespace: target
            .namespace(&args.connection)
            .unwrap_or_else(|| "-".into()),
    };
    let session = match Session::connect(
        args,
        &target.options(&args.connection),
        target.spec.as_ref(),
    )
    .await
    {
        Ok(session) => session,
        Err(error) => return Destination::new(place, output, Err(error)),
    };
    place.context = session
        .connection
        .context
        .clone()
        .unwrap_or_else(|| "in-cluster".into());
    place.namespace = session.connection.namespace.clone();
    let prefix = format!("[{} @ {}]", target.app, place.context);
    let done = match job::from_tree(args, &session, source, target) {
        Ok(job) => sync_once(args, &session, job, true, &mut output, Some(&prefix), None).await,
        Err(error) => Err(error),
    };
    Destination::new(place, output, done)
}

impl Section for Destination {
    fn place(&self) -> Place<'_> {
        Place::App(&self.place)
    }

    fn error(&self) -> Option<String> {
        self.result
            .as_ref()
            .err()
            .map(gitops_cli::targets::one_line)
    }

    /// What the sync printed, then its release's table.
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        out.write_all(&self.output)?;
        if let Some(record) = &self.record {
            report::table(out, record)?;
        }
        Ok(())
    }

    /// The release's document when there is one (its own `error` says why a failed sync
    /// failed), else what is known of the destination.
    fn item(&self) -> serde_json::Value {
        let mut item = match &self.record {
            Some(record) => report::document(record),
            None => serde_json::json!({
                "app": self.place.app,
                "namespace": self.place.namespace,
                "error": self.error(),
            }),
        };
        if let Some(item) = item.as_object_mut() {
            item.insert("context".into(), self.place.context.clone().into());
            if let Ok(Some(changes)) = &self.result {
                item.insert("dry_run_changes".into(), (*changes).into());
            }
        }
        item
    }

    fn rows(&self) -> Vec<Row> {
        let result = match &self.result {
            Ok(Some(changes)) => Ok(format!("dry run: {changes} change(s)")),
            Ok(None) => Ok(self
                .record
                .as_ref()
                .map(report::summary)
                .unwrap_or_default()),
            Err(error) => Err(gitops_cli::targets::one_line(error)),
        };
        vec![self.place.row(result)]
    }
}

fn print_record(args: &Args, out: &mut dyn Write, record: &ReleaseRecord) -> Result<()> {
    match args.output.format {
        Some(Format::Json) => report::json(out, record)?,
        None => report::table(out, record)?,
    }
    Ok(())
}

/// How a sync ended: the record it left (shown before an error, which it explains), and
/// the result.
pub struct Done {
    pub record: Option<ReleaseRecord>,
    pub result: Result<()>,
    /// For --dry-run: how many changes there would be.
    pub dry_run: Option<usize>,
}

/// One sync, start to finish: lock, plan, show, confirm, execute. The preview goes to
/// `out`; progress lines to stderr, after `prefix` when several run at once. `locked`
/// holds the lock (and the parent read under it) when it was taken while rendering.
pub async fn sync_once(
    args: &Args,
    session: &Session,
    job: Job,
    assume_yes: bool,
    out: &mut dyn Write,
    prefix: Option<&str>,
    locked: Option<flow::Locked>,
) -> Result<Done> {
    let Job { sync: job, label } = job;
    let locked = match locked {
        Some(locked) => locked,
        None => {
            let connection = &session.connection;
            let namespace = &connection.namespace;
            let who = connection.actor();
            flow::lock(
                &session.cluster,
                namespace,
                &job.app,
                &who,
                args.change.lock_duration,
            )
            .await?
        }
    };
    // Without a prompt or a --dry-run nobody reads the preview before it is applied, so a
    // sync that only creates objects need not dry-run them first (it undoes its creations
    // if the server refuses one).
    let prompts = !assume_yes && std::io::stdin().is_terminal();
    let missing = if args.dry_run || prompts {
        Missing::DryRun
    } else {
        Missing::FromManifestIfOnlyCreating
    };
    let planned = locked
        .plan(&session.cluster, &session.store, job, missing)
        .await?;
    let changes = planned.plan.change_count();
    let asked = show(args, &planned.plan, &label, out, prefix).and_then(|()| {
        if args.dry_run || changes == 0 || !prompts {
            return Ok(true);
        }
        confirm(changes)
    });
    let go_on = match asked {
        Ok(go_on) => go_on,
        Err(error) => {
            // Best effort: the error that stopped the sync is the one to report.
            let _ = planned.stop().await;
            return Err(error);
        }
    };
    if args.dry_run || !go_on {
        if !go_on {
            eprintln!("nothing applied");
        }
        planned.stop().await?;
        return Ok(Done {
            record: None,
            result: Ok(()),
            dry_run: args.dry_run.then_some(changes),
        });
    }
    let mut display = progress::Display::new(prefix);
    let executed = planned
        .execute(&session.cluster, &session.store, &mut |event| {
            display.event(event)
        })
        .await;
    display.finish();
    Ok(Done {
        record: executed.record,
        result: executed.result.map_err(Into::into),
        dry_run: None,
    })
}

/// The plan as diff-git shows it (unless -o), then warnings and notes on stderr.
fn show(
    args: &Args,
    plan: &SyncPlan,
    label: &str,
    out: &mut dyn Write,
    prefix: Option<&str>,
) -> Result<()> {
    let mut preview = plan.preview();
    if !args.output.show_secrets {
        preview.mask_secrets();
    }
    if args.output.format.is_none() {
        let view = View {
            changes: &preview,
            before: "live",
            after: label,
            conflicts: &plan.comparison.conflicts,
            context: 3,
            color: args.output.color.enabled(),
        };
        diff_view::unified(out, &view)?;
    }
    let mut err = Prefixed::new(prefix);
    diff_view::conflict_warnings(&mut err, &plan.comparison.conflicts);
    diff_view::missing_namespace_warnings(&mut err, &plan.comparison.missing_namespaces);
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
    Ok(())
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

fn confirm(changes: usize) -> Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "Apply {changes} change{}? [y/N] ",
        if changes == 1 { "" } else { "s" }
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `--prune`, else the app list's `prune:`.
fn prune(args: &Args, spec: Option<&AppSpec>) -> bool {
    args.prune || spec.and_then(|s| s.prune).unwrap_or(false)
}

/// Options shared by every kind of job.
fn base_options(args: &Args, session: &Session, spec: Option<&AppSpec>) -> SyncOptions {
    SyncOptions {
        force_conflicts: args.force_conflicts,
        wait: args.change.wait_for(spec),
        history_max: args.change.history_max,
        operation: gitops::release::record::Operation::Sync,
        rollback_of: None,
        description: String::new(),
        who: session.connection.actor(),
        repo: None,
        path: String::new(),
        renderer: String::new(),
        commit: None,
        extra: Default::default(),
        previous: None,
        listed: None,
    }
}
