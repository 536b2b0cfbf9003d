//! `--reconcile`: every app of a repository's list synced whenever what it is made of
//! changes (and healed, for apps with `self_heal: true`), every --interval, by the one
//! replica of several that holds the leader Lease. Each app's sync is the CLI's own (same
//! lock, same records), so a person's `kubectl sync` and the reconciler never interleave.
//! One JSON line on stdout per thing that happened.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;
use gitops::drift::{self, CheckRequest, HealOptions, Repos};
use gitops::kubeconfig::ConnectOptions;
use gitops::lock::LockError;
use gitops::reconcile::backoff::Backoff;
use gitops::reconcile::clusters::Clusters;
use gitops::reconcile::endpoints::{self, EndpointEvent, Endpoints, Webhook};
use gitops::reconcile::events::{self, Happened};
use gitops::reconcile::inputs::{AppInputs, InputsId, inputs_id};
use gitops::reconcile::leader::{DEFAULT_LEASE, Election, replica_identity};
use gitops::reconcile::metrics::{Metrics, SyncOutcome};
use gitops::release::record::{ReleaseRecord, ReleaseStatus};
use gitops::release::store::ReleaseStore;
use gitops::source::credentials::GitCredentials;
use gitops::sync::SyncError;
use gitops_cli::interrupt;
use gitops_cli::{Outcome, Target};
use serde_json::{Value, json};

use crate::session::Session;
use crate::{Args, job};

/// The reconciler's flags (the repository, branch, --interval and connection flags are
/// the sync's own).
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Run as the reconciler: sync every app of the repository's list (--repo, the
    /// revision a branch) whenever its path, values or chart version change, heal the drift
    /// of apps with `self_heal: true`, every --interval; one replica of several leads
    /// (docs/in-cluster.md).
    #[arg(long, conflicts_with_all = ["dry_run", "rollback", "uninstall", "watch"])]
    pub reconcile: bool,
    /// How many apps the reconciler syncs at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// The namespace of the Lease the replicas elect their leader with (default: the
    /// pod's own in a cluster, else -n or the context's).
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_namespace: Option<String>,
    /// How long a leader that stops renewing keeps the lead; a standby takes over then.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub leader_lease: Duration,
    /// How long an app waits after a failed sync before it is tried again; twice as long
    /// after each further failure in a row, up to --max-backoff.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub backoff: Duration,
    /// The longest an app waits after failures.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_backoff: Duration,
    /// Where /healthz, /readyz, /metrics and /webhook are served (port 0: a free one, named
    /// in the log's "started" line).
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file holding the push webhook's secret (GitHub's HMAC key, GitLab's token); a
    /// verified push starts a round at once. Without it /webhook answers 404.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<std::path::PathBuf>,
    /// A directory (a mounted Secret) with the credentials git fetches --repo with:
    /// `ssh-privatekey` and `known_hosts`, or `token` (and `username`) for HTTPS.
    #[arg(long, value_name = "DIR")]
    pub git_credentials: Option<std::path::PathBuf>,
}

/// How long one discovery of a server serves the reconciler's syncs.
const SHARED_DISCOVERY: Duration = Duration::from_secs(60);

/// How many apps' deployed releases a new leader reads at once.
const LEARN_CONCURRENCY: usize = 16;

/// How soon an app whose lock another sync holds is tried again.
const LOCK_RETRY: Duration = Duration::from_secs(5);

