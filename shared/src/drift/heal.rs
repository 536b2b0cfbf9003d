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
use crate::live::LiveCluster;
use crate::lock;
use crate::objects::ObjectKey;
use crate::release::record::{Operation, ReleaseRecord};
use crate::release::store::ReleaseStore;
use crate::sync::{self, SyncEvent, SyncOptions};

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
    let holder = lock::holder_identity(&options.who);
    let lock = lock::acquire(
        cluster.client().clone(),
        &report.namespace,
        &report.app,
        &holder,
        options.lock_duration,
    )
    .await?
    .keep_alive()?;
    let result = heal_locked(cluster, report, release, options, &lock, events).await;
    let released = lock.release().await;
    let record = result?;
    released?;
    report.healed = Some(Healed {
        release: record.revision,
        status: record.status.to_string(),
        description: record.description.clone(),
        counts: record.counts.clone(),
    });
    Ok(Some(record))
}

async fn heal_locked(
    cluster: &LiveCluster,
    report: &AppDrift,
    release: &ReleaseRecord,
    options: &HealOptions,
    lock: &lock::KeepAlive,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<ReleaseRecord, DriftError> {
    let store = ReleaseStore::new(cluster.client().clone(), &report.namespace);
    // A sync between the check and the lock deployed something else: healing towards the
    // old release would undo it.
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
    let mut plan = sync::plan(
        cluster,
        &report.app,
        &report.namespace,
        desired,
        options.prune_strays,
    )
    .await?;
    plan.record_manifest = Some(release.manifest.clone());
    lock.check()?;
    let sync_options = SyncOptions {
        force_conflicts: true,
        wait: options.wait.clone(),
        history_max: options.history_max,
        operation: Operation::Heal,
        rollback_of: None,
        description: description(report, options.prune_strays),
        who: options.who.clone(),
        repo: release.repo.clone(),
        path: release.path.clone(),
        renderer: release.renderer.clone(),
        commit: release.commit.clone(),
        extra: release.extra.clone(),
        previous: Some(release.clone()),
        listed: None,
    };
    match sync::execute(cluster, &store, &plan, &sync_options, events).await {
        Ok(outcome) => Ok(outcome.record),
        Err(error) => Err(error.into()),
    }
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
