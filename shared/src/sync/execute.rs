//! Carrying out a plan: record it as pending, apply in order, prune, wait for health, and
//! finish the record, whatever happens in between, an interruption included: once the
//! caller's [`Cancel`] is set no new write starts, the requests in flight finish, and the
//! record says what was and was not applied.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, future, stream};

use super::hook_stages::{HookStages, HookStop};
use super::plan::SyncPlan;
use super::{
    Interruption, SyncError, SyncEvent, SyncOptions, SyncOutcome, Undo, WAITING_FOR_HEALTH,
};
use crate::apply::applyset::{self, ApplySetId};
use crate::apply::health::{Health, WaitOptions, wait_healthy};
use crate::apply::order::waves;
use crate::apply::prune;
use crate::apply::replace;
use crate::cancel::Cancel;
use crate::diff::to_yaml;
use crate::fingerprint::LiveMark;
use crate::hooks::{self, run::Runner};
use crate::live::{FIELD_MANAGER, LiveCluster};
use crate::objects::hook::Stage;
use crate::objects::{ObjectKey, crd_served_kinds};
use crate::release::record::{
    CASCADE_ACTION, Counts, HookRun, ObjectResult, Operation, ReleaseRecord, ReleaseStatus,
    StoredManifest,
};
use crate::release::store::{RecordMeta, ReleaseStore};

/// How long a CRD applied in this sync may take to become Established.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What happened to each object, filled in as the sync goes.
#[derive(Default)]
struct Progress {
    actions: BTreeMap<ObjectKey, &'static str>,
    messages: BTreeMap<ObjectKey, String>,
    health: BTreeMap<ObjectKey, Health>,
    pruned: Vec<ObjectKey>,
    /// Objects that were not members, deleted with a CRD or Namespace this sync pruned.
    cascaded: Vec<ObjectKey>,
    /// Where each object stood when the sync finished, for the next sync's fingerprints.
    marks: BTreeMap<ObjectKey, LiveMark>,
    /// Objects this sync created, with their uids: what undoing it deletes.
    created: Vec<(ObjectKey, String)>,
    /// Where each apply left its object.
    applied_marks: BTreeMap<ObjectKey, LiveMark>,
    /// The hooks run so far, in the order they started.
    hooks: Vec<HookRun>,
}