pub async fn run(args: &Args) -> Result<Outcome> {
    if args.reconcile.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if let Some(dir) = &args.reconcile.git_credentials {
        // Beside the repository cache: the key's private copy lives as long as the pod.
        let cache = gitops::source::repo_cache_dir();
        let private = cache.with_file_name("git-credentials");
        let credentials = GitCredentials::from_dir(dir, &private)?;
        gitops::source::credentials::use_for_fetches(credentials);
    }
    let cancel = interrupt::install();
    crate::progress::silence();
    // Each app's sync connects on its own; the server's kinds are discovered once a minute.
    gitops::live::share_discovery(SHARED_DISCOVERY);
    let metrics = Arc::new(Metrics::default());
    let (pushes, mut pushed) = tokio::sync::mpsc::channel(16);
    let webhook = match &args.reconcile.webhook_secret_file {
        Some(file) => Some(Webhook {
            secret: read_secret(file)?,
            pushes,
        }),
        None => None,
    };
    let endpoints = Endpoints::new(metrics.clone(), webhook, log_endpoint_event);
    let (listener, listening) = endpoints::bind(args.reconcile.listen).await?;
    tokio::spawn(endpoints::serve(
        listener,
        endpoints.clone(),
        cancel.clone(),
    ));
    let session = Session::connect(args, &args.connection.options(), None).await?;
    let namespace = args
        .reconcile
        .leader_namespace
        .clone()
        .or_else(pod_namespace)
        .unwrap_or_else(|| session.connection.namespace.clone());
    let identity = replica_identity();
    let lease = args.reconcile.leader_lease;
    let election = Election::new(
        session.cluster.client().clone(),
        &namespace,
        DEFAULT_LEASE,
        &identity,
        lease,
    );
    log(
        "info",
        "started",
        json!({
            "replica": identity,
            "lease": format!("{namespace}/{DEFAULT_LEASE}"),
            "listen": listening.to_string(),
        }),
    );
    let branch = args.source.revision.clone();
    let home = Home {
        session,
        namespace: namespace.clone(),
        clusters_dir: gitops::source::repo_cache_dir().with_file_name("clusters"),
    };
    let mut reconciler = Reconciler::new(args, &identity, metrics.clone(), home);
    let retry = (lease / 3).max(Duration::from_millis(500));
    let mut leading = false;
    let mut next_round = Instant::now();
    while !cancel.is_cancelled() {
        let leads = match election.try_lead().await {
            Ok(leads) => leads,
            Err(error) => {
                log(
                    "error",
                    "leader election failed",
                    json!({"error": error.to_string()}),
                );
                false
            }
        };
        metrics.set_leader(leads);
        if leads != leading {
            let what = if leads { "leading" } else { "standing by" };
            log("info", what, json!({"replica": identity}));
            // A new term starts from what the cluster's records say.
            reconciler.forget();
            next_round = Instant::now();
        }
        leading = leads;
        // A standby is ready: it takes over when the leader goes.
        if !leading {
            endpoints.set_ready();
        }
        if leading && Instant::now() >= next_round {
            let round = reconciler.round();
            let earliest = tokio::select! {
                earliest = round => earliest,
                lost = keep_leading(&election, retry) => {
                    // Whatever the round was doing stops here, as if this replica had died:
                    // the next leader finds its pending record and takes its locks over.
                    let _ = election.step_down().await;
                    bail!("lost the lead: {lost}");
                }
            };
            endpoints.set_ready();
            let interval = Instant::now() + args.repeat.interval;
            next_round = earliest.map_or(interval, |at| at.min(interval));
        }
        let wait = if leading {
            next_round
                .saturating_duration_since(Instant::now())
                .min(retry)
        } else {
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Some(push) = pushed.recv() => {
                // A push to another branch changes nothing here.
                if push.branch.is_none() || push.branch == branch || branch.is_none() {
                    next_round = Instant::now();
                }
            }
            () = cancel.cancelled() => {}
        }
    }
    if leading {
        // A standby takes over at once rather than after a lease duration.
        if let Err(error) = election.step_down().await {
            log(
                "error",
                "stepping down failed",
                json!({"error": error.to_string()}),
            );
        }
    }
    log("info", "stopped", json!({"replica": identity}));
    Ok(Outcome::Clean)
}

/// Renews the lead every `retry` until it is lost: another replica holds the Lease, or it
/// could not be renewed for a whole lease duration. Returns why.
async fn keep_leading(election: &Election, retry: Duration) -> String {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(retry).await;
        match election.try_lead().await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return "another replica holds the lease".into(),
            Err(error) if renewed.elapsed() >= election.duration() => {
                return format!("could not renew the lease: {error}");
            }
            Err(error) => log(
                "error",
                "renewing the lease failed",
                json!({"error": error.to_string()}),
            ),
        }
    }
}

