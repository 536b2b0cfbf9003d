//! `kubectl sync`: apply a git revision to the cluster as one app, prune what it no longer
//! has, wait for health, and record a release; or roll back to a recorded release.

mod ahead;
mod job;
mod progress;
mod report;
mod watch;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Parser, ValueEnum};
use gitops::app_file::AppSpec;
use gitops::apply::applyset;
use gitops::apply::health::WaitOptions;
use gitops::compare::Missing;
use gitops::fingerprint::Fingerprints;
use gitops::kubeconfig::{ConnectOptions, Connection};
use gitops::live::LiveCluster;
use gitops::lock;
use gitops::release::record::ReleaseRecord;
use gitops::release::store::ReleaseStore;
use gitops::sync::{self, SyncOptions};
use gitops_cli::diff_view::{self, View};
use gitops_cli::{
    AppListArgs, ColorWhen, ConnectionArgs, EarlyDiscovery, Outcome, SourceArgs, Target,
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
    /// The app's name (default: derived from the path). Its records live in -n's namespace.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
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
    /// Wait until every object is healthy (--wait=false skips it; default: the app list's
    /// `wait:`, else true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    wait: Option<bool>,
    /// How long to wait for health (default: the app list's `timeout:`, else 5m).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Release records to keep.
    #[arg(long, default_value_t = 10, value_name = "N")]
    history_max: usize,
    /// Re-apply the manifest of release N (default: the previous deployed one), with prune.
    #[arg(long, num_args = 0..=1, value_name = "N")]
    rollback: Option<Option<u32>>,
    /// How long the app's lock lasts without renewal: how soon a crashed sync stops
    /// keeping others out.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    lock_duration: Duration,
    /// Output format for the result.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// Follow the revision: sync each new commit as it appears, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// How often --watch fetches and checks.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    interval: Duration,
    /// When to color the diff.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
    /// Show the values of Secrets in the diff instead of masking them.
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// How long a sync waits for health unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long requests are retried: the sync's timeout (`--timeout`, else the app list's).
fn retry_budget(args: &Args, spec: Option<&AppSpec>) -> Duration {
    args.timeout
        .or(spec.and_then(|s| s.timeout))
        .unwrap_or(DEFAULT_TIMEOUT)
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
    if args.watch && (args.rollback.is_some() || args.dry_run) {
        bail!("--watch follows a revision; it cannot be combined with --rollback or --dry-run");
    }
    if args.rollback.is_some() || args.watch {
        if args.apps.all || args.connection.contexts.len() > 1 {
            bail!(
                "--rollback and --watch act on one app on one cluster; leave out --all and extra --context flags"
            );
        }
        let session = Session::connect(&args, &args.connection.options(), None).await?;
        if args.watch {
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
        let reading = tokio::spawn(ahead::start(
            discovering,
            target.app.clone(),
            args.lock_duration,
        ));
        let rendered = job::render(&args, &source, target, &namespace);
        let (connection, cluster, ahead) = reading
            .await
            .map_err(|stopped| anyhow::anyhow!("reading the app's state stopped: {stopped}"))??;
        let session = Session::new(connection, cluster);
        let job = rendered.and_then(|r| job::from_rendered(&args, &session, &source, target, r));
        let (job, ahead) = match (job, ahead) {
            (Ok(job), Ok(ahead)) => (job, ahead),
            (Err(error), ahead) => {
                if let Ok(ahead) = ahead {
                    // Best effort: the error that stopped the sync is the one to report.
                    let _ = ahead.lock.release().await;
                }
                return Err(error);
            }
            (Ok(_), Err(error)) => return Err(error),
        };
        return single(&args, &session, job, Some(ahead)).await;
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
    let results = futures::future::join_all(
        destinations
            .iter()
            .map(|target| sync_destination(&args, &source, target)),
    )
    .await;
    several(&args, &destinations, results)
}

/// One app on one cluster, printing as it goes.
async fn single(
    args: &Args,
    session: &Session,
    job: Job,
    ahead: Option<ahead::ReadAhead>,
) -> Result<Outcome> {
    let mut out = std::io::stdout();
    let done = sync_once(args, session, job, args.yes, &mut out, None, ahead).await?;
    if let Some(record) = &done.record {
        print_record(args, &mut out, record)?;
    }
    done.result?;
    Ok(Outcome::Clean)
}

/// One destination of several: its output kept for its section.
struct Destination {
    context: String,
    namespace: String,
    output: Vec<u8>,
    done: Result<Done>,
}

async fn sync_destination(args: &Args, source: &job::Source, target: &Target) -> Destination {
    let mut output = Vec::new();
    let context = target.context.clone().unwrap_or_else(|| "-".into());
    let namespace = target
        .namespace(&args.connection)
        .unwrap_or_else(|| "-".into());
    let session = match Session::connect(
        args,
        &target.options(&args.connection),
        target.spec.as_ref(),
    )
    .await
    {
        Ok(session) => session,
        Err(error) => {
            return Destination {
                context,
                namespace,
                output,
                done: Err(error),
            };
        }
    };
    let context = session
        .connection
        .context
        .clone()
        .unwrap_or_else(|| "in-cluster".into());
    let namespace = session.connection.namespace.clone();
    let prefix = format!("[{} @ {context}]", target.app);
    let done = match job::from_tree(args, &session, source, target) {
        Ok(job) => sync_once(args, &session, job, true, &mut output, Some(&prefix), None).await,
        Err(error) => Err(error),
    };
    Destination {
        context,
        namespace,
        output,
        done,
    }
}

/// Each destination's section, then a summary row each.
fn several(args: &Args, targets: &[Target], results: Vec<Destination>) -> Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for (target, destination) in targets.iter().zip(results) {
        let Destination {
            context,
            namespace,
            output,
            done,
        } = destination;
        let json = args.output == Some(Format::Json);
        if !json {
            gitops_cli::targets::heading(&mut out, &target.app, &context, &namespace)?;
            out.write_all(&output)?;
        }
        let (record, result) = match done {
            Ok(done) => (done.record, done.result.map(|()| done.dry_run)),
            Err(error) => (None, Err(error)),
        };
        let dry_run = result.as_ref().ok().copied().flatten();
        if let (Some(record), false) = (&record, json) {
            report::table(&mut out, record)?;
        }
        let result = match result {
            Ok(Some(changes)) => Ok(format!("dry run: {changes} change(s)")),
            Ok(None) => Ok(record.as_ref().map(report::summary).unwrap_or_default()),
            Err(error) => {
                let line = gitops_cli::targets::one_line(&error);
                let _ = writeln!(
                    std::io::stderr(),
                    "error: app {} on context {context}: {line}",
                    target.app
                );
                Err(line)
            }
        };
        if json {
            // The release's document when there is one (its own `error` says why a
            // failed sync failed), else what is known of the destination.
            let mut item = match &record {
                Some(record) => report::document(record),
                None => serde_json::json!({
                    "app": target.app,
                    "namespace": namespace,
                    "error": result.as_ref().err(),
                }),
            };
            if let Some(item) = item.as_object_mut() {
                item.insert("context".into(), context.clone().into());
                if let Some(changes) = dry_run {
                    item.insert("dry_run_changes".into(), changes.into());
                }
            }
            items.push(item);
        }
        rows.push(gitops_cli::targets::Row {
            app: target.app.clone(),
            context,
            namespace,
            result,
        });
    }
    if args.output == Some(Format::Json) {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "items": items }))?;
        writeln!(out)?;
    } else {
        writeln!(out)?;
        gitops_cli::targets::summary(&mut out, &rows)?;
    }
    gitops_cli::targets::failed(&rows)?;
    Ok(Outcome::Clean)
}

