//! The dashboard's actions, when it was started with `--allow-actions`, on apps of ours:
//! - rolling back to one of its releases: the page first shows what the rollback would
//!   change (a plan without the lock, as `kubectl diff-git` makes one); the POST that
//!   confirms it runs the job `kubectl sync --rollback REV` runs (the library's
//!   [`rollback_job`]), under the app's lock, and records the same release; to the
//!   deployed release, it syncs that release's recorded manifest again (what differs
//!   from it in the cluster is applied), as `kubectl sync --rollback REV` does then;
//! - healing its drift: the page shows what a fresh drift check found; the POST checks
//!   again and heals as `kubectl drift APP --heal` does (the library's [`heal`]).

use std::time::Duration;

use super::DashboardError;
use super::data::{AppRef, Cluster};
use super::token::{Token, random_hex};
use crate::cancel::Cancel;
use crate::compare::Missing;
use crate::diff::{self, TextOptions};
use crate::drift::{CheckRequest, Checked, HealOptions, Repos, check_app, heal};
use crate::release::history::Source;
use crate::release::record::{ReleaseRecord, ReleaseStatus};
use crate::release::rollback;
use crate::release::store::ReleaseStore;
use crate::sync::flow::{self, SyncJob};
use crate::sync::{DEFAULT_HISTORY_MAX, PruneRules, SyncOptions, rollback_job};

/// How long the app's lock lasts without renewal, as `kubectl sync`'s default.
const LOCK_DURATION: Duration = Duration::from_secs(60);

/// The actions of one dashboard run, and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct Actions {
    csrf: Token,
}

impl Actions {
    pub fn new() -> Result<Actions, DashboardError> {
        Ok(Actions {
            csrf: Token::from_text(&random_hex(32)?),
        })
    }

    /// The token every action form carries.
    pub fn csrf(&self) -> &str {
        self.csrf.as_str()
    }

    /// Whether a form's token is this run's.
    pub fn csrf_matches(&self, given: &str) -> bool {
        self.csrf.matches(given)
    }
}

/// What a rollback would do, for the page that asks.
pub struct RollbackPreview {
    /// The release it goes to, and why that one.
    pub target: u32,
    pub reason: String,
    /// The release it goes to is the deployed one: it is synced again.
    pub again: bool,
    /// The changes as diff-git draws them, Secrets masked, and their summary line.
    pub text: String,
    pub summary: String,
    /// Why it would be refused or fail, as `kubectl sync --rollback` would say it: objects
    /// another app or a Helm release owns, fields another field manager took. The page
    /// then offers nothing to confirm: what takes those over is the command line's
    /// explicit `--adopt` or `--force-conflicts`, or a heal.
    pub blocked: Vec<String>,
}

/// What a heal of `app` would undo: a drift check made now.
pub async fn check_drift(cluster: &Cluster, app: &AppRef) -> Result<Checked, String> {
    if app.source != Source::Gitops {
        return Err(format!(
            "app {} is a Helm release: its drift is not checked",
            app.app
        ));
    }
    let request = CheckRequest {
        app: app.app.clone(),
        namespace: app.namespace.clone(),
        ..CheckRequest::default()
    };
    check_app(&cluster.live, &mut Repos::default(), &request)
        .await
        .map_err(|e| e.to_string())
}

/// Checks `app` again and heals what drifted, as `kubectl drift APP --heal` does with its
/// defaults. Returns the release it recorded (None: nothing had drifted).
pub async fn heal_drift(cluster: &Cluster, app: &AppRef) -> Result<Option<u32>, String> {
    let mut checked = check_drift(cluster, app).await?;
    let options = HealOptions {
        prune_strays: false,
        wait: SyncOptions::by(cluster.who.clone()).wait,
        history_max: DEFAULT_HISTORY_MAX,
        who: cluster.who.clone(),
        lock_duration: LOCK_DURATION,
        cancel: Cancel::new(),
    };
    let record = heal(
        &cluster.live,
        &mut checked.report,
        &checked.release,
        &options,
        &mut |_| {},
    )
    .await
    .map_err(|e| format!("the heal failed: {e}"))?;
    Ok(record.map(|r| r.revision))
}