/// The namespace of the pod this runs in, from its service account.
fn pod_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
}

/// An app on a context (None: the current one).
type Key = (String, Option<String>);

fn key(target: &Target) -> Key {
    (target.app.clone(), target.context.clone())
}

/// What the leader knows of one app this term.
struct AppState {
    /// The inputs id of the revision its deployed release came from (None: no deployed
    /// release, or unknown).
    synced: Option<String>,
    backoff: Backoff,
    /// The inputs whose sync failed last: new inputs (a fix) are synced at once, whatever
    /// the backoff says.
    failed: Option<String>,
    /// Not before (its lock was held by another sync).
    not_before: Option<Instant>,
}

impl AppState {
    fn new(synced: Option<String>, args: &ReconcileArgs) -> AppState {
        AppState {
            synced,
            backoff: Backoff::new(args.backoff, args.max_backoff),
            failed: None,
            not_before: None,
        }
    }

    /// Whether the app may sync inputs `id` at `now`.
    fn ready(&self, id: &str, now: Instant) -> bool {
        let backed_off = !self.backoff.ready(now) && self.failed.as_deref() == Some(id);
        !backed_off && self.not_before.is_none_or(|at| now >= at)
    }

    /// Whether the app is synced this round: its inputs `id` are not the deployed ones
    /// (or may have moved without a commit), and it may sync them now.
    fn due(&self, id: &InputsId, now: Instant) -> bool {
        self.ready(&id.id, now)
            && (id.moves_without_commits || self.synced.as_deref() != Some(&id.id))
    }