fn print_record(args: &Args, out: &mut dyn Write, record: &ReleaseRecord) -> Result<()> {
    match args.output {
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
/// `out`; progress lines to stderr, after `prefix` when several run at once. `ahead`
/// holds the lock and the plan's first reads when they were made while rendering.
pub async fn sync_once(
    args: &Args,
    session: &Session,
    job: Job,
    assume_yes: bool,
    out: &mut dyn Write,
    prefix: Option<&str>,
    ahead: Option<ahead::ReadAhead>,
) -> Result<Done> {
    let (lock, existing) = match ahead {
        Some(ahead) => (ahead.lock, Some(ahead.existing)),
        None => {
            let lock = ahead::take_lock(
                &session.connection,
                &session.cluster,
                &job.app,
                args.lock_duration,
            )
            .await?;
            (lock, None)
        }
    };
    let result = sync_locked(args, session, job, assume_yes, &lock, existing, out, prefix).await;
    let released = lock.release().await;
    let done = result?;
    if done.result.is_ok() {
        released.context("the sync finished, but its lock could not be released")?;
    }
    Ok(done)
}

#[allow(clippy::too_many_arguments)]
async fn sync_locked(
    args: &Args,
    session: &Session,
    job: Job,
    assume_yes: bool,
    lock: &lock::KeepAlive,
    existing: Option<Result<Option<applyset::ApplySet>, applyset::ApplySetError>>,
    out: &mut dyn Write,
    prefix: Option<&str>,
) -> Result<Done> {
    let Job {
        app,
        desired,
        options,
        label,
        prune,
    } = job;
    let namespace = session.connection.namespace.clone();
    // Independent reads at once: the last deployed release (its fingerprints spare
    // dry-runs), the records' metadata, the ApplySet parent (unless read while rendering),
    // and the LISTs of the objects' kinds the plan reads.
    let shared = session.cluster.shared_reads();
    let members = applyset::ApplySetId::for_app(&app, &namespace).member_selector();
    // Without a parent (read while rendering) nothing is a member yet: no member LISTs.
    let members_of = match &existing {
        Some(read) => matches!(read, Ok(Some(_))).then_some(members.as_str()),
        None => Some(members.as_str()),
    };
    let parent = async {
        match existing {
            Some(read) => read,
            None => applyset::read(&session.cluster, &namespace, &app).await,
        }
    };
    let (previous, listed, existing, ()) = futures::join!(
        sync::last_deployed(&session.store, &app),
        session.store.metadata(&app),
        parent,
        session.cluster.prefetch(desired.keys(), members_of)
    );
    let existing = existing?;
    let known = previous.as_ref().map(Fingerprints::from_record);
    let mut options = options;
    options.previous = previous;
    // Listed under the lock: the sync numbers, supersedes and trims from it.
    options.listed = listed.ok();
    // Without a prompt or a --dry-run nobody reads the preview before it is applied, so a
    // sync that only creates objects need not dry-run them first (it undoes its creations
    // if the server refuses one).
    let prompts = !assume_yes && std::io::stdin().is_terminal();
    let missing = if args.dry_run || prompts {
        Missing::DryRun
    } else {
        Missing::FromManifestIfOnlyCreating
    };
    let plan_options = sync::PlanOptions {
        prune: prune || options.rollback_of.is_some(),
        known: known.as_ref(),
        missing,
    };
    let plan = sync::plan_with_parent(
        &session.cluster,
        existing,
        &app,
        &namespace,
        desired,
        plan_options,
    )
    .await?;
    drop(shared);

    let mut preview = plan.preview();
    if !args.show_secrets {
        preview.mask_secrets();
    }
    if args.output.is_none() {
        let view = View {
            changes: &preview,
            before: "live",
            after: &label,
            conflicts: &plan.comparison.conflicts,
            context: 3,
            color: args.color.enabled(),
        };
        diff_view::unified(out, &view)?;
    }
    let mut err = Prefixed::new(prefix);
    diff_view::conflict_warnings(&mut err, &plan.comparison.conflicts);
    diff_view::missing_namespace_warnings(&mut err, &plan.comparison.missing_namespaces);
    if !plan.prune && !plan.stale.is_empty() {
        writeln!(
            err,
            "note: {} object(s) of app {app} are no longer in the revision and stay (--prune deletes them): {}",
            plan.stale.len(),
            plan.stale
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    let changes = plan.change_count();
    if args.dry_run {
        return Ok(Done {
            record: None,
            result: Ok(()),
            dry_run: Some(changes),
        });
    }
    if changes > 0 && prompts && !confirm(changes)? {
        eprintln!("nothing applied");
        return Ok(Done {
            record: None,
            result: Ok(()),
            dry_run: None,
        });
    }

    // The prompt may have taken long; make sure the app is still ours before changing it.
    lock.check()?;
    let mut display = progress::Display::new(prefix);
    let result = sync::execute(
        &session.cluster,
        &session.store,
        &plan,
        &options,
        &mut |event| display.event(event),
    )
    .await;
    display.finish();
    let record = match &result {
        Ok(outcome) => Some(outcome.record.clone()),
        // The failed record says what happened; show it before the error.
        Err(_) => session
            .store
            .list(&app)
            .await
            .ok()
            .and_then(|records| records.into_iter().find_map(Result::ok)),
    };
    Ok(Done {
        record,
        result: result.map(|_| ()).map_err(Into::into),
        dry_run: None,
    })
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

/// Health waiting as the flags ask, else as the app list says (default: wait 5m).
fn wait_options(args: &Args, spec: Option<&AppSpec>) -> Option<WaitOptions> {
    let wait = args.wait.or(spec.and_then(|s| s.wait)).unwrap_or(true);
    wait.then(|| WaitOptions {
        timeout: args
            .timeout
            .or(spec.and_then(|s| s.timeout))
            .unwrap_or(DEFAULT_TIMEOUT),
        poll_interval: Duration::from_secs(1),
    })
}

/// `--prune`, else the app list's `prune:`.
fn prune(args: &Args, spec: Option<&AppSpec>) -> bool {
    args.prune || spec.and_then(|s| s.prune).unwrap_or(false)
}

/// Options shared by every kind of job.
fn base_options(args: &Args, session: &Session, spec: Option<&AppSpec>) -> SyncOptions {
    SyncOptions {
        force_conflicts: args.force_conflicts,
        wait: wait_options(args, spec),
        history_max: args.history_max,
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
