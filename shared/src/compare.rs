//! Desired objects against the live cluster, as the server itself would apply them.
//!
//! Each desired object is server-side applied as a dry run; the result (server defaults
//! filled in) is compared with the live object, both normalised. Objects whose kind comes
//! from a CRD, or whose namespace comes from a Namespace, in the same desired set cannot be
//! dry-run yet: they are reported as added from their manifest, not as errors.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::apply::applyset::ApplySetId;
use crate::apply::object_options;
use crate::apply::ownership::{self, ForeignOwner};
use crate::diff::normalise::{NormaliseOptions, normalise_with};
use crate::diff::{Action, ChangeSet, ObjectChange};
use crate::fingerprint::{Fingerprints, LiveMark};
use crate::live::{LiveCluster, LiveError};
use crate::objects::{DesiredObject, DesiredSet, ObjectKey};
use crate::render::Origin;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{origin}: {source}")]
    Object {
        origin: String,
        #[source]
        source: LiveError,
    },
    #[error(transparent)]
    Live(#[from] LiveError),
}

/// An object whose apply would take fields over from another field manager.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Conflict {
    pub key: ObjectKey,
    /// The server's words: the fields and the managers that own them.
    pub message: String,
}

/// What the comparison found: the changes, and the conflicts an apply would have to force.
#[derive(Debug, Default)]
pub struct Comparison {
    pub changes: ChangeSet,
    pub conflicts: Vec<Conflict>,
    /// Namespaces objects want that neither exist nor are created by the desired set.
    pub missing_namespaces: Vec<String>,
    /// Where each desired object that exists stood, as compared: what a sync records for
    /// the objects it leaves alone, without reading them again.
    pub live_marks: BTreeMap<ObjectKey, LiveMark>,
    /// Missing objects shown from their manifest instead of a dry-run
    /// ([`Missing::FromManifestIfOnlyCreating`]): nothing else changes, so a sync that
    /// fails to create one of them can delete those it created and leave the cluster as
    /// it found it. Their changes carry no contents: [`Comparison::shown`] fills each in
    /// from the desired set when it is shown (a first sync of 10,000 objects held a
    /// normalised copy of every object it was about to create).
    pub unchecked_creates: BTreeSet<ObjectKey>,
    /// How the objects of `unchecked_creates` are normalised when shown.
    pub unchecked_normalise: NormaliseOptions,
    /// Existing objects another ApplySet or a Helm release owns: a sync takes them over
    /// only when asked to (`adopt`).
    pub owners: Vec<ForeignOwner>,
    /// Existing objects nobody owns: a sync adopts them, and the preview says so.
    pub unowned: Vec<ObjectKey>,
}

/// How objects that do not exist yet are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missing {
    /// Dry-run them like the others: the preview shows server defaults, and an object the
    /// server would refuse is an error before anything changes.
    #[default]
    DryRun,
    /// Dry-run them only if an existing object changes too. When the comparison only
    /// adds objects, they are taken from their manifest, which halves the requests of a
    /// first sync; the server's verdict then comes with the create itself, and the caller
    /// must undo its creations if one is refused (see [`Comparison::unchecked_creates`]).
    FromManifestIfOnlyCreating,
}

fn describe_origin(origin: &Origin, object: &DesiredObject) -> String {
    format!("{origin} ({})", object.key)
}

/// Kinds that the desired set defines itself through a CustomResourceDefinition.
fn kinds_defined_by_crds(desired: &DesiredSet) -> BTreeSet<(String, String)> {
    desired
        .iter()
        .filter(|o| {
            o.key.kind == "CustomResourceDefinition" && o.key.group == "apiextensions.k8s.io"
        })
        .filter_map(|o| {
            let group = o.object.pointer("/spec/group")?.as_str()?;
            let kind = o.object.pointer("/spec/names/kind")?.as_str()?;
            Some((group.to_string(), kind.to_string()))
        })
        .collect()
}

