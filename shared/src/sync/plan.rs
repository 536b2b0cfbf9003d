//! Planning a sync: what would be created, configured and pruned, decided before anything
//! changes, so the user can see it and say yes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::SyncError;
use super::cascade::{self, Cascade};
use crate::apply::applyset::{self, ApplySet, ApplySetId};
use crate::apply::object_options::{self, PlannedOptions};
use crate::apply::order::{Phase, apply_phases};
use crate::apply::prune;
use crate::compare::{Comparison, Missing, against_cluster_with};
use crate::diff::normalise::{NormaliseOptions, normalise_with};
use crate::diff::{Action, ChangeSet, ObjectChange};
use crate::fingerprint::Fingerprints;
use crate::live::LiveCluster;
use crate::objects::{DesiredSet, ObjectKey};
use crate::release::record::StoredManifest;

/// Everything a sync will do, and why.
pub struct SyncPlan {
    pub app: String,
    /// Where the app's records, lock and ApplySet parent live.
    pub namespace: String,
    /// The ApplySet as it is in the cluster before this sync, if the app was synced before.
    pub existing: Option<ApplySet>,
    /// The ApplySet once this sync is done: exactly the desired set's kinds and namespaces.
    pub applyset: ApplySet,
    /// The desired objects, labelled as members of the ApplySet.
    pub desired: DesiredSet,
    pub phases: Vec<Phase>,
    /// The desired objects against the cluster.
    pub comparison: Comparison,
    /// Members the revision no longer has (pruned only with `--prune`).
    pub stale: BTreeMap<ObjectKey, Value>,
    /// CRDs the revision no longer has, kept without `--prune-crds`: still members.
    pub kept: BTreeMap<ObjectKey, Value>,
    /// What the objects' own options decide: members kept (`Prune=false`, Helm's keep
    /// policy; not in `stale`), those pruned last, and the warnings to show once.
    pub object_options: PlannedOptions,
    /// What pruning the stale CRDs and Namespaces takes with it (looked up only when
    /// pruning one).
    pub cascade: Cascade,
    pub prune: bool,
    /// The manifest to record instead of the desired objects', for a caller that applies
    /// an adjusted copy of a release (drift's heal leaves ignored fields out of what it
    /// applies, yet records the release's manifest as it was).
    pub record_manifest: Option<StoredManifest>,
}

impl SyncPlan {
    /// The change set to show: the comparison, plus the stale members as removed when
    /// pruning (without `--prune` they stay, and are not a difference this sync makes).
    pub fn change_set(&self) -> ChangeSet {
        self.changes(true)
    }

    /// [`SyncPlan::change_set`] as a sync shows it: the unchanged objects only counted,
    /// their contents left out (not copied: a no-op sync of 1,000 objects copied them all
    /// to print nothing of them).
    pub fn preview(&self) -> ChangeSet {
        self.changes(false)
    }

    /// [`SyncPlan::preview`], taking the contents of the added and changed objects out of
    /// the plan instead of copying them: what a sync shows once before it applies, since
    /// carrying the plan out needs only each change's key and action. (A first sync of
    /// 10,000 objects held three copies of every object here: the desired one, the
    /// comparison's, and the preview's.)
    pub fn take_preview(&mut self) -> ChangeSet {
        let mut changes = ChangeSet {
            changes: self
                .comparison
                .changes
                .changes
                .iter_mut()
                .map(|change| ObjectChange {
                    key: change.key.clone(),
                    action: change.action,
                    before: change.before.take(),
                    after: change.after.take(),
                })
                .map(|mut change| {
                    if change.action == Action::Unchanged {
                        (change.before, change.after) = (None, None);
                    }
                    change
                })
                .collect(),
        };
        self.add_removals(&mut changes);
        changes
    }

    fn changes(&self, unchanged_contents: bool) -> ChangeSet {
        let mut changes = ChangeSet {
            changes: self
                .comparison
                .changes
                .changes
                .iter()
                .map(|change| match change.action {
                    Action::Unchanged if !unchanged_contents => ObjectChange {
                        key: change.key.clone(),
                        action: Action::Unchanged,
                        before: None,
                        after: None,
                    },
                    _ => change.clone(),
                })
                .collect(),
        };
        self.add_removals(&mut changes);
        changes
    }

