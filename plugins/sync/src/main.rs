//! `kubectl sync`: apply a git revision to the cluster as one app, prune what it no longer
//! has, wait for health, and record a release; or roll back to a recorded release.

mod job;
mod progress;
mod report;
mod watch;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Parser, ValueEnum};
use gitops::apply::health::WaitOptions;
use gitops::kubeconfig::Connection;
use gitops::live::LiveCluster;
use gitops::lock;
use gitops::release::store::{ReleaseStore, validate_app_name};
use gitops::sync::{self, SyncOptions};
use gitops_cli::diff_view::{self, View};
use gitops_cli::{ColorWhen, ConnectionArgs, Outcome, SourceArgs};

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
    /// Wait until every object is healthy (--wait=false skips it).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    wait: bool,
    /// How long to wait for health.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    timeout: Duration,
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

async fn run(args: Args) -> Result<Outcome> {
    if args.watch && (args.rollback.is_some() || args.dry_run) {
        bail!("--watch follows a revision; it cannot be combined with --rollback or --dry-run");
    }
    let mut connection = args.connection.connect().await?;
    connection.retry_budget = args.timeout; // retries are bounded by the sync's --timeout
    let cluster = LiveCluster::connect(&connection).await?;
    let store = ReleaseStore::new(cluster.client().clone(), &connection.namespace);
    let session = Session {
        connection,
        cluster,
        store,
    };
    if args.watch {
        return watch::run(&args, &session).await;
    }
    let job = match args.rollback {
        Some(revision) => job::from_release(&args, &session, revision).await?,
        None => job::from_git(&args, &session)?,
    };
    sync_once(&args, &session, job, args.yes).await
}

/// One sync, start to finish: lock, plan, show, confirm, execute, report.
pub async fn sync_once(
    args: &Args,
    session: &Session,
    job: Job,
    assume_yes: bool,
) -> Result<Outcome> {
    validate_app_name(&job.app)?;
    let namespace = &session.connection.namespace;
    let holder = lock::holder_identity(&session.connection.actor());
    // Renewed in the background: waiting for health can outlast one lease term.
    let lock = lock::acquire(
        session.cluster.client().clone(),
        namespace,
        &job.app,
        &holder,
        args.lock_duration,
    )
    .await?
    .keep_alive()?;
    let result = sync_locked(args, session, job, assume_yes, &lock).await;
    let released = lock.release().await;
    let outcome = result?;
    released.context("the sync finished, but its lock could not be released")?;
    Ok(outcome)
}

async fn sync_locked(
    args: &Args,
    session: &Session,
    job: Job,
    assume_yes: bool,
    lock: &lock::KeepAlive,
) -> Result<Outcome> {
    let Job {
        app,
        desired,
        options,
        label,
    } = job;
    let namespace = session.connection.namespace.clone();
    let known = sync::known_fingerprints(&session.store, &app).await;
    let plan = sync::plan_with(
        &session.cluster,
        &app,
        &namespace,
        desired,
        args.prune || options.rollback_of.is_some(),
        known.as_ref(),
    )
    .await?;

    let mut preview = plan.change_set();
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
        diff_view::unified(&view)?;
    }
    diff_view::conflict_warnings(&plan.comparison.conflicts);
    diff_view::missing_namespace_warnings(&plan.comparison.missing_namespaces);
    if !plan.prune && !plan.stale.is_empty() {
        eprintln!(
            "note: {} object(s) of app {app} are no longer in the revision and stay (--prune deletes them): {}",
            plan.stale.len(),
            plan.stale
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if args.dry_run {
        return Ok(Outcome::Clean);
    }
    let changes = plan.change_count();
    if changes > 0 && !assume_yes && std::io::stdin().is_terminal() && !confirm(changes)? {
        eprintln!("nothing applied");
        return Ok(Outcome::Clean);
    }

    // The prompt may have taken long; make sure the app is still ours before changing it.
    lock.check()?;
    let mut display = progress::Display::new();
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
    if let Some(record) = &record {
        match args.output {
            Some(Format::Json) => report::json(record)?,
            None => report::table(record)?,
        }
    }
    result?;
    Ok(Outcome::Clean)
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

/// Health waiting as the flags ask.
fn wait_options(args: &Args) -> Option<WaitOptions> {
    args.wait.then(|| WaitOptions {
        timeout: args.timeout,
        poll_interval: Duration::from_secs(1),
    })
}

/// Options shared by every kind of job.
fn base_options(args: &Args, session: &Session) -> SyncOptions {
    SyncOptions {
        force_conflicts: args.force_conflicts,
        wait: wait_options(args),
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
    }
}
