//! A rollback as a sync job: the manifest a release stored, synced again with pruning and
//! recorded as a rollback to that release. `kubectl sync --rollback` and the dashboard's
//! rollback both build their job here, so both record the same release.

use super::refusal::{Guard, PruneRules};
use super::{SyncError, SyncOptions, desired_from_record, flow::SyncJob};
use crate::release::record::{Operation, ReleaseRecord};

/// The job that rolls `app` back to `target`, carried out as `options` say (what they
/// record of the source is taken from `target`).
pub fn rollback_job(
    app: &str,
    target: &ReleaseRecord,
    mut options: SyncOptions,
    rules: PruneRules,
) -> Result<SyncJob, SyncError> {
    let desired = desired_from_record(target)?;
    let guard = Guard {
        rules,
        empty_render: desired
            .is_empty()
            .then(|| format!("release {} records no objects", target.revision)),
    };
    options.operation = Operation::Rollback;
    options.rollback_of = Some(target.revision);
    options.description = format!("rollback to release {}", target.revision);
    options.repo = target.repo.clone();
    options.path = target.path.clone();
    options.renderer = target.renderer.clone();
    options.commit = target.commit.clone();
    options.commits = target.commits.clone();
    options.commits_left_out = target.commits_left_out;
    options.extra = target.extra.clone();
    Ok(SyncJob {
        app: app.to_string(),
        desired,
        options,
        prune: true,
        record_manifest: None,
        guard,
    })
}