    /// The stale members as removed, when pruning.
    fn add_removals(&self, changes: &mut ChangeSet) {
        if self.prune {
            let cascaded = self
                .cascade
                .foreign
                .iter()
                .map(|(key, cascaded)| (key, &cascaded.object));
            for (key, object) in self.stale.iter().chain(cascaded) {
                let mut before = object.clone();
                normalise_with(&mut before, &NormaliseOptions::default());
                changes.changes.push(ObjectChange {
                    key: key.clone(),
                    action: Action::Removed,
                    before: Some(before),
                    after: None,
                });
            }
            changes.changes.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }

    /// The objects whose dry-run differs from the live object: the only ones applied.
    pub fn to_apply(&self) -> BTreeSet<ObjectKey> {
        self.comparison
            .changes
            .changes
            .iter()
            .filter(|c| matches!(c.action, Action::Added | Action::Changed))
            .map(|c| c.key.clone())
            .collect()
    }

    /// How many objects this sync changes.
    pub fn change_count(&self) -> usize {
        let pruned = self.stale.len() + self.cascade.foreign.len();
        self.to_apply().len() + if self.prune { pruned } else { 0 }
    }
}

/// What a plan may take on trust, and whether it prunes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions<'a> {
    /// Plan the deletion of members the revision no longer has.
    pub prune: bool,
    /// Prune CRDs too (else they are kept, see [`cascade::keep_crds`]).
    pub prune_crds: bool,
    /// The last deployed release's fingerprints: objects nobody has written since are not
    /// dry-run.
    pub known: Option<&'a Fingerprints>,
    /// How objects that do not exist yet are compared.
    pub missing: Missing,
}