/// Compares `desired`, as the objects of the ApplySet `ours`, with the cluster. Only the
/// desired objects are looked at: the result has added, changed and unchanged objects,
/// never removed ones.
///
/// A dry-run that conflicts with another field manager is repeated with force, so the diff
/// still shows what the revision wants; the conflict is returned for the caller to report.
/// Existing objects that belong to another owner are returned too (see
/// [`Comparison::owners`]).
pub async fn against_cluster(
    cluster: &LiveCluster,
    desired: &DesiredSet,
    ours: &ApplySetId,
    normalise: &NormaliseOptions,
) -> Result<Comparison, CompareError> {
    against_cluster_with(cluster, desired, ours, normalise, None, Missing::DryRun).await
}

/// [`against_cluster`], skipping the dry-run of every object `known` proves unchanged
/// (same applied object, same resourceVersion as the last deployed release left it).
pub async fn against_cluster_with(
    cluster: &LiveCluster,
    desired: &DesiredSet,
    ours: &ApplySetId,
    normalise: &NormaliseOptions,
    known_unchanged: Option<&Fingerprints>,
    missing: Missing,
) -> Result<Comparison, CompareError> {
    let crd_kinds = kinds_defined_by_crds(desired);
    // Known kinds are fetched and dry-run; kinds of CRDs in this set are new by definition.
    let mut known = BTreeSet::new();
    let mut pending = Vec::new();
    for object in desired.iter() {
        let api_version = object
            .object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if cluster.resolve(api_version, &object.key.kind).is_some() {
            known.insert(object.key.clone());
        } else if crd_kinds.contains(&(object.key.group.clone(), object.key.kind.clone()))
            || object_options::skips_dry_run_on_missing(&object.object)
        {
            // Its CRD comes in this sync, or from elsewhere before the object's turn
            // (SkipDryRunOnMissingResource=true): shown as added, from its manifest.
            pending.push(object);
        } else {
            return Err(CompareError::Object {
                origin: describe_origin(&object.origin, object),
                source: LiveError::UnknownKind {
                    api_version: api_version.to_string(),
                    kind: object.key.kind.clone(),
                    server: cluster.server().to_string(),
                },
            });
        }
    }

    // The namespace check below reuses a LIST of Namespaces the fetch made.
    let _reads = cluster.shared_reads();
    let listed = cluster.fetch_listed(&known).await?;
    // Each live object is read once, for who owns it, where it stands and (unless the
    // last release proves it unchanged) its contents, normalised for the before side.
    // Proven objects are neither kept nor copied to the after side: they are counted as
    // unchanged, without contents (nothing shows an unchanged object's contents, and at
    // 10,000 objects the copies were the biggest part of a diff's memory).
    let mut assessment = ownership::Assessment::default();
    let mut live_marks: BTreeMap<ObjectKey, LiveMark> = BTreeMap::new();
    let mut present: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut known_same = Vec::new();
    let mut before: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    for (key, object) in listed {
        // Most objects of a resync are where the release left them: proven from the
        // LIST's glance, without reading them whole or hashing their managedFields.
        let untouched = known_unchanged
            .zip(desired.get(&key))
            .and_then(|(fingerprints, wanted)| fingerprints.untouched(wanted, &object, ours));
        if let Some(mark) = untouched {
            live_marks.insert(key.clone(), mark.clone());
            present.insert(key.clone());
            known_same.push(ObjectChange::unchanged(key));
            continue;
        }
        let value = object.value()?;
        // Only a member of this app is proven by its fingerprint: another app writes with
        // the same field manager, and its apply within the same second as ours leaves our
        // managedFields entry as it was.
        let member = assessment.add(&key, &value, ours);
        let mark = LiveMark::of(&value);
        let proven = match (known_unchanged, desired.get(&key), &mark) {
            (Some(fingerprints), Some(wanted), Some(mark)) if member => {
                fingerprints.unchanged_at(wanted, &value, mark)
            }
            _ => false,
        };
        if let Some(mark) = mark {
            live_marks.insert(key.clone(), mark);
        }
        present.insert(key.clone());
        if proven {
            known_same.push(ObjectChange::unchanged(key));
        } else {
            before.insert(key, normalised(value, normalise));
        }
    }
    // Who owns what is read from the live objects already read; only another ApplySet's
    // parent costs a request, to name it.
    let (mut owners, unowned) = assessment.sorted();
    ownership::name_parents(cluster, &mut owners).await;
    // Namespaces this set creates: their objects cannot be dry-run until they exist.
    let set_namespaces: BTreeSet<String> = desired
        .iter()
        .filter(|o| o.key.group.is_empty() && o.key.kind == "Namespace")
        .map(|o| o.key.name.clone())
        .collect();
    let mut new_namespaces: BTreeSet<String> = set_namespaces
        .iter()
        .filter(|name| {
            !present
                .iter()
                .any(|k| k.kind == "Namespace" && k.group.is_empty() && &k.name == *name)
        })
        .cloned()
        .collect();
    // Namespaces nobody creates: likewise, and the caller warns about them.
    // A namespace holding a live object exists: no need to ask.
    let populated: BTreeSet<&str> = present
        .iter()
        .filter_map(|k| k.namespace.as_deref())
        .collect();
    let referenced: BTreeSet<String> = known
        .iter()
        .filter_map(|k| k.namespace.clone())
        .filter(|ns| !set_namespaces.contains(ns) && !populated.contains(ns.as_str()))
        .collect();
    let missing_namespaces = cluster.missing_namespaces(&referenced).await?;
    new_namespaces.extend(missing_namespaces.iter().cloned());

    let mut after: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    for object in pending {
        after.insert(
            object.key.clone(),
            normalised(object.object.clone(), normalise),
        );
    }
    // What cannot be dry-run yet (new namespace) is shown from its manifest; what the last
    // release proves unchanged is counted above; everything else is dry-run.
    let proven: BTreeSet<&ObjectKey> = known_same.iter().map(|c| &c.key).collect();
    let mut to_dry_run: Vec<&DesiredObject> = Vec::new();
    for object in desired.iter().filter(|o| known.contains(&o.key)) {
        if object
            .key
            .namespace
            .as_ref()
            .is_some_and(|ns| new_namespaces.contains(ns))
        {
            after.insert(
                object.key.clone(),
                normalised(object.object.clone(), normalise),
            );
        } else if !proven.contains(&object.key) {
            to_dry_run.push(object);
        }
    }

    // Existing objects first: whether they change decides how missing ones are compared.
    let (existing, absent): (Vec<&DesiredObject>, Vec<&DesiredObject>) = to_dry_run
        .into_iter()
        .partition(|o| before.contains_key(&o.key));
    let mut conflicts = Vec::new();
    let mut any_change = false;
    for (key, applied, conflict) in dry_run_all(cluster, desired, existing, normalise, true).await?
    {
        any_change |= conflict.is_some() || before.get(&key) != Some(&applied);
        after.insert(key, applied);
        conflicts.extend(conflict);
    }
    let mut unchecked_creates = BTreeSet::new();
    if missing == Missing::FromManifestIfOnlyCreating && !any_change {
        unchecked_creates.extend(absent.into_iter().map(|object| object.key.clone()));
    } else {
        for (key, applied, conflict) in
            dry_run_all(cluster, desired, absent, normalise, false).await?
        {
            after.insert(key, applied);
            conflicts.extend(conflict);
        }
    }
    conflicts.sort_by(|a, b| a.key.cmp(&b.key));

    let mut changes = ChangeSet::between(before, after);
    if !known_same.is_empty() || !unchecked_creates.is_empty() {
        changes.changes.extend(known_same);
        changes
            .changes
            .extend(unchecked_creates.iter().map(|key| ObjectChange {
                key: key.clone(),
                action: Action::Added,
                before: None,
                after: None,
            }));
        changes.changes.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(Comparison {
        changes,
        conflicts,
        missing_namespaces: missing_namespaces.into_iter().collect(),
        live_marks,
        unchecked_creates,
        unchecked_normalise: normalise.clone(),
        owners,
        unowned,
    })
}

impl Comparison {
    /// `change` as it is shown: an object to be created from its manifest without a
    /// dry-run (see [`Comparison::unchecked_creates`]) gets its contents from `desired`,
    /// normalised, one object at a time; every other change is shown as it is.
    pub fn shown<'a>(
        &self,
        change: &'a ObjectChange,
        desired: &DesiredSet,
    ) -> Cow<'a, ObjectChange> {
        let object = (change.action == Action::Added && change.after.is_none())
            .then(|| self.unchecked_creates.get(&change.key))
            .flatten()
            .and_then(|key| desired.get(key));
        match object {
            Some(object) => Cow::Owned(ObjectChange {
                key: change.key.clone(),
                action: Action::Added,
                before: None,
                after: Some(normalised(object.object.clone(), &self.unchecked_normalise)),
            }),
            None => Cow::Borrowed(change),
        }
    }
}

