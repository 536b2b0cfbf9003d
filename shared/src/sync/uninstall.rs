//! Uninstalling an app: its PreDelete hooks, every member deleted in reverse order (waves
//! reversed, custom resources before their CRDs, Namespaces last), what must stay kept and
//! said so, its PostDelete hooks, the ApplySet parent deleted (kept members keep their
//! membership label, so an app installed again under the name takes them back), and a last release recorded
//! as `uninstalled` (the records stay as the audit trail unless purged).
//!
//! What stays: members marked `Delete=false` or `helm.sh/resource-policy: keep`; CRDs,
//! unless asked (Helm never deletes the CRDs it installed); a CRD or Namespace whose
//! deletion would take objects that are not the app's, or a member that stays, with it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::cascade::{self, is_crd};
use super::hook_stages::HookStages;
use super::{Interruption, SyncError, SyncEvent, desired_from_record};
use crate::apply::applyset::{self, ApplySet, ApplySetError, ApplySetId};
use crate::apply::object_options::keep_on_delete;
use crate::apply::order::{live_wave, prune_phases_by_wave};
use crate::cancel::Cancel;
use crate::hooks::run::Runner;
use crate::live::{LiveCluster, LiveError};
use crate::objects::hook::{Hook, Occasion, Stage};
use crate::objects::{DesiredSet, ObjectKey};
use crate::release::record::{
    Counts, ObjectResult, Operation, ReleaseRecord, ReleaseStatus, StoredManifest,
};
use crate::release::store::{RecordMeta, ReleaseStore};

/// How to uninstall.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// Delete the app's CRDs too (and so their custom resources).
    pub prune_crds: bool,
    /// Let a CRD's or Namespace's deletion take objects that are not the app's with it.
    pub prune_cascade: bool,
    pub no_hooks: bool,
    /// Delete the app's release records too, the last one included.
    pub purge: bool,
    /// How long it may take, hooks included.
    pub timeout: Duration,
    pub who: String,
}

/// What an uninstall will do, decided before anything is deleted.
pub struct UninstallPlan {
    pub app: String,
    pub namespace: String,
    parent: Option<ApplySet>,
    /// The live members to delete, in delete order: each step's objects at once.
    pub delete: Vec<Vec<ObjectKey>>,
    /// Their uids as listed: a delete takes only that very object, never one made since
    /// under the same name.
    uids: BTreeMap<ObjectKey, String>,
    /// Members that stay, and why.
    pub kept: BTreeMap<ObjectKey, String>,
    /// Objects that are not the app's, deleted with a CRD or Namespace (only with
    /// `prune_cascade`).
    pub cascaded: BTreeMap<ObjectKey, ObjectKey>,
    /// The deployed release's hooks (its PreDelete and PostDelete ones run).
    pub hooks: Vec<Hook>,
    previous: Option<ReleaseRecord>,
    listed: Vec<RecordMeta>,
}