/// Plans a sync of `desired` as the app `app` with records in `namespace`, whose ApplySet
/// parent the caller has read (`existing`, None if there is none).
pub async fn plan_with_parent(
    cluster: &LiveCluster,
    existing: Option<ApplySet>,
    app: &str,
    namespace: &str,
    mut desired: DesiredSet,
    options: PlanOptions<'_>,
) -> Result<SyncPlan, SyncError> {
    let PlanOptions {
        prune,
        prune_crds,
        known,
        missing,
    } = options;
    if let Some(set) = &existing {
        set.check_tooling()?;
    }
    // An option given twice with different values stops the plan before any request.
    let warnings = object_options::warnings(&desired)?;
    let id = ApplySetId::for_app(app, namespace);
    for (_, object) in desired.iter_mut() {
        applyset::label_member(object, &id);
    }
    let phases = apply_phases(&desired)?;
    // The comparison and the member lookup read the same kinds: one LIST serves both.
    // Members where the revision has nothing of their kind (no LIST of the comparison
    // covers them) are looked for meanwhile; the rest come from the comparison's LISTs.
    let reads = cluster.shared_reads();
    let listed: BTreeSet<(String, Option<String>)> = desired
        .keys()
        .map(|k| (k.group_kind(), k.namespace.clone()))
        .collect();
    let covered = |group_kind: &str, namespace: Option<&str>| {
        listed.contains(&(group_kind.to_string(), namespace.map(str::to_string)))
    };
    let normalise = NormaliseOptions::default();
    let comparing = against_cluster_with(cluster, &desired, &id, &normalise, known, missing);
    // Only members the revision no longer has are wanted: the others are compared anyway.
    let not_desired = |key: &ObjectKey| desired.get(key).is_none();
    let elsewhere = async {
        match &existing {
            Some(set) => {
                applyset::list_members_where(cluster, set, |gk, ns| !covered(gk, ns), not_desired)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    };
    // The member LISTs go first: the comparison's CPU work would hold them back.
    let (elsewhere, comparison) = futures::join!(elsewhere, comparing);
    let comparison = comparison?;
    let stale = match (&existing, elsewhere?) {
        (Some(set), Some(mut members)) => {
            members.extend(applyset::list_members_where(cluster, set, covered, not_desired).await?);
            let keep: BTreeSet<ObjectKey> = desired.keys().cloned().collect();
            let stale: BTreeSet<ObjectKey> = prune::stale(&members, &keep).into_iter().collect();
            members
                .into_iter()
                .filter(|(k, _)| stale.contains(k))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    let (stale, kept) = cascade::keep_crds(stale, prune_crds);
    // Members their own annotations keep (Prune=false, resource-policy: keep) are decided
    // by the live object: the revision no longer has it.
    let (stale, kept_by_option, prune_last) = object_options::split_stale(stale);
    let object_options = PlannedOptions {
        kept: kept_by_option,
        prune_last,
        warnings,
    };
    // Kept CRDs and kept objects stay members: the parent goes on listing their kind for
    // a later prune.
    let applyset = ApplySet::new(namespace, app).with_members(
        desired
            .keys()
            .chain(kept.keys())
            .chain(object_options.kept.keys()),
    );
    let cascade = if prune && cascade::cascades(&stale) {
        cascade::look_up(cluster, &id, &stale, &desired).await?
    } else {
        Cascade::default()
    };
    drop(reads);
    Ok(SyncPlan {
        app: app.to_string(),
        namespace: namespace.to_string(),
        existing,
        applyset,
        desired,
        phases,
        comparison,
        stale,
        kept,
        object_options,
        cascade,
        prune,
        record_manifest: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    fn config_map(name: &str, value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "shop"}, "data": {"k": value}})
    }

    #[test]
    fn the_preview_counts_unchanged_objects_without_their_contents() {
        let change = |name: &str, action, before: Option<&str>, after: Option<&str>| ObjectChange {
            key: key(name),
            action,
            before: before.map(|v| config_map(name, v)),
            after: after.map(|v| config_map(name, v)),
        };
        let plan = SyncPlan {
            app: "shop".into(),
            namespace: "shop".into(),
            existing: None,
            applyset: ApplySet::new("shop", "shop"),
            desired: DesiredSet::default(),
            phases: Vec::new(),
            comparison: Comparison {
                changes: ChangeSet {
                    changes: vec![
                        change("a", Action::Unchanged, Some("1"), Some("1")),
                        change("b", Action::Changed, Some("1"), Some("2")),
                        change("c", Action::Added, None, Some("3")),
                    ],
                },
                conflicts: Vec::new(),
                missing_namespaces: Vec::new(),
                live_marks: BTreeMap::new(),
                unchecked_creates: BTreeSet::new(),
                unchecked_normalise: NormaliseOptions::default(),
                owners: Vec::new(),
                unowned: Vec::new(),
            },
            stale: BTreeMap::from([(key("old"), config_map("old", "0"))]),
            kept: BTreeMap::new(),
            object_options: PlannedOptions::default(),
            // A hand-made object deleted with a pruned Namespace is a removal too.
            cascade: Cascade {
                foreign: BTreeMap::from([(
                    key("hand"),
                    cascade::Cascaded {
                        by: key("ns"),
                        object: config_map("hand", "0"),
                    },
                )]),
                wanted: BTreeMap::new(),
            },
            prune: true,
            record_manifest: None,
        };
        let full = plan.change_set();
        let preview = plan.preview();
        assert_eq!(preview.summary(), full.summary());
        assert_eq!(
            (preview.summary().unchanged, preview.summary().removed),
            (1, 2)
        );
        assert_eq!(plan.change_count(), 4);
        for (shown, whole) in preview.changes.iter().zip(&full.changes) {
            assert_eq!(shown.key, whole.key);
            if whole.action == Action::Unchanged {
                assert_eq!((&shown.before, &shown.after), (&None, &None));
                assert!(whole.before.is_some());
            } else {
                assert_eq!(
                    (shown.action, &shown.before, &shown.after),
                    (whole.action, &whole.before, &whole.after)
                );
            }
        }
    }
}