    fn due_at(&self) -> Option<Instant> {
        match (self.backoff.until(), self.not_before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Reconciler<'a> {
    args: &'a Args,
    identity: String,
    apps: BTreeMap<Key, AppState>,
    metrics: Arc<Metrics>,
    home: Home,
}

/// The reconciler's own cluster and namespace, where other clusters' Secrets are.
struct Home {
    session: Session,
    namespace: String,
    /// Where their kubeconfigs are written, readable by this user only.
    clusters_dir: std::path::PathBuf,
}

/// How one sync ended.
enum Ended {
    /// A new release (its status says whether it failed); boxed, it is large.
    Released {
        record: Box<ReleaseRecord>,
    },
    /// Nothing to change; the deployed release is current.
    Unchanged,
    /// Another sync holds the app's lock.
    Locked(String),
    Failed(String),
}

impl<'a> Reconciler<'a> {
    fn new(args: &'a Args, identity: &str, metrics: Arc<Metrics>, home: Home) -> Reconciler<'a> {
        Reconciler {
            args,
            identity: identity.to_string(),
            apps: BTreeMap::new(),
            metrics,
            home,
        }
    }

    /// Points each destination on a named context at the cluster Secret that defines it
    /// (read again each round); a context no Secret defines is the reconciler's own
    /// kubeconfig's, if it has one. Returns the destinations no cluster can be chosen for
    /// (a context two Secrets define, Secrets that cannot be read), with why.
    async fn place_on_clusters(&self, targets: &mut [Target]) -> HashMap<Key, String> {
        let mut unplaced = HashMap::new();
        if targets.iter().all(|t| t.context.is_none()) {
            return unplaced;
        }
        let clusters = match Clusters::read(
            &self.home.session.cluster,
            &self.home.namespace,
            &self.home.clusters_dir,
        )
        .await
        {
            Ok(clusters) => clusters,
            Err(error) => {
                for target in targets.iter().filter(|t| t.context.is_some()) {
                    unplaced.insert(key(target), error.to_string());
                }
                return unplaced;
            }
        };
        for problem in &clusters.problems {
            log(
                "error",
                "cluster Secret unusable",
                json!({"error": problem}),
            );
        }
        for target in targets.iter_mut() {
            let Some(context) = &target.context else {
                continue;
            };
            match clusters.file_for(context) {
                Some(Ok(file)) => target.kubeconfig = Some(file.to_path_buf()),
                Some(Err(why)) => {
                    unplaced.insert(key(target), why.to_string());
                }
                None => {}
            }
        }
        unplaced
    }

    fn forget(&mut self) {
        self.apps.clear();
    }

    /// Fetches, syncs the apps whose inputs changed, heals the drift of the others that
    /// ask for it. Returns when an app that waits may be tried next.
    async fn round(&mut self) -> Option<Instant> {
        let args = self.args;
        let source = match job::Source::read(args) {
            Ok(source) => source,
            Err(error) => {
                log(
                    "error",
                    "reading the repository failed",
                    json!({"error": format!("{error:#}")}),
                );
                return None;
            }
        };
        let mut targets = match source.destinations(args) {
            Ok(targets) => targets,
            Err(error) => {
                log(
                    "error",
                    "reading the app list failed",
                    json!({"error": format!("{error:#}")}),
                );
                return None;
            }
        };
        let unplaced = self.place_on_clusters(&mut targets).await;
        let files = &source.snapshot().files;
        let inputs: Vec<(Target, InputsId)> = targets
            .into_iter()
            .map(|target| {
                let id = inputs_id(files, app_inputs(&target));
                (target, id)
            })
            .collect();
        // Apps gone from the list are forgotten (their objects stay, as with Argo CD's
        // non-cascading delete).
        let listed: std::collections::BTreeSet<Key> = inputs.iter().map(|(t, _)| key(t)).collect();
        let metrics = &self.metrics;
        self.apps.retain(|k, _| {
            let keep = listed.contains(k);
            if !keep {
                metrics.forget_app(&k.0);
            }
            keep
        });
        let mut sessions = Sessions::default();
        self.learn(&source, &inputs, &mut sessions).await;

        let now = Instant::now();
        let due: Vec<&(Target, InputsId)> = inputs
            .iter()
            .filter(|(target, id)| {
                self.apps
                    .get(&key(target))
                    .is_none_or(|state| state.due(id, now))
            })
            .collect();
        // A destination no cluster can be chosen for fails as a sync would, and backs off.
        let (due, nowhere): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|(target, _)| !unplaced.contains_key(&key(target)));
        for (target, id) in nowhere {
            let why = unplaced[&key(target)].clone();
            self.note(
                target,
                id,
                Ended::Failed(why),
                Duration::ZERO,
                &mut sessions,
            )
            .await;
        }
        // An app waits for the apps it depends on: those synced this round first (in
        // order, as `--all` does), and those that are not while they failed last or never
        // deployed.
        let mut waiting: Vec<(&Target, String)> = Vec::new();
        let mut due: Vec<_> = due
            .into_iter()
            .filter(
                |(target, _)| match self.unsettled_dependency(target, &inputs) {
                    Some(reason) => {
                        waiting.push((target, reason));
                        false
                    }
                    None => true,
                },
            )
            .collect();
        // Waiting on a waiting app is waiting too: until no app moves.
        loop {
            let held: std::collections::BTreeSet<&str> =
                waiting.iter().map(|(t, _)| t.app.as_str()).collect();
            let (go, wait): (Vec<_>, Vec<_>) = due
                .into_iter()
                .partition(|(target, _)| !depends_on_any(target, &held));
            due = go;
            if wait.is_empty() {
                break;
            }
            let reason = "depends on an app that waits for its own";
            waiting.extend(wait.into_iter().map(|(target, _)| (target, reason.into())));
        }
        for (target, reason) in waiting {
            self.wait_for_dependency(target, reason);
        }
        self.metrics.set_queue_depth(due.len());
        let due_targets: Vec<Target> = due.iter().map(|(target, _)| target.clone()).collect();
        let dependencies = gitops_cli::depends::dependencies(&due_targets);
        let synced = crate::several::in_order(
            args,
            &source,
            &due_targets,
            &dependencies,
            args.reconcile.concurrency,
        )
        .await;
        self.metrics.set_queue_depth(0);
        let mut just_synced = std::collections::BTreeSet::new();
        for ((target, id), destination) in due.into_iter().zip(synced) {
            if let Some(reason) = destination.waiting() {
                self.wait_for_dependency(target, reason);
                continue;
            }
            just_synced.insert(key(target));
            let took = destination.took;
            self.note(target, id, ended(destination), took, &mut sessions)
                .await;
        }
        for (target, _) in &inputs {
            let heals = target.spec.as_ref().is_some_and(|spec| spec.self_heal);
            if heals && !just_synced.contains(&key(target)) && !unplaced.contains_key(&key(target))
            {
                self.heal(target, &mut sessions).await;
            }
        }
        self.apps.values().filter_map(AppState::due_at).min()
    }

    /// A dependency of `target` that is not synced this round (its inputs are unchanged,
    /// or it backs off) and did not deploy: why `target` waits for it.
    fn unsettled_dependency(
        &self,
        target: &Target,
        inputs: &[(Target, InputsId)],
    ) -> Option<String> {
        let names = target.spec.as_ref().map(|spec| spec.depends_on.as_slice());
        for name in names.unwrap_or_default() {
            for (other, id) in inputs.iter().filter(|(other, _)| &other.app == name) {
                let Some(state) = self.apps.get(&key(other)) else {
                    continue;
                };
                if state.due(id, Instant::now()) {
                    continue;
                }
                if state.failed.is_some() {
                    return Some(format!("depends on app {name}, which failed"));
                }
                if state.synced.is_none() {
                    return Some(format!("depends on app {name}, which is not deployed"));
                }
            }
        }
        None
    }

    /// `target` is tried again soon: an app it depends on did not deploy.
    fn wait_for_dependency(&mut self, target: &Target, reason: String) {
        let state = self
            .apps
            .entry(key(target))
            .or_insert_with(|| AppState::new(None, &self.args.reconcile));
        state.not_before = Some(Instant::now() + LOCK_RETRY);
        log_app(
            "info",
            "waiting for a dependency",
            target,
            json!({"reason": reason}),
        );
    }

    /// Learns, for each app not known this term, the inputs of the revision its deployed
    /// release came from.
    async fn learn(
        &mut self,
        source: &job::Source,
        inputs: &[(Target, InputsId)],
        sessions: &mut Sessions,
    ) {
        let head = source.snapshot().commit.as_ref().map(|c| c.id.clone());
        let mut trees: HashMap<String, Option<Vec<(Target, InputsId)>>> = HashMap::new();
        // Each unknown app's deployed release, read several at a time (a new leader of a
        // thousand apps would otherwise wait for a thousand reads one after another).
        let mut reads = Vec::new();
        for (target, id) in inputs {
            if self.apps.contains_key(&key(target)) {
                continue;
            }
            match sessions.store(self.args, target).await {
                Ok(store) => reads.push((target, id, store)),
                Err(error) => log_app(
                    "error",
                    "connecting failed",
                    target,
                    json!({"error": format!("{error:#}")}),
                ),
            }
        }
        let read = futures::stream::iter(reads)
            .map(|(target, id, store)| async move {
                let deployed = store.latest_deployed(&target.app).await;
                (target, id, deployed)
            })
            .buffered(LEARN_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (target, id, deployed) in read {
            let commit = match deployed {
                Ok(Some(record)) => record.commit.map(|c| c.id),
                Ok(None) => None,
                Err(error) => {
                    log_app(
                        "error",
                        "reading the release records failed",
                        target,
                        json!({"error": error.to_string()}),
                    );
                    continue;
                }
            };
            let synced = match commit {
                None => None,
                Some(commit) if Some(&commit) == head.as_ref() => Some(id.id.clone()),
                Some(commit) => trees
                    .entry(commit.clone())
                    .or_insert_with(|| inputs_at(self.args, source, &commit))
                    .as_ref()
                    .and_then(|then| then.iter().find(|(t, _)| key(t) == key(target)))
                    .map(|(_, then)| then.id.clone()),
            };
            self.apps
                .insert(key(target), AppState::new(synced, &self.args.reconcile));
        }
    }

    /// Notes how `target`'s sync ended: its state, a log line, an Event.
    async fn note(
        &mut self,
        target: &Target,
        id: &InputsId,
        ended: Ended,
        took: Duration,
        sessions: &mut Sessions,
    ) {
        let state = self
            .apps
            .entry(key(target))
            .or_insert_with(|| AppState::new(None, &self.args.reconcile));
        state.not_before = None;
        let seconds = took.as_secs_f64();
        let outcome = match &ended {
            Ended::Unchanged => Some(SyncOutcome::Unchanged),
            Ended::Locked(_) => None,
            Ended::Released { record } if record.status != ReleaseStatus::Failed => {
                Some(SyncOutcome::Synced)
            }
            Ended::Released { .. } | Ended::Failed(_) => Some(SyncOutcome::Failed),
        };
        if let Some(outcome) = outcome {
            self.metrics
                .sync_finished(&target.app, outcome, seconds, unix_now());
        }
        let (happened, message) = match ended {
            Ended::Unchanged => {
                state.synced = Some(id.id.clone());
                state.backoff.succeeded();
                state.failed = None;
                log_app("info", "unchanged", target, json!({"seconds": seconds}));
                return;
            }
            Ended::Locked(holder) => {
                state.not_before = Some(Instant::now() + LOCK_RETRY);
                log_app(
                    "info",
                    "waiting for another sync",
                    target,
                    json!({"holder": holder}),
                );
                return;
            }
            Ended::Released { record } if record.status != ReleaseStatus::Failed => {
                state.synced = Some(id.id.clone());
                state.backoff.succeeded();
                state.failed = None;
                let message = release_message(&record);
                log_app(
                    "info",
                    "synced",
                    target,
                    json!({"release": record.revision, "commit": commit_of(&record), "seconds": seconds}),
                );
                (Happened::Synced, message)
            }
            Ended::Released { record } => {
                let wait = state.backoff.failed(Instant::now());
                state.failed = Some(id.id.clone());
                let error = record.error.clone().unwrap_or_default();
                log_app(
                    "error",
                    "sync failed",
                    target,
                    json!({"release": record.revision, "error": error, "retry_in_seconds": wait.as_secs(), "failures": state.backoff.failures()}),
                );
                (
                    Happened::SyncFailed,
                    format!("release {} failed: {error}", record.revision),
                )
            }
            Ended::Failed(error) => {
                let wait = state.backoff.failed(Instant::now());
                state.failed = Some(id.id.clone());
                log_app(
                    "error",
                    "sync failed",
                    target,
                    json!({"error": error, "retry_in_seconds": wait.as_secs(), "failures": state.backoff.failures()}),
                );
                (Happened::SyncFailed, error)
            }
        };
        self.event(target, happened, &message, sessions).await;
    }

    /// Checks `target` for drift and heals what it finds.
    async fn heal(&mut self, target: &Target, sessions: &mut Sessions) {
        let args = self.args;
        let session = match sessions.connect(args, target).await {
            Ok(session) => session,
            Err(error) => {
                log_app(
                    "error",
                    "connecting failed",
                    target,
                    json!({"error": format!("{error:#}")}),
                );
                return;
            }
        };
        let (cluster, namespace) = (&session.cluster, namespace_of(args, target, &session));
        let request = CheckRequest {
            app: target.app.clone(),
            namespace: namespace.clone(),
            rules: target
                .spec
                .as_ref()
                .map(|spec| spec.ignore_rules())
                .unwrap_or_default(),
            ..CheckRequest::default()
        };
        let mut repos = Repos::default();
        let checked = match drift::check_app(cluster, &mut repos, &request).await {
            Ok(checked) => checked,
            Err(error) => {
                log_app(
                    "error",
                    "drift check failed",
                    target,
                    json!({"error": error.to_string()}),
                );
                return;
            }
        };
        let mut report = checked.report;
        let drifted = drift::needs_heal(&report, false);
        self.metrics.set_drift(&target.app, drifted);
        if !drifted {
            return;
        }
        let options = HealOptions {
            prune_strays: false,
            wait: args.change.wait_for(target.spec.as_ref()),
            history_max: args.change.history_max,
            who: session.connection.actor(),
            lock_duration: args.change.lock_duration,
            cancel: interrupt::install(),
        };
        let drifted = report.objects.len();
        let started = Instant::now();
        let (happened, message) = match drift::heal(
            cluster,
            &mut report,
            &checked.release,
            &options,
            &mut |_| {},
        )
        .await
        {
            Ok(Some(record)) => {
                let seconds = started.elapsed().as_secs_f64();
                self.metrics
                    .sync_finished(&target.app, SyncOutcome::Healed, seconds, unix_now());
                self.metrics.set_drift(&target.app, false);
                log_app(
                    "info",
                    "healed",
                    target,
                    json!({"release": record.revision, "drifted": drifted}),
                );
                (
                    Happened::Healed,
                    format!(
                        "healed {drifted} drifted object(s): release {}",
                        record.revision
                    ),
                )
            }
            Ok(None) => return,
            Err(error) => {
                log_app(
                    "error",
                    "heal failed",
                    target,
                    json!({"error": error.to_string()}),
                );
                (Happened::HealFailed, error.to_string())
            }
        };
        self.event(target, happened, &message, sessions).await;
    }

    async fn event(
        &self,
        target: &Target,
        happened: Happened,
        message: &str,
        sessions: &mut Sessions,
    ) {
        let args = self.args;
        let Ok(session) = sessions.connect(args, target).await else {
            return;
        };
        let namespace = namespace_of(args, target, &session);
        let client = session.cluster.client();
        if let Err(error) = events::record(
            client,
            &namespace,
            &target.app,
            happened,
            message,
            &self.identity,
        )
        .await
        {
            log_app(
                "error",
                "writing an Event failed",
                target,
                json!({"error": error.to_string()}),
            );
        }
    }
}

/// The inputs of every app of the list at `commit`, None when that commit cannot be read
/// (then the app is synced: that changes nothing if nothing changed).
fn inputs_at(args: &Args, source: &job::Source, commit: &str) -> Option<Vec<(Target, InputsId)>> {
    let tree = source.tree_at(commit).ok()?;
    let targets = source.destinations_in(args, &tree).ok()?;
    Some(
        targets
            .into_iter()
            .map(|target| {
                let id = inputs_id(&tree.snapshot.files, app_inputs(&target));
                (target, id)
            })
            .collect(),
    )
}

fn app_inputs(target: &Target) -> AppInputs<'_> {
    AppInputs {
        spec: target.spec.as_ref(),
        root: &target.root,
        chart: target.chart.as_ref(),
    }
}

fn ended(destination: crate::several::Destination) -> Ended {
    match destination.result {
        Ok(_) => match destination.record {
            Some(record) if destination.recorded => Ended::Released {
                record: Box::new(record),
            },
            _ => Ended::Unchanged,
        },
        Err(error) => match held_by(&error) {
            Some(holder) => Ended::Locked(holder),
            None => match destination.record {
                Some(record) if destination.recorded => Ended::Released {
                    record: Box::new(record),
                },
                _ => Ended::Failed(gitops_cli::targets::one_line(&error)),
            },
        },
    }
}

/// Whether `target` depends on one of the apps `names`.
fn depends_on_any(target: &Target, names: &std::collections::BTreeSet<&str>) -> bool {
    target
        .spec
        .as_ref()
        .is_some_and(|spec| spec.depends_on.iter().any(|d| names.contains(d.as_str())))
}

/// The holder of the app's lock, when the sync stopped because another sync holds it.
fn held_by(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        let lock = cause.downcast_ref::<LockError>().or_else(|| {
            match cause.downcast_ref::<SyncError>() {
                Some(SyncError::Lock(lock)) => Some(lock),
                _ => None,
            }
        })?;
        match lock {
            LockError::Held { holder, .. } => Some(holder.clone()),
            _ => None,
        }
    })
}