/// Runs `plan`: the record is written as pending before the first change and finished
/// after the last, so a failure leaves a failed record, never a gap. Cancelled before
/// that first write, or refused because another owner holds objects it would take over,
/// it writes nothing.
pub async fn execute(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    plan: &SyncPlan,
    options: &SyncOptions,
    cancel: &Cancel,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<SyncOutcome, SyncError> {
    if cancel.is_cancelled() {
        return Err(SyncError::InterruptedBeforeWriting);
    }
    // Before the first write: another owner's objects are refused without a trace (unlike
    // field conflicts, which a failed record explains), so the owner's state is untouched.
    // Forcing field conflicts is no consent to take whole objects over.
    if !plan.comparison.owners.is_empty() && !options.adopt {
        return Err(SyncError::OwnedElsewhere(plan.comparison.owners.clone()));
    }
    // Acting as a tenant's account: every write is allowed, or none is made.
    super::access::check(cluster, plan).await?;
    // A record left pending by a sync that died is failed now (we hold the app's lock).
    // One listing of the records (metadata only; the caller's if it made one under the
    // lock) serves that, the new record's number, and superseding and trimming at the end.
    let mut listed = match &options.listed {
        Some(listed) => listed.clone(),
        None => store.metadata(&plan.app).await?,
    };
    let failed = store.fail_pending_listed(&plan.app, &listed).await?;
    for meta in listed.iter_mut().filter(|m| failed.contains(&m.revision)) {
        meta.rewritten(ReleaseStatus::Failed);
    }
    let mut pending = ReleaseRecord::start(
        &plan.app,
        &plan.namespace,
        options.operation,
        &options.who,
        manifest_to_record(plan, options),
    );
    pending.rollback_of = options.rollback_of;
    pending.description = options.description.clone();
    pending.repo = options.repo.clone();
    pending.path = options.path.clone();
    pending.renderer = options.renderer.clone();
    pending.commit = options.commit.clone();
    pending.commits = options.commits.clone();
    pending.commits_left_out = options.commits_left_out;
    pending.extra = options.extra.clone();
    pending.source_digest = options.source_digest.clone();
    let hooks_digest = hooks::digest(plan.desired.hooks());
    pending.hooks_digest = hooks_digest.clone();
    // Hooks run with a change: objects to apply or prune, or hooks unlike the deployed
    // release's. A sync that finds the app as the revision has it runs none (as Argo CD
    // does not sync an app that is in sync), so a repeated sync never re-runs a migration.
    let hooks_changed = options
        .previous
        .as_ref()
        .map_or(hooks_digest.is_some(), |p| p.hooks_digest != hooks_digest);
    let runs_hooks = !options.no_hooks
        && options.operation != Operation::Heal
        && !plan.desired.hooks().is_empty()
        && (plan.change_count() > 0 || hooks_changed);
    let newest = listed.iter().map(|m| m.revision).max();
    let no_op = no_op_of(plan, options)
        .filter(|current| newest == Some(current.revision))
        .filter(|_| !runs_hooks);
    // A sync that changes nothing cannot stop half-way through a change: its record is
    // written once, when it ends, instead of pending first and finished after.
    let changes_nothing = plan.change_count() == 0 && !runs_hooks;
    let mut record = if changes_nothing {
        pending
    } else {
        // Pending, as it was started.
        let record = store.create_after(pending, &listed).await?;
        events(SyncEvent::Recorded {
            revision: record.revision,
        });
        record
    };

    let deadline = tokio::time::Instant::now() + options.timeout;
    let app_id = ApplySetId::for_app(&plan.app, &plan.namespace);
    let stages = runs_hooks.then(|| HookStages {
        hooks: plan.desired.hooks(),
        runner: Runner {
            cluster,
            app_id: app_id.as_str(),
            occasion: hooks::occasion(options.operation, options.previous.is_some()),
            deadline,
            cancel,
        },
    });
    let mut progress = Progress::default();
    let mut result = run(
        cluster,
        plan,
        options,
        (stages.as_ref(), deadline),
        cancel,
        &mut progress,
        events,
    )
    .await;
    if let (Some(stages), Err(error)) = (&stages, &result)
        && !error.is_interrupted()
    {
        // SyncFail hooks: their own failure is in their runs; the sync's error stands.
        if let Err(HookStop::Interrupted) =
            stages.run(Stage::Fail, &mut progress.hooks, events).await
        {
            result = Err(interrupted("running hooks", plan, &progress));
        }
    }
    if changes_nothing && matches!(result, Err(SyncError::Interrupted(_))) {
        // Nothing was to change, so nothing did: no record either.
        return Err(SyncError::InterruptedBeforeWriting);
    }

    if let (Some(current), Ok(())) = (no_op, &result) {
        return finish_no_op(store, plan, options, current, &progress, &listed).await;
    }
    record.finished = Some(jiff::Timestamp::now());
    record.counts = counts(&progress);
    record.objects = object_results(plan, &progress);
    record.hooks = std::mem::take(&mut progress.hooks);
    match &result {
        Ok(()) => record.status = ReleaseStatus::Deployed,
        Err(error) => {
            record.status = ReleaseStatus::Failed;
            record.error = Some(error.to_string());
        }
    }
    // The record must be finished even if the sync failed; a failure to write it is
    // reported alongside the sync's own error.
    if changes_nothing {
        match store.create_after(record, &listed).await {
            Ok(created) => record = created,
            Err(write_error) => {
                return Err(SyncError::RecordNotWritten {
                    sync: result.err().map(|e| e.to_string()),
                    write: write_error.to_string(),
                });
            }
        }
    } else if let Err(write_error) = store.update(&record).await {
        return Err(SyncError::RecordNotFinished {
            revision: record.revision,
            sync: result.err().map(|e| e.to_string()),
            write: write_error.to_string(),
        });
    }
    result?;
    // The records now: this sync's, then those listed before it (nobody else writes them
    // while we hold the lock). The previous deployed one is superseded without reading it
    // again, then the oldest are trimmed.
    listed.insert(0, RecordMeta::written(&record));
    store
        .supersede_listed(
            &plan.app,
            record.revision,
            &mut listed,
            options.previous.as_ref(),
        )
        .await?;
    store.trim_listed(options.history_max, &listed).await?;
    Ok(SyncOutcome {
        record,
        recorded: true,
    })
}

/// The no-op rule: a sync that changes nothing (nothing to apply or prune), of exactly
/// the objects the deployed release holds, from the same repository, path, renderer and
/// chart values, records no release of its own; it returns that release. A heal always
/// records one: it says what drift it found. (The caller also records one when a failed
/// or interrupted release is newer than the deployed one: the history then shows the
/// app back where it was.)
fn no_op_of<'a>(plan: &SyncPlan, options: &'a SyncOptions) -> Option<&'a ReleaseRecord> {
    if plan.change_count() != 0 || options.operation == Operation::Heal {
        return None;
    }
    let current = options.previous.as_ref()?;
    let same = current.status == ReleaseStatus::Deployed
        && plan.record_manifest.is_none()
        && same_objects(plan, current)
        && current.repo == options.repo
        && current.path == options.path
        && current.renderer == options.renderer
        && current.extra == options.extra;
    same.then_some(current)
}

