//! `kubectl drift`: what changed in the cluster behind git's back, who changed it, and
//! healing it. A thin command line over `gitops::drift`.

mod apps;
mod destinations;
mod report;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Parser, ValueEnum};
use gitops::app_file::AppSpec;
use gitops::app_identity::validate_app_name;
use gitops::apply::health::WaitOptions;
use gitops::drift::{CheckRequest, HealOptions, IgnoreRule, IgnoreRules};
use gitops::kubeconfig::Connection;
use gitops::live::LiveCluster;
use gitops_cli::{AppListArgs, ColorWhen, ConnectionArgs, Outcome};

use crate::apps::Round;

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

Exit status: 0 in sync, 1 drift found (or the branch is ahead), 2 or more an error.
With --heal: 0 when everything drifted was put back, 1 when something is left."
)]
pub struct Args {
    /// The app to check (default: every app with releases in the namespace).
    #[arg(value_name = "APP")]
    app: Option<String>,
    #[command(flatten)]
    apps: AppListArgs,
    /// Check the apps of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Compare the cluster with this git revision instead of the deployed release.
    #[arg(long, value_name = "REVISION")]
    against: Option<String>,
    /// Also say whether a git revision (default HEAD) has changes not deployed yet.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "HEAD", value_name = "REVISION")]
    git: Option<String>,
    /// The repository for --against, --git and the app's config file (default: the one
    /// the release was synced from, else the current directory).
    #[arg(long, value_name = "DIR|URL")]
    repo: Option<String>,
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
    /// With --heal, wait until the app is healthy (--wait=false skips it).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    wait: bool,
    /// How long --heal waits for health.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// Release records to keep when healing.
    #[arg(long, default_value_t = 10, value_name = "N")]
    history_max: usize,
    /// How long the app's lock lasts without renewal while healing.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    lock_duration: Duration,
    /// Check again every --interval, printing only what changed, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// How often --watch checks.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    interval: Duration,
    /// Output format: text (default) or json.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// When to color the output.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
    /// Show the values of Secrets instead of masking them.
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
        "kubectl-drift",
        gitops_cli::completion::FirstPositional::App,
        run,
    )
}

/// What one run works with.
pub struct Session {
    pub connection: Connection,
    pub cluster: LiveCluster,
    /// The flags' and --config's ignore rules.
    pub rules: IgnoreRules,
    /// The apps of the repository's app list to check here (empty: as the flags say).
    pub listed: Vec<AppSpec>,
}

impl Session {
    async fn connect(
        args: &Args,
        context: Option<&str>,
        listed: Vec<AppSpec>,
        rules: IgnoreRules,
    ) -> Result<Session> {
        let options = args.connection.options_for(context, None);
        let mut connection = args.connection.connect_to(&options).await?;
        if args.heal {
            connection.retry_budget = args.timeout; // healing writes: bounded as a sync is
        }
        let cluster = LiveCluster::connect(&connection).await?;
        Ok(Session {
            connection,
            cluster,
            rules,
            listed,
        })
    }
}

async fn run(args: Args) -> Result<Outcome> {
    check_flags(&args)?;
    let rules = flag_rules(&args)?;
    let mut groups = destinations::by_context(&args)?;
    if groups.len() == 1 {
        let (context, listed) = groups.remove(0);
        let session = Session::connect(&args, context.as_deref(), listed, rules).await?;
        if args.watch {
            return watch::run(&args, &session).await;
        }
        let mut round = apps::check_round(&args, &session).await?;
        report::print(
            &mut std::io::stdout(),
            &args,
            &session.connection.namespace,
            &round,
        )?;
        failures(&args, &mut round)?;
        return Ok(outcome(&args, &round));
    }
    if args.watch {
        bail!("--watch follows one cluster; give one --context");
    }
    let rounds = futures::future::join_all(groups.into_iter().map(|(context, listed)| {
        let (args, rules) = (&args, rules.clone());
        async move {
            let label = context.clone().unwrap_or_else(|| "-".into());
            let session = match Session::connect(args, context.as_deref(), listed, rules).await {
                Ok(session) => session,
                Err(error) => return (label, "-".to_string(), Err(error)),
            };
            let label = session.connection.context.clone().unwrap_or(label);
            let namespace = session.connection.namespace.clone();
            let round = apps::check_round(args, &session).await;
            (label, namespace, round)
        }
    }))
    .await;
    destinations::report(&args, rounds)
}