fn release_message(record: &ReleaseRecord) -> String {
    match &record.commit {
        Some(commit) => format!(
            "release {}: {} {}",
            record.revision, commit.short_id, commit.subject
        ),
        None => format!("release {}", record.revision),
    }
}

fn commit_of(record: &ReleaseRecord) -> Option<&str> {
    record.commit.as_ref().map(|c| c.short_id.as_str())
}

/// The namespace of `target`'s records: -n, the app list's, else the context's.
fn namespace_of(args: &Args, target: &Target, session: &Session) -> String {
    target
        .namespace(&args.connection)
        .unwrap_or_else(|| session.connection.namespace.clone())
}

/// One connection per destination's connection options for a round's reads (the syncs
/// connect on their own): apps on one context share it, unless they act as different
/// accounts (a tenant's reads are its account's).
#[derive(Default)]
struct Sessions {
    by_options: HashMap<ConnectOptions, Arc<Session>>,
}

impl Sessions {
    async fn connect(&mut self, args: &Args, target: &Target) -> Result<Arc<Session>> {
        let options = target.options(&args.connection);
        if let Some(session) = self.by_options.get(&options) {
            return Ok(session.clone());
        }
        let session = Arc::new(Session::connect(args, &options, target.spec.as_ref()).await?);
        self.by_options.insert(options, session.clone());
        Ok(session)
    }

