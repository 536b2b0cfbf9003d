//! `kubectl sync`: apply a git revision to the cluster as one app, prune what it no longer
//! has, wait for health, and record a release; or roll back to a recorded release.

mod job;
mod once;
mod progress;
mod reconcile;
mod report;
mod session;
mod several;
mod uninstall;
mod watch;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use gitops_cli::{
    AdoptArgs, AppListArgs, AppNameArgs, ChangeArgs, ConnectionArgs, CreateNamespaceArgs,
    EarlyDiscovery, JsonFormat, Outcome, OutputArgs, PruneCrdsArgs, SourceArgs, WatchArgs,
};

use crate::once::single;
use crate::session::{Session, retry_budget};

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

  # Roll back to the newest earlier deployed release that differs (no git needed)
  kubectl sync --rollback --app shop -n shop

  # Follow a branch: sync every new commit (auto-sync), checking every 30 seconds
  kubectl sync origin/main deploy --app shop -n shop --prune --watch --interval 30s

  # Run as the reconciler of a repository's app list (docs/in-cluster.md)
  kubectl sync --reconcile main --repo https://git.example.com/team/apps.git --interval 3m

Exit status: 0 the sync succeeded and everything is healthy, 2 it failed (the release
record says why), 130 it was interrupted (Ctrl-C or SIGTERM: no new write starts, the
record says what was and was not applied, the lock is given up; a second signal exits at
once)."
)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    apps: AppListArgs,
    #[command(flatten)]
    app: AppNameArgs,
    /// Show what would change and stop, writing nothing (no lock, no record); exit 1 if
    /// something would change.
    #[arg(long)]
    dry_run: bool,
    /// Apply without asking (a non-interactive stdin never asks).
    #[arg(short = 'y', long)]
    yes: bool,
    /// Delete the app's objects that the revision no longer has.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_crds: PruneCrdsArgs,
    /// Let a pruned CRD or Namespace take objects that are not the app's with it (its
    /// custom resources, what the Namespace holds); without it such a sync is refused.
    #[arg(long)]
    prune_cascade: bool,
    /// Sync a revision that renders no objects (with --prune: delete every object of the
    /// app; default: the app list's `allow_empty:`, else refused).
    #[arg(long)]
    allow_empty: bool,
    /// Uninstall the app (--app NAME, -n): run its PreDelete hooks, delete every object it
    /// has (but those marked Delete=false or helm.sh/resource-policy: keep, its CRDs
    /// without --prune-crds, and a CRD or Namespace whose deletion would take objects that
    /// are not the app's), run its PostDelete hooks, and record a last release,
    /// `uninstalled`.
    #[arg(long, conflicts_with_all = ["rollback", "prune", "allow_empty", "adopt", "force_conflicts"])]
    uninstall: bool,
    /// With --uninstall: delete the app's release records too (they stay by default, as
    /// its audit trail).
    #[arg(long, requires = "uninstall")]
    purge: bool,
    /// Run no hooks (Argo CD's `argocd.argoproj.io/hook`, Helm's `helm.sh/hook`): they are
    /// neither run nor applied.
    #[arg(long)]
    no_hooks: bool,
    /// Take over fields that other field managers own (not whole objects another app or
    /// Helm owns: that is --adopt).
    #[arg(long)]
    force_conflicts: bool,
    #[command(flatten)]
    adopt: AdoptArgs,
    #[command(flatten)]
    create_namespace: CreateNamespaceArgs,
    #[command(flatten)]
    change: ChangeArgs,
    /// Re-apply the manifest of release N, with prune (default: the newest earlier release
    /// that was deployed and whose objects differ from the deployed one's; a failed
    /// release is refused).
    #[arg(long, num_args = 0..=1, value_name = "N")]
    rollback: Option<Option<u32>>,
    #[command(flatten)]
    output: OutputArgs<JsonFormat>,
    #[command(flatten)]
    repeat: WatchArgs,
    #[command(flatten)]
    reconcile: reconcile::ReconcileArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
}

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>(
        "kubectl-sync",
        gitops_cli::completion::FirstPositional::RevisionOrPath,
        run,
    )
}

async fn run(mut args: Args) -> Result<Outcome> {
    // From the start: the lock may be taken while the revision still renders.
    gitops_cli::interrupt::install();
    if args.reconcile.reconcile {
        // Every app of the list, without a question.
        args.apps.all = true;
        args.yes = true;
        return reconcile::run(&args).await;
    }
    if args.repeat.watch && (args.rollback.is_some() || args.dry_run) {
        bail!("--watch follows a revision; it cannot be combined with --rollback or --dry-run");
    }
    if args.uninstall {
        if args.apps.all || args.connection.contexts.len() > 1 || args.repeat.watch {
            bail!(
                "--uninstall acts on one app on one cluster; leave out --all, --watch and extra --context flags"
            );
        }
        let session = Session::connect(&args, &args.connection.options(), None).await?;
        return uninstall::run(&args, &session).await;
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
    match destinations.as_slice() {
        [target] => once::revision(&args, &source, target, early).await,
        several => {
            if let Some(early) = early {
                early.cancel();
            }
            several::run(&args, &source, several).await
        }
    }
}