/// Plans the uninstall of `app`, whose ApplySet parent the caller read under its lock.
pub(super) async fn plan(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    app: &str,
    parent: Result<Option<ApplySet>, ApplySetError>,
    options: &UninstallOptions,
) -> Result<UninstallPlan, SyncError> {
    let namespace = store.namespace().to_string();
    let parent = parent?;
    if let Some(set) = &parent {
        set.check_tooling()?;
    }
    let (previous, listed) = futures::join!(store.latest_deployed(app), store.metadata(app));
    let listed = listed?;
    let previous = previous?;
    if parent.is_none() && listed.is_empty() {
        return Err(SyncError::NothingToUninstall {
            app: app.to_string(),
            namespace,
        });
    }
    let members = match &parent {
        Some(set) => applyset::list_members(cluster, set).await?,
        None => BTreeMap::new(),
    };
    let mut kept: BTreeMap<ObjectKey, String> = BTreeMap::new();
    for (key, live) in &members {
        if keep_on_delete(live) {
            kept.insert(key.clone(), keep_reason(live).into());
        } else if is_crd(key) && !options.prune_crds {
            kept.insert(
                key.clone(),
                "a CRD: --prune-crds deletes it, and every custom resource of its kind".into(),
            );
        }
    }
    // A Namespace or CRD that a kept member needs stays with it.
    for (key, live) in &members {
        if kept.contains_key(key) {
            continue;
        }
        if let Some(holder) = kept_inside(key, live, &kept) {
            kept.insert(key.clone(), format!("{holder}, which stays, needs it"));
        }
    }
    let mut to_delete: BTreeMap<ObjectKey, Value> = members
        .iter()
        .filter(|(key, _)| !kept.contains_key(*key))
        .map(|(key, live)| (key.clone(), live.clone()))
        .collect();
    let id = ApplySetId::for_app(app, &namespace);
    let found = if cascade::cascades(&to_delete) {
        cascade::look_up(cluster, &id, &to_delete, &DesiredSet::default()).await?
    } else {
        cascade::Cascade::default()
    };
    let mut cascaded = BTreeMap::new();
    let mut reached: BTreeMap<ObjectKey, Vec<ObjectKey>> = BTreeMap::new();
    for (key, by) in &found.foreign {
        reached.entry(by.by.clone()).or_default().push(key.clone());
        cascaded.insert(key.clone(), by.by.clone());
    }
    if !options.prune_cascade {
        for (by, objects) in reached {
            let shown: Vec<String> = objects.iter().take(3).map(ToString::to_string).collect();
            let more = objects.len().saturating_sub(3);
            kept.insert(
                by.clone(),
                format!(
                    "deleting it would delete {} object(s) that are not the app's: {}{} (--prune-cascade deletes them)",
                    objects.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            );
            to_delete.remove(&by);
        }
        cascaded.clear();
    }
    let delete = prune_phases_by_wave(to_delete.keys().cloned(), |key| {
        to_delete.get(key).map_or(0, |live| live_wave(live, key))
    })
    .into_iter()
    .map(|phase| phase.keys)
    .collect();
    let uids = to_delete
        .iter()
        .filter_map(|(key, live)| {
            let uid = live.pointer("/metadata/uid")?.as_str()?;
            Some((key.clone(), uid.to_string()))
        })
        .collect();
    let hooks = match &previous {
        Some(record) => desired_from_record(record)?.hooks().to_vec(),
        None => Vec::new(),
    };
    Ok(UninstallPlan {
        app: app.to_string(),
        namespace,
        parent,
        delete,
        uids,
        kept,
        cascaded,
        hooks: if options.no_hooks { Vec::new() } else { hooks },
        previous,
        listed,
    })
}

/// Why `live` stays on uninstall (it has [`keep_on_delete`]).
fn keep_reason(live: &Value) -> &'static str {
    let policy = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("helm.sh/resource-policy"))
        .and_then(Value::as_str);
    if policy == Some("keep") {
        "helm.sh/resource-policy: keep"
    } else {
        "Delete=false"
    }
}

/// A kept member that `key` (a Namespace, or a CRD as `live` defines it) holds: deleting
/// `key` would delete it.
fn kept_inside(
    key: &ObjectKey,
    live: &Value,
    kept: &BTreeMap<ObjectKey, String>,
) -> Option<ObjectKey> {
    if key.group.is_empty() && key.kind == "Namespace" {
        return kept
            .keys()
            .find(|k| k.namespace.as_deref() == Some(key.name.as_str()))
            .cloned();
    }
    if is_crd(key) {
        let group = live.pointer("/spec/group").and_then(Value::as_str)?;
        let kind = live.pointer("/spec/names/kind").and_then(Value::as_str)?;
        return kept
            .keys()
            .find(|k| k.group == group && k.kind == kind)
            .cloned();
    }
    None
}

impl UninstallPlan {
    /// How many objects it deletes.
    pub fn delete_count(&self) -> usize {
        self.delete.iter().map(Vec::len).sum::<usize>() + self.cascaded.len()
    }

    /// Lines for a person: what is deleted, then what stays and why.
    pub fn preview_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .delete
            .iter()
            .flatten()
            .map(|k| format!("delete {k}"))
            .collect();
        lines.extend(
            self.cascaded
                .iter()
                .map(|(k, by)| format!("delete {k} (with {by}, not the app's)")),
        );
        lines.extend(self.kept.iter().map(|(k, why)| format!("keep {k}: {why}")));
        lines
    }
}