    async fn store(&mut self, args: &Args, target: &Target) -> Result<ReleaseStore> {
        let session = self.connect(args, target).await?;
        let namespace = namespace_of(args, target, &session);
        Ok(ReleaseStore::new(
            session.cluster.client().clone(),
            &namespace,
        ))
    }
}

/// The webhook's secret: the file's text without its line end. An empty file is an
/// error: anyone could sign with an empty key.
fn read_secret(file: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("cannot read the webhook secret {}: {e}", file.display()))?;
    let secret = text.trim_ascii_end().to_vec();
    if secret.is_empty() {
        bail!("the webhook secret {} is empty", file.display());
    }
    Ok(secret)
}

fn log_endpoint_event(event: EndpointEvent) {
    match event {
        EndpointEvent::Push { peer, push, queued } => log(
            "info",
            "webhook push",
            json!({"peer": peer.to_string(), "ref": push.reference, "queued": queued}),
        ),
        EndpointEvent::Ping { peer } => {
            log("info", "webhook ping", json!({"peer": peer.to_string()}));
        }
        EndpointEvent::Refused { peer, refusal } => log(
            "warn",
            "webhook refused",
            json!({"peer": peer.to_string(), "error": refusal.to_string()}),
        ),
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One JSON line on stdout: time, level, what happened, and its fields.
fn log(level: &str, message: &str, fields: Value) {
    let mut line = json!({
        "time": gitops_cli::watch::now(),
        "level": level,
        "msg": message,
    });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn log_app(level: &str, message: &str, target: &Target, fields: Value) {
    let mut all = json!({"app": target.app, "context": target.context});
    if let (Some(all), Value::Object(fields)) = (all.as_object_mut(), fields) {
        all.extend(fields);
    }
    log(level, message, all);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_app_waits_out_its_backoff_unless_its_inputs_change() {
        let args = ReconcileArgs {
            reconcile: true,
            concurrency: 1,
            leader_namespace: None,
            leader_lease: Duration::from_secs(15),
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            listen: "127.0.0.1:0".parse().unwrap(),
            webhook_secret_file: None,
            git_credentials: None,
        };
        let second = Duration::from_secs(1);
        let mut state = AppState::new(Some("deployed".into()), &args);
        let now = Instant::now();
        assert!(state.ready("new", now));
        state.backoff.failed(now);
        state.failed = Some("new".into());
        assert!(!state.ready("new", now + 5 * second));
        assert!(state.ready("new", now + 10 * second));
        // A fix is synced at once.
        assert!(state.ready("fixed", now + 5 * second));
        // Another sync holds the lock: nothing until it is tried again.
        state.not_before = Some(now + 20 * second);
        assert!(!state.ready("fixed", now + 15 * second));
        assert_eq!(state.due_at(), Some(now + 20 * second));
    }
}