/// Apps that could not be checked or healed make the run an error (exit 2), after the
/// report of the others: one app's failure is the error itself; several are listed.
fn failures(args: &Args, round: &mut Round) -> Result<()> {
    if round.failed.is_empty() {
        return Ok(());
    }
    if args.app.is_some() || round.failed.len() == 1 && round.checked.is_empty() {
        return Err(round.failed.remove(0).error);
    }
    for failed in &round.failed {
        eprintln!(
            "error: app {} in namespace {}: {:#}",
            failed.app, failed.namespace, failed.error
        );
    }
    let total = round.checked.len() + round.skipped.len() + round.failed.len();
    bail!(
        "{} of {total} apps could not be checked or healed",
        round.failed.len()
    )
}

fn check_flags(args: &Args) -> Result<()> {
    if let Some(app) = &args.app {
        validate_app_name(app)?;
        if args.all_namespaces {
            bail!("give an app or --all-namespaces, not both");
        }
        if args.apps.all {
            bail!("give an app or --all, not both");
        }
    }
    if args.apps.all && args.all_namespaces {
        bail!(
            "--all checks the apps of the app list, each in its namespace; leave out --all-namespaces"
        );
    }
    if args.heal && args.against.is_some() {
        bail!(
            "--heal puts the deployed release back, so it cannot be combined with --against (kubectl sync applies a revision)"
        );
    }
    if args.prune_strays && !args.heal {
        bail!("--prune-strays deletes strays while healing; add --heal");
    }
    if args.against.is_some() && args.git.is_some() {
        bail!("--against already compares with git; leave out --git");
    }
    if args.interval.is_zero() {
        bail!("--interval must be longer than 0s");
    }
    Ok(())
}

/// The rules from --ignore-manager, --ignore-path and --config.
fn flag_rules(args: &Args) -> Result<IgnoreRules> {
    let mut rules = IgnoreRules::default();
    for manager in &args.ignore_manager {
        rules.rules.push(IgnoreRule::manager(manager));
    }
    for spec in &args.ignore_path {
        rules.rules.push(IgnoreRule::path(spec)?);
    }
    if let Some(file) = &args.config {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the config file {}", file.display()))?;
        rules.extend(IgnoreRules::from_config(
            &file.display().to_string(),
            &text,
        )?);
    }
    Ok(rules)
}

/// What to check for `app` in `namespace`: the flags, and the app list's entry if any
/// (its ignore rules added, its path unless --path).
pub fn request(args: &Args, session: &Session, namespace: &str, app: &str) -> CheckRequest {
    let listed = session.listed.iter().find(|spec| spec.name == app);
    let mut rules = session.rules.clone();
    if let Some(spec) = listed {
        rules.extend(spec.ignore_rules());
    }
    CheckRequest {
        app: app.to_string(),
        namespace: namespace.to_string(),
        rules,
        against: args.against.clone(),
        git: args.git.clone(),
        repo: args.repo.clone(),
        path: args
            .path
            .clone()
            .or_else(|| listed.map(|spec| spec.path.clone())),
        show_secrets: args.show_secrets,
    }
}

pub fn heal_options(args: &Args, session: &Session) -> HealOptions {
    HealOptions {
        prune_strays: args.prune_strays,
        wait: args.wait.then(|| WaitOptions {
            timeout: args.timeout,
            poll_interval: Duration::from_secs(1),
        }),
        history_max: args.history_max,
        who: session.connection.actor(),
        lock_duration: args.lock_duration,
    }
}

/// 1 when drift is left (after healing: what healing did not fix), else 0.
fn outcome(args: &Args, round: &Round) -> Outcome {
    if round
        .checked
        .iter()
        .any(|checked| apps::outstanding(args, &checked.report))
    {
        Outcome::Differences
    } else {
        Outcome::Clean
    }
}