/// The releases `app` has, readable ones only, newest first.
async fn records(store: &ReleaseStore, app: &AppRef) -> Result<Vec<ReleaseRecord>, String> {
    if app.source != Source::Gitops {
        return Err(format!(
            "app {} is a Helm release: roll it back with helm rollback",
            app.app
        ));
    }
    let entries = store.list(&app.app).await.map_err(|e| e.to_string())?;
    Ok(entries.into_iter().flatten().collect())
}

/// The job that rolls `app` back to `revision` as `kubectl sync --rollback REV` would, with
/// the app's record store, the release it goes to, why that one, and whether it is the
/// deployed one.
async fn rollback_to(
    cluster: &Cluster,
    app: &AppRef,
    revision: u32,
) -> Result<(ReleaseStore, SyncJob, u32, String, bool), String> {
    let store = ReleaseStore::new(cluster.live.client().clone(), &app.namespace);
    let records = records(&store, app).await?;
    let chosen = rollback::choose(&app.app, &app.namespace, &records, Some(revision))
        .map_err(|e| e.to_string())?;
    let job = rollback_job(
        &app.app,
        chosen.release,
        SyncOptions::by(cluster.who.clone()),
        PruneRules::default(),
    )
    .map_err(|e| e.to_string())?;
    let target = chosen.release.revision;
    let again = chosen.release.status == ReleaseStatus::Deployed;
    Ok((store, job, target, chosen.reason, again))
}

/// What rolling `app` back to `revision` would change.
pub async fn preview_rollback(
    cluster: &Cluster,
    app: &AppRef,
    revision: u32,
) -> Result<RollbackPreview, String> {
    let (store, job, target, reason, again) = rollback_to(cluster, app, revision).await?;
    let mut preview = flow::preview(&cluster.live, &store, &app.app, job.desired, false)
        .await
        .map_err(|e| e.to_string())?;
    preview.changes.mask_secrets();
    let options = TextOptions {
        context: 3,
        color: false,
    };
    let after = format!("release-{target}");
    let text = preview
        .changes
        .differences()
        .map(|change| diff::unified(change, "live", &after, &options))
        .collect();
    let owned = preview.owners.iter().map(|owned| {
        format!(
            "{} belongs to {}: it is not taken over (kubectl sync --rollback {target} --adopt would take it)",
            owned.key, owned.owner
        )
    });
    let conflicts = preview.conflicts.iter().map(|conflict| {
        format!(
            "{}: {}: the apply would fail on this conflict (a heal takes such fields back; kubectl sync --rollback {target} --force-conflicts would take them)",
            conflict.key, conflict.message
        )
    });
    Ok(RollbackPreview {
        target,
        reason,
        again,
        text,
        summary: diff::summary_line(&preview.changes.summary()),
        blocked: owned.chain(conflicts).collect(),
    })
}

/// Rolls `app` back to `revision`: the lock, the plan, the changes, the record, as
/// `kubectl sync --rollback REV` does them. Returns the release it recorded.
pub async fn rollback(cluster: &Cluster, app: &AppRef, revision: u32) -> Result<u32, String> {
    let (store, job, ..) = rollback_to(cluster, app, revision).await?;
    let cancel = Cancel::new();
    let locked = flow::lock(
        &cluster.live,
        &app.namespace,
        &app.app,
        &cluster.who,
        LOCK_DURATION,
    )
    .await
    .map_err(|e| e.to_string())?;
    let planned = locked
        .plan(&cluster.live, &store, job, Missing::DryRun, &cancel)
        .await
        .map_err(|e| e.to_string())?;
    let executed = planned
        .execute(&cluster.live, &store, &cancel, &mut |_| {})
        .await;
    let recorded = executed.record.map(|r| r.revision);
    executed.result.map_err(|e| match recorded {
        Some(n) => format!("the rollback failed (release {n} says how far it got): {e}"),
        None => format!("the rollback failed: {e}"),
    })?;
    recorded.ok_or_else(|| "the rollback recorded no release".to_string())
}
