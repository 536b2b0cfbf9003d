//! `kubectl drift`: what changed in the cluster behind git's back, who changed it, and
//! healing it. A thin command line over `gitops::drift`.

mod destinations;
mod report;
mod round;
mod session;
mod tree;
mod usage;
mod watch;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use gitops_cli::{
    AllNamespacesArgs, AppListArgs, ChangeArgs, ConnectionArgs, Outcome, OutputArgs, RepoArgs,
    WatchArgs,
};

use crate::round::{failures, outcome};
use crate::session::{Session, flag_rules};

/// Show what changed in the cluster behind git's back, and who changed it; heal it.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl drift",
    bin_name = "kubectl drift",
    version = gitops_cli::VERSION,
    after_help = "Examples:
  # What changed in app shop since its last deployed release, and who changed it
  kubectl drift shop -n shop

  # Every app in the namespace, or in all namespaces, one row each
  kubectl drift -n shop
  kubectl drift -A

  # An HPA owns the replicas: not drift
  kubectl drift shop -n shop --ignore-manager kube-controller-manager
  kubectl drift shop -n shop --ignore-path Deployment.apps:/spec/replicas

  # Put the release back (and record a release saying so)
  kubectl drift shop -n shop --heal

  # Self-heal every 30 seconds until Ctrl-C
  kubectl drift shop -n shop --watch --interval 30s --heal

  # Has the branch moved past what is deployed? (Argo CD's OutOfSync)
  kubectl drift shop -n shop --git=origin/main

  # The app's objects and what they own (ReplicaSets, Pods), with health and drift
  kubectl drift shop -n shop -o tree

Exit status: 0 in sync, 1 drift found (or the branch is ahead), 2 or more an error.
With --heal: 0 when everything drifted was put back, 1 when something is left, 130 when
a heal was interrupted (Ctrl-C or SIGTERM; as kubectl sync)."
)]
pub struct Args {
    /// The app to check (default: every app with releases in the namespace).
    #[arg(value_name = "APP")]
    app: Option<String>,
    #[command(flatten)]
    apps: AppListArgs,
    #[command(flatten)]
    namespaces: AllNamespacesArgs,
    /// Compare the cluster with this git revision instead of the deployed release.
    #[arg(long, value_name = "REVISION")]
    against: Option<String>,
    /// Also say whether a git revision (default HEAD) has changes not deployed yet.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "HEAD", value_name = "REVISION")]
    git: Option<String>,
    #[command(flatten)]
    repo: RepoArgs,
    /// The app's path in the repository (default: the release's).
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Ignore fields this field manager owns (repeatable), e.g. kube-controller-manager.
    #[arg(long, value_name = "NAME")]
    ignore_manager: Vec<String>,
    /// Ignore a field: [KIND[.GROUP]:]POINTER, e.g. Deployment.apps:/spec/replicas (repeatable).
    #[arg(long, value_name = "[KIND:]POINTER")]
    ignore_path: Vec<String>,
    /// Read ignore rules from this file too (the format of .kubectl-gitops.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Put drifted objects back as the deployed release has them, recreate deleted ones,
    /// and record a release.
    #[arg(long)]
    heal: bool,
    /// With --heal, delete strays too.
    #[arg(long)]
    prune_strays: bool,
    #[command(flatten)]
    change: ChangeArgs,
    #[command(flatten)]
    repeat: WatchArgs,
    #[command(flatten)]
    output: OutputArgs<Format>,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// `-o`: a document for scripts, or the app's resource tree for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    // The app's objects and what they own, each with its health and drift mark. (No doc
    // comment: it would give -o a long help unlike the other plugins'.)
    Tree,
}

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>(
        "kubectl-drift",
        gitops_cli::completion::FirstPositional::App,
        run,
    )
}

async fn run(args: Args) -> Result<Outcome> {
    usage::check(&args)?;
    if args.heal || args.repeat.watch {
        // A heal is a sync: Ctrl-C stops it between writes; a watch between rounds.
        gitops_cli::interrupt::install();
    }
    let rules = flag_rules(&args)?;
    let mut groups = destinations::by_context(&args)?;
    if groups.len() == 1 {
        let (context, listed) = groups.remove(0);
        let session = Session::connect(&args, context.as_deref(), listed, rules).await?;
        if args.repeat.watch {
            return watch::run(&args, &session).await;
        }
        let mut round = round::check_round(&args, &session).await?;
        if args.output.format == Some(Format::Tree) {
            return tree::print(&args, &session, &mut round).await;
        }
        report::print(
            &mut std::io::stdout(),
            &args,
            &session.connection.namespace,
            &round,
        )?;
        failures(&args, &mut round)?;
        return Ok(outcome(&args, &round));
    }
    if args.repeat.watch {
        bail!("--watch follows one cluster; give one --context");
    }
    if args.output.format == Some(Format::Tree) {
        bail!("-o tree shows one app on one cluster; give one --context");
    }
    destinations::run(&args, groups, rules).await
}