/// Server-side applies `objects` as dry runs, a bounded number at once: each object's key,
/// its normalised result, and the conflict if one had to be forced.
///
/// A dry-run that conflicts with another field manager is repeated with force, so the diff
/// still shows what the revision wants.
async fn dry_run_all(
    cluster: &LiveCluster,
    desired: &DesiredSet,
    objects: Vec<&DesiredObject>,
    normalise: &NormaliseOptions,
    existing: bool,
) -> Result<Vec<(ObjectKey, Value, Option<Conflict>)>, CompareError> {
    stream::iter(objects)
        .map(|object| async move {
            // Replace=true over an existing object: its fields are taken whoever owns them,
            // so no conflict; a change the server refuses (an immutable field) is made by
            // deleting and creating it again, so the object will be as its manifest says.
            if existing && object_options::wants_replace(&object.object) {
                let replaced = match cluster.dry_run_apply(&object.object, true).await {
                    Err(LiveError::Api(e)) if e.code() == Some(422) => Ok(object.object.clone()),
                    other => other,
                };
                return replaced
                    .map(|replaced| (object.key.clone(), normalised(replaced, normalise), None))
                    .map_err(|source| CompareError::Object {
                        origin: describe_origin(&object.origin, object),
                        source,
                    });
            }
            let (applied, conflict) = match cluster.dry_run_apply(&object.object, false).await {
                Err(LiveError::Api(error)) if error.code() == Some(409) => {
                    let conflict = Conflict {
                        key: object.key.clone(),
                        message: error.to_string(),
                    };
                    (
                        cluster.dry_run_apply(&object.object, true).await,
                        Some(conflict),
                    )
                }
                other => (other, None),
            };
            applied
                .map(|applied| (object.key.clone(), normalised(applied, normalise), conflict))
                .map_err(|source| CompareError::Object {
                    origin: describe_origin(
                        &desired.refused_at(object, &source.to_string()),
                        object,
                    ),
                    source,
                })
        })
        .buffer_unordered(cluster.concurrency())
        .try_collect::<Vec<_>>()
        .await
}