/// Carries `plan` out: a pending record, PreDelete hooks, the deletions, PostDelete hooks,
/// the parent deleted, the record finished as `uninstalled` (or `failed`), and with
/// `purge` every record deleted. Returns the last record written.
pub(super) async fn execute(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    plan: &UninstallPlan,
    options: &UninstallOptions,
    cancel: &Cancel,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<ReleaseRecord, SyncError> {
    if cancel.is_cancelled() {
        return Err(SyncError::InterruptedBeforeWriting);
    }
    let mut listed = plan.listed.clone();
    let failed = store.fail_pending_listed(&plan.app, &listed).await?;
    for meta in listed.iter_mut().filter(|m| failed.contains(&m.revision)) {
        meta.rewritten(ReleaseStatus::Failed);
    }
    let previous = plan.previous.as_ref();
    let mut pending = ReleaseRecord::start(
        &plan.app,
        &plan.namespace,
        Operation::Uninstall,
        &options.who,
        StoredManifest::default(),
    );
    pending.description = "uninstall".into();
    if let Some(previous) = previous {
        pending.repo = previous.repo.clone();
        pending.path = previous.path.clone();
        pending.renderer = previous.renderer.clone();
        pending.commit = previous.commit.clone();
        pending.extra = previous.extra.clone();
    }
    let mut record = store.create_after(pending, &listed).await?;
    events(SyncEvent::Recorded {
        revision: record.revision,
    });
    let mut runs = Vec::new();
    let mut deleted = Vec::new();
    let result = run(
        cluster,
        plan,
        options,
        cancel,
        &mut runs,
        &mut deleted,
        events,
    )
    .await;
    record.finished = Some(jiff::Timestamp::now());
    record.hooks = runs;
    record.objects = deleted
        .iter()
        .map(|key| ObjectResult::done(key, "pruned", None))
        .chain(
            plan.kept
                .iter()
                .map(|(key, why)| ObjectResult::done(key, "kept", Some(why.clone()))),
        )
        .collect();
    record.counts = Counts::of(&record.objects);
    match &result {
        Ok(()) => record.status = ReleaseStatus::Uninstalled,
        Err(error) => {
            record.status = ReleaseStatus::Failed;
            record.error = Some(error.to_string());
        }
    }
    if let Err(write) = store.update(&record).await {
        return Err(SyncError::RecordNotFinished {
            revision: record.revision,
            sync: result.err().map(|e| e.to_string()),
            write: write.to_string(),
        });
    }
    result?;
    listed.insert(0, RecordMeta::written(&record));
    // The deployed release is no longer deployed: superseded by the uninstall.
    store
        .supersede_listed(&plan.app, record.revision, &mut listed, previous)
        .await?;
    if options.purge {
        store.trim_listed(0, &listed).await?;
    }
    Ok(record)
}

async fn run(
    cluster: &LiveCluster,
    plan: &UninstallPlan,
    options: &UninstallOptions,
    cancel: &Cancel,
    runs: &mut Vec<crate::release::record::HookRun>,
    deleted: &mut Vec<ObjectKey>,
    events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<(), SyncError> {
    let app_id = ApplySetId::for_app(&plan.app, &plan.namespace);
    let stages = HookStages {
        hooks: &plan.hooks,
        runner: Runner {
            cluster,
            app_id: app_id.as_str(),
            occasion: Occasion::Uninstall,
            deadline: tokio::time::Instant::now() + options.timeout,
            cancel,
        },
    };
    let stopped = |during: &'static str, deleted: &[ObjectKey]| {
        SyncError::Interrupted(Interruption {
            during,
            pruned: deleted.to_vec(),
            not_pruned: plan
                .delete
                .iter()
                .flatten()
                .filter(|k| !deleted.contains(k))
                .cloned()
                .collect(),
            ..Interruption::default()
        })
    };
    stages
        .run(Stage::PreDelete, runs, events)
        .await
        .map_err(|stop| stop.into_error(|| stopped("running hooks", deleted)))?;
    // One step (a wave's class) at a time, its objects at once: the highest wave first,
    // custom resources before their CRDs, Namespaces last.
    for phase in &plan.delete {
        if cancel.is_cancelled() {
            return Err(stopped("deleting", deleted));
        }
        let results = futures::future::join_all(phase.iter().map(|key| async move {
            let uid = plan.uids.get(key).map(String::as_str);
            (key, cluster.delete(key, uid, false).await)
        }))
        .await;
        for (key, result) in results {
            match result {
                Ok(true) => {
                    events(SyncEvent::Pruned { key });
                    deleted.push(key.clone());
                }
                Ok(false) => {}
                // The uid precondition failed: the name now belongs to an object we never
                // listed, which is not the app's to delete.
                Err(LiveError::Api(e)) if e.code() == Some(409) => {}
                Err(source) => {
                    return Err(SyncError::UninstallDelete {
                        key: Box::new(key.clone()),
                        deleted: deleted.len(),
                        message: source.to_string(),
                    });
                }
            }
        }
    }
    deleted.extend(plan.cascaded.keys().cloned());
    stages
        .run(Stage::PostDelete, runs, events)
        .await
        .map_err(|stop| stop.into_error(|| stopped("running hooks", deleted)))?;
    // The parent goes even when members stay: they keep their membership label, so an
    // app installed again under this name takes them back as its own.
    if let Some(parent) = &plan.parent {
        let key = ObjectKey {
            group: String::new(),
            kind: "Secret".into(),
            namespace: Some(parent.namespace.clone()),
            name: parent.name.clone(),
        };
        cluster
            .delete(&key, None, false)
            .await
            .map_err(|source| SyncError::UninstallDelete {
                key: Box::new(key),
                deleted: deleted.len(),
                message: source.to_string(),
            })?;
    }
    Ok(())
}
