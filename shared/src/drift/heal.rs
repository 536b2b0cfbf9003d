//! Healing: putting the deployed release back where the cluster drifted from it.
//!
//! A heal is a sync of the release's own manifest, under the app's lock, recorded as a
//! release with operation `heal`:
//! - only objects whose dry run differs from the live object are applied (sync's plan
//!   already skips the others), so modified objects are put back and deleted ones
//!   recreated;
//! - with force, since the drifted fields now belong to whoever changed them;
//! - fields that ignore rules cover are left out of what is applied, so their owners
//!   (an HPA, say) keep them; the record still holds the release's manifest unchanged;
//! - strays are deleted only when asked (`prune_strays`), as sync deletes stale members
//!   only with `--prune`; the ApplySet parent is never narrowed otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use super::DriftError;
use super::fields::without_fields;
use super::model::{AppDrift, Healed, ObjectState};
use crate::apply::health::WaitOptions;
use crate::cancel::Cancel;
use crate::compare::Missing;
use crate::live::LiveCluster;
use crate::objects::ObjectKey;
use crate::release::record::{Operation, ReleaseRecord};
use crate::release::store::ReleaseStore;
use crate::sync::flow::{self, SyncJob};
use crate::sync::{Guard, SyncEvent, SyncOptions};

/// How long a heal that does not wait for health may take (it runs no hooks and has one
/// wave, so nothing but its writes counts against it).
const HEAL_BUDGET: Duration = Duration::from_secs(300);

/// How to heal.
#[derive(Debug, Clone)]
pub struct HealOptions {
    /// Delete strays too.
    pub prune_strays: bool,
    /// Wait for the healed app to be healthy; None skips it.
    pub wait: Option<WaitOptions>,
    /// Release records to keep.
    pub history_max: usize,
    /// Who heals, for the record and the lock.
    pub who: String,
    /// How long the app's lock lasts without renewal.
    pub lock_duration: Duration,
    /// Stops the heal as it stops a sync (see [`flow`]).
    pub cancel: Cancel,
}

/// Whether healing `report` would change anything.
pub fn needs_heal(report: &AppDrift, prune_strays: bool) -> bool {
    report
        .objects
        .iter()
        .any(|o| o.state != ObjectState::Stray || prune_strays)
}

/// Heals the drift `report` found against `release`, and notes the release written in
/// `report.healed`. Does nothing (Ok(None)) if there is nothing to heal.
pub async fn heal(
    cluster: &LiveCluster,
    report: &mut AppDrift,
    release: &ReleaseRecord,
    options: &HealOptions,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<Option<ReleaseRecord>, DriftError> {
    if report.against.kind != "release" {
        return Err(DriftError::HealAgainstRevision {
            revision: report.against.name.clone(),
        });
    }
    if !needs_heal(report, options.prune_strays) {
        return Ok(None);
    }
    let store = ReleaseStore::new(cluster.client().clone(), &report.namespace);
    let locked = flow::lock(
        cluster,
        &report.namespace,
        &report.app,
        &options.who,
        options.lock_duration,
    )
    .await?;
    if let Some(taken_over) = locked.taken_over() {
        events(SyncEvent::LockTakenOver { taken_over });
    }
    let job = match heal_job(&store, cluster, report, release, options).await {
        Ok(job) => job,
        Err(error) => {
            // Best effort: the error that stopped the heal is the one to report.
            let _ = locked.release().await;
            return Err(error);
        }
    };
    let planned = locked
        .plan(cluster, &store, job, Missing::default(), &options.cancel)
        .await?;
    let executed = planned
        .execute(cluster, &store, &options.cancel, events)
        .await;
    executed.result?;
    let Some(record) = executed.record else {
        return Ok(None);
    };
    report.healed = Some(Healed {
        release: record.revision,
        status: record.status.to_string(),
        description: record.description.clone(),
        counts: record.counts.clone(),
    });
    Ok(Some(record))
}

/// What healing `report` applies: the release's objects, less the fields ignore rules
/// cover, recorded with the release's manifest as it was. Checked under the lock: a sync
/// between the check and the lock deployed something else, and healing towards the old
/// release would undo it.
async fn heal_job(
    store: &ReleaseStore,
    cluster: &LiveCluster,
    report: &AppDrift,
    release: &ReleaseRecord,
    options: &HealOptions,
) -> Result<SyncJob, DriftError> {
    let current = store.latest_deployed(&report.app).await?;
    if current.as_ref().map(|r| r.revision) != Some(release.revision) {
        return Err(DriftError::ReleaseMoved {
            app: report.app.clone(),
            checked: release.revision,
            now: current.map(|r| r.revision),
        });
    }
    let mut desired = super::check::release_objects(release, cluster)?;
    let ignored = ignored_paths(report);
    for (key, object) in desired.iter_mut() {
        if let (Some(paths), Some(applied)) = (ignored.get(key), report.applied.get(key)) {
            *object = without_fields(object, applied, paths);
        }
    }
    let prune = options.prune_strays;
    let options = SyncOptions {
        force_conflicts: true,
        // A heal puts this app's objects back; one another owner took is theirs now.
        adopt: false,
        wait: options.wait.clone(),
        timeout: options
            .wait
            .as_ref()
            .map_or(HEAL_BUDGET, |wait| wait.timeout),
        // A heal puts objects back; it is no sync of a revision, so no hook runs.
        no_hooks: true,
        history_max: options.history_max,
        operation: Operation::Heal,
        rollback_of: None,
        description: description(report, options.prune_strays),
        who: options.who.clone(),
        repo: release.repo.clone(),
        path: release.path.clone(),
        renderer: release.renderer.clone(),
        commit: release.commit.clone(),
        commits: release.commits.clone(),
        commits_left_out: release.commits_left_out,
        extra: release.extra.clone(),
        // It records the release's manifest: the same files render it.
        source_digest: release.source_digest.clone(),
        previous: None,
        listed: None,
    };
    Ok(SyncJob {
        app: report.app.clone(),
        desired,
        options,
        prune,
        record_manifest: Some(release.manifest.clone()),
        guard: Guard::default(),
    })
}

/// The ignored fields of each object, as pointers into its dry run.
fn ignored_paths(report: &AppDrift) -> BTreeMap<ObjectKey, Vec<String>> {
    let mut paths: BTreeMap<ObjectKey, Vec<String>> = BTreeMap::new();
    for field in &report.ignored {
        paths
            .entry(field.key.clone())
            .or_default()
            .push(field.path.clone());
    }
    paths
}

/// `healed drift from release 3: modified Deployment.apps shop/web; deleted ConfigMap
/// shop/settings`, naming at most a few objects per state.
fn description(report: &AppDrift, prune_strays: bool) -> String {
    const SHOWN: usize = 3;
    let mut parts = Vec::new();
    for (state, verb) in [
        (ObjectState::Modified, "modified"),
        (ObjectState::Deleted, "deleted"),
        (ObjectState::Stray, "pruned stray"),
    ] {
        if state == ObjectState::Stray && !prune_strays {
            continue;
        }
        let keys: Vec<String> = report.in_state(state).map(|o| o.key.to_string()).collect();
        if keys.is_empty() {
            continue;
        }
        let mut text = format!("{verb} {}", keys[..keys.len().min(SHOWN)].join(", "));
        if keys.len() > SHOWN {
            text.push_str(&format!(" and {} more", keys.len() - SHOWN));
        }
        parts.push(text);
    }
    format!(
        "healed drift from release {}: {}",
        report.release,
        parts.join("; ")
    )
}