fn normalised(mut object: Value, options: &NormaliseOptions) -> Value {
    normalise_with(&mut object, options);
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::BuiltinScopes;
    use crate::render::parse_documents;

    #[test]
    fn an_object_created_from_its_manifest_is_filled_in_only_when_shown() {
        let manifests = parse_documents(
            "d.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    \
             kubectl.kubernetes.io/last-applied-configuration: '{}'\ndata: {k: v}\n\
             ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        )
        .unwrap();
        let desired = DesiredSet::build(manifests, "web", &BuiltinScopes).unwrap();
        let key = |name: &str| ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("web".into()),
            name: name.into(),
        };
        let bare = |name: &str| ObjectChange {
            key: key(name),
            action: Action::Added,
            before: None,
            after: None,
        };
        let comparison = Comparison {
            changes: ChangeSet {
                changes: vec![bare("a"), bare("b")],
            },
            unchecked_creates: BTreeSet::from([key("a")]),
            ..Comparison::default()
        };

        let shown = comparison.shown(&comparison.changes.changes[0], &desired);
        let after = shown.after.as_ref().expect("filled in from the manifest");
        assert_eq!(after["data"]["k"], "v");
        // Normalised as a dry-run result would be: no last-applied annotation.
        assert_eq!(after["metadata"].get("annotations"), None);
        assert!(matches!(shown, Cow::Owned(_)));
        // The comparison itself still holds no contents.
        assert_eq!(comparison.changes.changes[0].after, None);
        // An object that is not one of them is shown as it is.
        let other = comparison.shown(&comparison.changes.changes[1], &desired);
        assert!(matches!(other, Cow::Borrowed(_)));
        assert_eq!(other.after, None);
    }
}