/// Finishes a no-op sync: the deployed release `current` is rewritten with where its
/// objects were left (for the next sync's fingerprints) and as [`keep_current`] says.
/// What is returned is that release with this sync's counts and objects, for the caller
/// to show.
async fn finish_no_op(
    store: &ReleaseStore,
    plan: &SyncPlan,
    options: &SyncOptions,
    current: &ReleaseRecord,
    progress: &Progress,
    listed: &[RecordMeta],
) -> Result<SyncOutcome, SyncError> {
    let mut stored = current.clone();
    // Whether the record says more than when it was found current: else only its head is
    // rewritten (see `ReleaseStore::update_head`).
    let says_more = move_marks(&mut stored, &progress.marks);
    let mut shown = keep_current(store, stored, says_more, options, listed).await?;
    shown.counts = counts(progress);
    shown.objects = object_results(plan, progress);
    Ok(SyncOutcome {
        record: shown,
        recorded: false,
    })
}

/// Sets where `record`'s objects are now, as `marks` has them: whether any moved.
pub(super) fn move_marks(
    record: &mut ReleaseRecord,
    marks: &BTreeMap<ObjectKey, LiveMark>,
) -> bool {
    let mut moved = false;
    for object in &mut record.objects {
        if let Some(mark) = marks.get(&object.key)
            && (object.resource_version.as_deref() != Some(&mark.resource_version)
                || object.owned_hash != mark.owned)
        {
            object.resource_version = Some(mark.resource_version.clone());
            object.owned_hash = mark.owned.clone();
            moved = true;
        }
    }
    moved
}

/// Rewrites the deployed release `stored` that a sync found current: the time it was
/// found so (`last_synced`), for a sync of a later commit that commit and those it covers
/// (the release then says which commit is deployed), and the digest of the files it came
/// from; then trims the oldest records beyond `--history-max`, as after any sync.
/// `says_more`: `stored` holds more news than these (where its objects were left), else
/// only its head is written when nothing else changed.
pub(super) async fn keep_current(
    store: &ReleaseStore,
    mut stored: ReleaseRecord,
    mut says_more: bool,
    options: &SyncOptions,
    listed: &[RecordMeta],
) -> Result<ReleaseRecord, SyncError> {
    stored.last_synced = Some(jiff::Timestamp::now());
    let id = |c: &Option<crate::source::CommitInfo>| c.as_ref().map(|c| c.id.clone());
    if options.operation == Operation::Sync
        && options.commit.is_some()
        && id(&options.commit) != id(&stored.commit)
    {
        let newer = if options.commits.is_empty() {
            options.commit.iter().cloned().collect()
        } else {
            options.commits.clone()
        };
        stored.cover_newer(&newer, options.commits_left_out);
        says_more = true;
    }
    // The same objects from other files (reformatted, moved): the release now says which.
    if options.source_digest.is_some() && options.source_digest != stored.source_digest {
        stored.source_digest = options.source_digest.clone();
        says_more = true;
    }
    let written = if says_more {
        store.update(&stored).await
    } else {
        store.update_head(&stored).await
    };
    if let Err(write_error) = written {
        return Err(SyncError::RecordNotWritten {
            sync: None,
            write: write_error.to_string(),
        });
    }
    store.trim_listed(options.history_max, listed).await?;
    Ok(stored)
}

async fn run(
    cluster: &LiveCluster,
    plan: &SyncPlan,
    options: &SyncOptions,
    (stages, deadline): (Option<&HookStages<'_>>, tokio::time::Instant),
    cancel: &Cancel,
    progress: &mut Progress,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<(), SyncError> {
    if !plan.comparison.conflicts.is_empty() && !options.force_conflicts {
        return Err(SyncError::Conflicts(plan.comparison.conflicts.clone()));
    }
    // PreSync hooks, before any object is applied.
    if let Some(stages) = stages {
        stages
            .run(Stage::Pre, &mut progress.hooks, events)
            .await
            .map_err(|stop| stop.into_error(|| interrupted("running hooks", plan, progress)))?;
    }
    // The parent lists every kind and namespace before any member exists (KEP-3659), so
    // an interrupted sync never leaves members that a later prune cannot find.
    let mut superset = plan.applyset.clone();
    if let Some(existing) = &plan.existing {
        superset
            .group_kinds
            .extend(existing.group_kinds.iter().cloned());
        superset
            .additional_namespaces
            .extend(existing.additional_namespaces.iter().cloned());
    }
    if cancel.is_cancelled() {
        return Err(interrupted("applying", plan, progress));
    }
    // A parent that already says so is not written again (a no-op sync writes nothing).
    if plan.existing.as_ref() != Some(&superset) {
        applyset::write_parent(cluster, &superset).await?;
    }

    let to_apply = plan.to_apply();
    let added: BTreeSet<&ObjectKey> = plan
        .comparison
        .changes
        .changes
        .iter()
        .filter(|c| c.action == crate::diff::Action::Added)
        .map(|c| &c.key)
        .collect();
    let added = &added;
    for key in plan.desired.keys() {
        if !to_apply.contains(key) {
            progress.actions.insert(key.clone(), "unchanged");
        }
    }
    // The waves of the objects and of the Sync hooks: a wave starts once the one before
    // it is healthy. Without waves this is one wave, applied as fast as it can be.
    let mut all_waves = waves(&plan.phases);
    if let Some(stages) = stages {
        all_waves.extend(
            hooks::for_stage(stages.hooks, Stage::Sync, stages.runner.occasion)
                .into_iter()
                .map(|(wave, _)| wave),
        );
        all_waves.sort_unstable();
        all_waves.dedup();
    }
    for (index, &wave) in all_waves.iter().enumerate() {
        for phase in plan.phases.iter().filter(|p| p.wave == wave) {
            let keys: Vec<&ObjectKey> = phase
                .keys
                .iter()
                .filter(|k| to_apply.contains(*k))
                .collect();
            if keys.is_empty() {
                continue;
            }
            events(SyncEvent::Phase {
                name: phase.name,
                wave: phase.wave,
                count: keys.len(),
            });
            // Each answer is reported, and boiled down to what the record keeps, as soon as it
            // arrives: progress shows as it happens, and a thousand answers are never held at
            // once.
            // Once cancelled, no new apply is started; those under way finish.
            let mut applying = stream::iter(keys)
                .take_while(|_| future::ready(!cancel.is_cancelled()))
                .map(|key| async move {
                    let created = added.contains(key);
                    let result = match plan.desired.get(key) {
                        Some(desired) => {
                            replace::write(cluster, &desired.object, options.force_conflicts)
                                .await
                                .map(|applied| Some(Applied::of(&applied, created)))
                        }
                        None => Ok(None),
                    };
                    (key, created, result)
                })
                .buffer_unordered(cluster.concurrency());
            let mut failed = Vec::new();
            while let Some((key, created, result)) = applying.next().await {
                let action = if created { "created" } else { "configured" };
                match result {
                    Ok(applied) => {
                        if let Some(applied) = applied {
                            if let Some(mark) = applied.mark {
                                progress.applied_marks.insert(key.clone(), mark);
                            }
                            if let Some(uid) = applied.created_uid {
                                progress.created.push((key.clone(), uid));
                            }
                        }
                        progress.actions.insert(key.clone(), action);
                        events(SyncEvent::Applied { key, action });
                    }
                    Err(error) => {
                        // Where in the revision the refused object comes from.
                        let message = match plan.desired.get(key) {
                            Some(object) => {
                                let message = error.to_string();
                                format!("{}: {message}", plan.desired.refused_at(object, &message))
                            }
                            None => error.to_string(),
                        };
                        progress.actions.insert(key.clone(), "failed");
                        progress.messages.insert(key.clone(), message.clone());
                        events(SyncEvent::ApplyFailed {
                            key,
                            message: &message,
                        });
                        failed.push((key.clone(), message));
                    }
                }
            }
            if !failed.is_empty() {
                let (applied, not_applied) = applied_so_far(&to_apply, progress);
                // Undoing creations is writing too: not once the caller has asked to stop.
                let undo = if plan.comparison.unchecked_creates.is_empty() || cancel.is_cancelled()
                {
                    None
                } else {
                    Some(undo_creations(cluster, progress, events).await)
                };
                return Err(SyncError::ApplyFailed {
                    failed,
                    applied,
                    not_applied,
                    undo,
                });
            }
            if cancel.is_cancelled() {
                return Err(interrupted("applying", plan, progress));
            }
            if phase.name == "crds" {
                // Custom resources of these CRDs come in later phases.
                let crds: Vec<ObjectKey> = phase.keys.clone();
                let wait = WaitOptions {
                    timeout: CRD_ESTABLISH_TIMEOUT,
                    poll_interval: Duration::from_millis(250),
                };
                let mut quiet = |_: &ObjectKey, _: &Health| {};
                let health = tokio::select! {
                    health = wait_healthy(cluster, &crds, &wait, &mut quiet) => health?,
                    () = cancel.cancelled() => {
                        return Err(interrupted("waiting for CRDs to be established", plan, progress));
                    }
                };
                if let Some((key, h)) = health.iter().find(|(_, h)| **h != Health::Healthy) {
                    return Err(SyncError::Unhealthy {
                        objects: vec![(key.clone(), h.to_string())],
                    });
                }
                let served: Vec<(String, String)> = crds
                    .iter()
                    .filter_map(|key| plan.desired.get(key))
                    .flat_map(|crd| crd_served_kinds(&crd.object))
                    .collect();
                cluster
                    .refresh_discovery_until_served(&served, CRD_ESTABLISH_TIMEOUT)
                    .await?;
            }
        }
        if let Some(stages) = stages {
            let group = hooks::of_wave(stages.hooks, wave, stages.runner.occasion);
            if !group.is_empty() {
                stages
                    .run_group(Stage::Sync, wave, &group, &mut progress.hooks, events)
                    .await
                    .map_err(|stop| {
                        stop.into_error(|| interrupted("running hooks", plan, progress))
                    })?;
            }
        }
        if index + 1 < all_waves.len() {
            wait_for_wave(cluster, plan, wave, deadline, cancel, progress, events).await?;
        }
    }

    if plan.prune && !plan.stale.is_empty() {
        if cancel.is_cancelled() {
            return Err(interrupted("pruning", plan, progress));
        }
        // Kept CRDs stay, though the revision no longer has them.
        let keep: BTreeSet<ObjectKey> = plan
            .desired
            .keys()
            .chain(plan.kept.keys())
            .cloned()
            .collect();
        // Objects their options keep stay; PruneLast=true ones go in a last step.
        let mut pruned = Vec::new();
        for keep in plan.object_options.prune_steps(keep) {
            let step = prune::prune(cluster, &superset, &keep, false, cancel)
                .await
                .map_err(|error| error.after(&pruned))?;
            for key in &step {
                events(SyncEvent::Pruned { key });
            }
            pruned.extend(step);
        }
        // The objects the plan found in what was deleted went with it (the refusals let a
        // plan with such objects through only under --prune-cascade).
        progress.cascaded = plan
            .cascade
            .foreign
            .iter()
            .filter(|(_, cascaded)| pruned.contains(&cascaded.by))
            .map(|(key, _)| key.clone())
            .collect();
        progress.pruned = pruned;
        // Stopped part-way: the parent keeps listing every kind, so a later prune finds
        // the members left.
        if cancel.is_cancelled() {
            return Err(interrupted("pruning", plan, progress));
        }
    }
    // Once pruned, the parent lists exactly what the revision has; without pruning the
    // stale members still exist and stay listed.
    if plan.prune && plan.applyset != superset {
        applyset::write_parent(cluster, &plan.applyset).await?;
    }

    if let Some(wait) = &options.wait {
        let keys: Vec<ObjectKey> = plan.desired.keys().cloned().collect();
        events(SyncEvent::Waiting {
            count: keys.len(),
            timeout: wait.timeout,
        });
        let mut on_change =
            |key: &ObjectKey, health: &Health| events(SyncEvent::Health { key, health });
        let health = tokio::select! {
            health = wait_healthy(cluster, &keys, wait, &mut on_change) => health?,
            () = cancel.cancelled() => {
                return Err(interrupted(WAITING_FOR_HEALTH, plan, progress));
            }
        };
        let unhealthy: Vec<(ObjectKey, String)> = health
            .iter()
            .filter(|(_, h)| **h != Health::Healthy)
            .map(|(k, h)| (k.clone(), h.to_string()))
            .collect();
        progress.health = health;
        if !unhealthy.is_empty() {
            return Err(SyncError::Unhealthy { objects: unhealthy });
        }
    }
    // PostSync hooks, once every object is healthy (or, without waiting, once applied, as
    // Helm runs its post hooks without --wait).
    if let Some(stages) = stages {
        stages
            .run(Stage::Post, &mut progress.hooks, events)
            .await
            .map_err(|stop| stop.into_error(|| interrupted("running hooks", plan, progress)))?;
    }
    // Where every object was left, so the next sync or diff can skip the dry-run of those
    // nobody has written since: as its apply answered for a written object, as the plan
    // saw it for the others. Controllers that write back (status, their own annotations)
    // move the resourceVersion but not what we own, which the mark remembers too, so
    // nothing needs reading again.
    let mut marks = std::mem::take(&mut progress.applied_marks);
    marks.retain(|key, _| {
        matches!(
            progress.actions.get(key).copied(),
            Some("created" | "configured")
        )
    });
    for (key, mark) in &plan.comparison.live_marks {
        if !marks.contains_key(key) && plan.desired.get(key).is_some() {
            marks.insert(key.clone(), mark.clone());
        }
    }
    progress.marks = marks;
    Ok(())
}

/// Waits until every object of `wave` is healthy, before the next wave starts (whether or
/// not the sync waits for health at its end: a wave's meaning is that the next one needs it).
async fn wait_for_wave(
    cluster: &LiveCluster,
    plan: &SyncPlan,
    wave: i64,
    deadline: tokio::time::Instant,
    cancel: &Cancel,
    progress: &Progress,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<(), SyncError> {
    let keys: Vec<ObjectKey> = plan
        .phases
        .iter()
        .filter(|p| p.wave == wave)
        .flat_map(|p| p.keys.iter().cloned())
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    events(SyncEvent::WaveWaiting {
        wave,
        count: keys.len(),
    });
    let wait = WaitOptions {
        timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
        poll_interval: WAVE_POLL,
    };
    let mut quiet = |_: &ObjectKey, _: &Health| {};
    let health = tokio::select! {
        health = wait_healthy(cluster, &keys, &wait, &mut quiet) => health?,
        () = cancel.cancelled() => {
            return Err(interrupted("waiting for a wave to be healthy", plan, progress));
        }
    };
    let unhealthy: Vec<(ObjectKey, String)> = health
        .into_iter()
        .filter(|(_, h)| !h.is_healthy())
        .map(|(k, h)| (k, h.to_string()))
        .collect();
    if unhealthy.is_empty() {
        Ok(())
    } else {
        Err(SyncError::WaveUnhealthy {
            wave,
            objects: unhealthy,
        })
    }
}

/// How often a wave's objects are looked at while the next wave waits for them.
const WAVE_POLL: Duration = Duration::from_millis(500);

/// (applied, not applied): the objects of `to_apply` this sync created or configured so
/// far, and those it has not got to.
fn applied_so_far(
    to_apply: &BTreeSet<ObjectKey>,
    progress: &Progress,
) -> (Vec<ObjectKey>, Vec<ObjectKey>) {
    let applied = progress
        .actions
        .iter()
        .filter(|(_, a)| matches!(**a, "created" | "configured"))
        .map(|(k, _)| k.clone())
        .collect();
    let not_applied = to_apply
        .iter()
        .filter(|k| !progress.actions.contains_key(*k))
        .cloned()
        .collect();
    (applied, not_applied)
}

/// The error of a sync its caller stopped while it was `during` something.
fn interrupted(during: &'static str, plan: &SyncPlan, progress: &Progress) -> SyncError {
    let (applied, not_applied) = applied_so_far(&plan.to_apply(), progress);
    let not_pruned = if plan.prune {
        plan.stale
            .keys()
            .filter(|k| !progress.pruned.contains(k))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    SyncError::Interrupted(Interruption {
        during,
        applied,
        not_applied,
        pruned: progress.pruned.clone(),
        not_pruned,
    })
}

/// What a sync keeps of one apply's answer.
struct Applied {
    /// Where the apply left the object.
    mark: Option<LiveMark>,
    /// For an object that did not exist when planned: [`created_by_us`].
    created_uid: Option<String>,
}

impl Applied {
    fn of(applied: &serde_json::Value, created: bool) -> Applied {
        Applied {
            mark: LiveMark::of(applied),
            created_uid: created.then(|| created_by_us(applied)).flatten(),
        }
    }
}

/// Whether `applied` (an apply's answer for an object that did not exist when planned) was
/// created by this apply, and its uid if so: every field is ours. An object someone else
/// created in between also carries their fields, and an undo must not delete it.
fn created_by_us(applied: &serde_json::Value) -> Option<String> {
    let managers = applied.pointer("/metadata/managedFields")?.as_array()?;
    let ours = managers
        .iter()
        .all(|m| m.get("manager").and_then(serde_json::Value::as_str) == Some(FIELD_MANAGER));
    if !ours {
        return None;
    }
    applied
        .pointer("/metadata/uid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

/// Deletes what this sync created (by uid, so never a replacement), after a create the
/// server refused: nothing else was changed, so the cluster is then as the sync found it.
async fn undo_creations(
    cluster: &LiveCluster,
    progress: &mut Progress,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Undo {
    let created = std::mem::take(&mut progress.created);
    let results = stream::iter(&created)
        .map(|(key, uid)| async move { (key, cluster.delete(key, Some(uid), false).await) })
        .buffer_unordered(cluster.concurrency())
        .collect::<Vec<_>>()
        .await;
    let mut undo = Undo::default();
    for (key, result) in results {
        match result {
            Ok(_) => {
                progress.actions.insert(key.clone(), "undone");
                events(SyncEvent::Undone { key });
                undo.deleted.push(key.clone());
            }
            Err(error) => undo.left.push((key.clone(), error.to_string())),
        }
    }
    undo.deleted.sort();
    undo.left.sort();
    undo
}

fn counts(progress: &Progress) -> Counts {
    let count = |action: &str| progress.actions.values().filter(|a| **a == action).count();
    Counts {
        created: count("created"),
        configured: count("configured"),
        unchanged: count("unchanged"),
        pruned: progress.pruned.len() + progress.cascaded.len(),
        failed: count("failed"),
        cascaded: progress.cascaded.len(),
    }
}

fn object_results(plan: &SyncPlan, progress: &Progress) -> Vec<ObjectResult> {
    let mut results: Vec<ObjectResult> = plan
        .desired
        .keys()
        .map(|key| ObjectResult {
            key: key.clone(),
            action: progress
                .actions
                .get(key)
                .copied()
                .unwrap_or("not-applied")
                .to_string(),
            health: progress.health.get(key).map(ToString::to_string),
            message: progress.messages.get(key).cloned(),
            resource_version: progress.marks.get(key).map(|m| m.resource_version.clone()),
            applied_hash: progress
                .marks
                .get(key)
                .and_then(|_| plan.desired.get(key))
                .map(|o| o.applied_hash().to_string()),
            owned_hash: progress.marks.get(key).and_then(|m| m.owned.clone()),
        })
        .collect();
    let pruned = progress.pruned.iter().map(|key| (key, "pruned", None));
    let cascaded = progress
        .cascaded
        .iter()
        .map(|key| (key, CASCADE_ACTION, None));
    // Stale members their options keep: why, in the message.
    let kept = plan
        .object_options
        .kept
        .iter()
        .map(|(key, reason)| (key, "kept", Some(reason.to_string())));
    results.extend(
        pruned
            .chain(cascaded)
            .chain(kept)
            .map(|(key, action, message)| ObjectResult::done(key, action, message)),
    );
    results
}

/// The manifest this sync records: the plan's own if it has one, else the previous
/// release's text when that release applied exactly these objects (the same hash for
/// every key, none more or less: writing them out again would give the same text), else
/// [`manifest_of`] the plan.
fn manifest_to_record(plan: &SyncPlan, options: &SyncOptions) -> StoredManifest {
    if let Some(manifest) = &plan.record_manifest {
        return manifest.clone();
    }
    match &options.previous {
        Some(previous)
            if same_objects(plan, previous)
                && previous.hooks_digest == hooks::digest(plan.desired.hooks()) =>
        {
            previous.manifest.clone()
        }
        _ => manifest_of(plan),
    }
}

/// Whether `previous` applied exactly the objects of `plan`: the same hash for every key,
/// none more or less.
fn same_objects(plan: &SyncPlan, previous: &ReleaseRecord) -> bool {
    let recorded: BTreeMap<&ObjectKey, &str> = previous
        .objects
        .iter()
        .filter(|o| o.action != "pruned" && o.action != CASCADE_ACTION)
        .filter_map(|o| Some((&o.key, o.applied_hash.as_deref()?)))
        .collect();
    recorded.len() == plan.desired.len()
        && plan
            .desired
            .iter()
            .all(|o| recorded.get(&o.key) == Some(&o.applied_hash()))
}

/// The rendered manifest as applied (labels included), in apply order, then the hooks as
/// the revision has them, so a rollback can re-apply it, and run its hooks, without git.
fn manifest_of(plan: &SyncPlan) -> StoredManifest {
    let objects = plan
        .phases
        .iter()
        .flat_map(|phase| &phase.keys)
        .filter_map(|key| plan.desired.get(key))
        .map(|object| &object.object);
    let hooks = plan.desired.hooks().iter().map(|hook| &hook.object);
    StoredManifest::from_parts(
        objects
            .chain(hooks)
            .map(|object| format!("---\n{}", to_yaml(object))),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::created_by_us;

    #[test]
    fn only_an_object_whose_every_field_is_ours_counts_as_created_by_this_sync() {
        let ours = json!({"metadata": {"uid": "u1", "managedFields": [
            {"manager": "kubectl-gitops", "operation": "Apply"}
        ]}});
        assert_eq!(created_by_us(&ours).as_deref(), Some("u1"));
        // Someone created it between the plan and the apply: an undo must leave it.
        let shared = json!({"metadata": {"uid": "u2", "managedFields": [
            {"manager": "kubectl-gitops", "operation": "Apply"},
            {"manager": "kubectl-create", "operation": "Update"}
        ]}});
        assert_eq!(created_by_us(&shared), None);
        assert_eq!(created_by_us(&json!({"metadata": {"uid": "u3"}})), None);
    }
}
