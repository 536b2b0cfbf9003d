//! What a prune takes with it. Deleting a CustomResourceDefinition deletes every custom
//! resource of its kind, in every namespace; deleting a Namespace deletes everything in
//! it. Neither asks whose those objects are, so before a sync prunes a CRD or a Namespace
//! the plan looks them up: objects of other owners (or of nobody) are named before
//! anything is deleted, and objects the revision still wants make the revision
//! contradict itself.
//!
//! Also the rule that keeps CRDs: a CRD the revision no longer has is pruned only when
//! the app asks for it (`--prune-crds`), as Helm never deletes the CRDs it installed.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use kube::discovery::ApiResource;
use serde_json::Value;

use crate::apply::applyset::{ApplySetId, is_member};
use crate::live::{LiveCluster, LiveError};
use crate::objects::{DesiredSet, ObjectKey};

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

/// Whether `key` is a CustomResourceDefinition.
pub fn is_crd(key: &ObjectKey) -> bool {
    key.group == CRD_GROUP && key.kind == CRD_KIND
}

/// Whether `key` is a Namespace.
fn is_namespace(key: &ObjectKey) -> bool {
    key.group.is_empty() && key.kind == "Namespace"
}

/// Splits the stale members into (pruned, kept): without `prune_crds`, CRDs stay.
pub fn keep_crds(
    stale: BTreeMap<ObjectKey, Value>,
    prune_crds: bool,
) -> (BTreeMap<ObjectKey, Value>, BTreeMap<ObjectKey, Value>) {
    if prune_crds {
        return (stale, BTreeMap::new());
    }
    stale.into_iter().partition(|(key, _)| !is_crd(key))
}

/// What deleting one stale member takes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// Every object of a group and kind (a CRD's custom resources).
    Kind {
        by: ObjectKey,
        group: String,
        kind: String,
    },
    /// Every object in a namespace.
    Namespace { by: ObjectKey, namespace: String },
}

impl Reach {
    fn by(&self) -> &ObjectKey {
        match self {
            Reach::Kind { by, .. } | Reach::Namespace { by, .. } => by,
        }
    }

    /// Whether the deletion takes `key` with it.
    fn takes(&self, key: &ObjectKey) -> bool {
        match self {
            Reach::Kind { group, kind, .. } => key.group == *group && key.kind == *kind,
            Reach::Namespace { namespace, .. } => key.namespace.as_deref() == Some(namespace),
        }
    }
}

/// The cascading deletions among `pruned`: its CRDs (by the group and kind their live
/// object serves) and its Namespaces.
fn reaches(pruned: &BTreeMap<ObjectKey, Value>) -> Vec<Reach> {
    let text = |object: &Value, pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    pruned
        .iter()
        .filter_map(|(key, object)| {
            if is_crd(key) {
                Some(Reach::Kind {
                    by: key.clone(),
                    group: text(object, "/spec/group")?,
                    kind: text(object, "/spec/names/kind")?,
                })
            } else if is_namespace(key) {
                Some(Reach::Namespace {
                    by: key.clone(),
                    namespace: key.name.clone(),
                })
            } else {
                None
            }
        })
        .collect()
}

/// Whether `pruned` holds a CRD or a Namespace: only then are cascades looked up.
pub fn cascades(pruned: &BTreeMap<ObjectKey, Value>) -> bool {
    !reaches(pruned).is_empty()
}

/// An object a CRD's or a Namespace's deletion takes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascaded {
    /// The pruned member whose deletion takes it.
    pub by: ObjectKey,
    /// The live object.
    pub object: Value,
}

/// What the deletions of a sync's prune take with them, beyond the members it prunes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cascade {
    /// Objects that are not members of the app.
    pub foreign: BTreeMap<ObjectKey, Cascaded>,
    /// Objects the revision still has (keeps or adds), with the pruned member whose
    /// deletion would take them: the revision contradicts itself.
    pub wanted: BTreeMap<ObjectKey, ObjectKey>,
}

impl Cascade {
    pub fn is_empty(&self) -> bool {
        self.foreign.is_empty() && self.wanted.is_empty()
    }
}

/// The desired objects a deletion among `reaches` would take: a pure check of the keys,
/// so objects the revision would create count too.
fn wanted<'a>(
    reaches: &[Reach],
    desired: impl IntoIterator<Item = &'a ObjectKey>,
) -> BTreeMap<ObjectKey, ObjectKey> {
    desired
        .into_iter()
        .filter_map(|key| {
            let reach = reaches.iter().find(|r| r.takes(key))?;
            Some((key.clone(), reach.by().clone()))
        })
        .collect()
}

/// Whether `object` is one the cluster makes and removes itself, so its going with a
/// Namespace is no loss: it follows an owner (a Pod of a ReplicaSet, an EndpointSlice of
/// a Service), it is an Event, or a controller puts it in every namespace (the `default`
/// ServiceAccount, the `kube-root-ca.crt` ConfigMap), or it is the Endpoints of a Service
/// of the same name (in `services`).
fn is_automatic(key: &ObjectKey, object: &Value, services: &BTreeSet<(String, String)>) -> bool {
    let owned = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| !owners.is_empty());
    let core = key.group.is_empty();
    let namespace = key.namespace.clone().unwrap_or_default();
    owned
        || (key.kind == "Event" && (core || key.group == "events.k8s.io"))
        || (core && key.kind == "ServiceAccount" && key.name == "default")
        || (core && key.kind == "ConfigMap" && key.name == "kube-root-ca.crt")
        || (core && key.kind == "Endpoints" && services.contains(&(namespace, key.name.clone())))
}

/// An object a LIST found, and the pruned member whose deletion reaches it.
type Found = (ObjectKey, Value, ObjectKey);

/// Sorts what the LISTs found: members are left out (those the revision no longer has are
/// pruned anyway, those it has are in [`Cascade::wanted`]), as are the desired objects
/// and the cluster's own ([`is_automatic`]); the rest is foreign.
fn foreign(
    found: Vec<Found>,
    id: &ApplySetId,
    desired: &DesiredSet,
) -> BTreeMap<ObjectKey, Cascaded> {
    let services: BTreeSet<(String, String)> = found
        .iter()
        .filter(|(key, _, _)| key.group.is_empty() && key.kind == "Service")
        .map(|(key, _, _)| (key.namespace.clone().unwrap_or_default(), key.name.clone()))
        .collect();
    found
        .into_iter()
        .filter(|(key, object, _)| {
            !is_member(object, id)
                && desired.get(key).is_none()
                && !is_automatic(key, object, &services)
        })
        .map(|(key, object, by)| (key, Cascaded { by, object }))
        .collect()
}

/// Looks up what pruning `pruned` (the stale members a sync deletes) takes with it: one
/// LIST of each pruned CRD's kind across all namespaces, one LIST of every namespaced,
/// listable kind in each pruned Namespace. Nothing is listed when `pruned` holds neither.
pub async fn look_up(
    cluster: &LiveCluster,
    id: &ApplySetId,
    pruned: &BTreeMap<ObjectKey, Value>,
    desired: &DesiredSet,
) -> Result<Cascade, LiveError> {
    let reaches = reaches(pruned);
    if reaches.is_empty() {
        return Ok(Cascade::default());
    }
    let mut lists: Vec<(ApiResource, Option<String>, ObjectKey)> = Vec::new();
    let namespaced = cluster.namespaced_listable();
    for reach in &reaches {
        match reach {
            // A CRD that serves no version has no objects to list.
            Reach::Kind { by, group, kind } => {
                if let Some((resource, _)) = cluster.resolve_kind(group, kind) {
                    lists.push((resource, None, by.clone()));
                }
            }
            Reach::Namespace { by, namespace } => lists.extend(
                namespaced
                    .iter()
                    .map(|r| (r.clone(), Some(namespace.clone()), by.clone())),
            ),
        }
    }
    let answers: Vec<Result<Vec<Found>, LiveError>> = stream::iter(lists)
        .map(|(resource, namespace, by)| async move {
            let items = cluster.list(&resource, namespace.as_deref()).await?;
            Ok(items
                .into_iter()
                .map(|(key, object)| (key, object, by.clone()))
                .collect())
        })
        .buffer_unordered(cluster.concurrency())
        .collect()
        .await;
    let mut found = Vec::new();
    for answer in answers {
        found.extend(answer?);
    }
    Ok(Cascade {
        foreign: foreign(found, id, desired),
        wanted: wanted(&reaches, desired.keys()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;
    use crate::objects::BuiltinScopes;
    use crate::render::parse_documents;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    fn crd() -> (ObjectKey, Value) {
        (
            key(CRD_GROUP, CRD_KIND, None, "widgets.example.com"),
            json!({"spec": {"group": "example.com", "names": {"kind": "Widget"}}}),
        )
    }

    fn desired(yaml: &str) -> DesiredSet {
        let manifests = parse_documents("d.yaml", yaml).unwrap();
        DesiredSet::build(manifests, "web", &BuiltinScopes).unwrap()
    }

    #[test]
    fn crds_are_kept_unless_asked_for() {
        let cm = key("", "ConfigMap", Some("web"), "a");
        let stale = BTreeMap::from([crd(), (cm.clone(), json!({}))]);
        let (pruned, kept) = keep_crds(stale.clone(), false);
        assert_eq!(pruned.keys().collect::<Vec<_>>(), [&cm]);
        assert_eq!(kept.keys().collect::<Vec<_>>(), [&crd().0]);
        let (pruned, kept) = keep_crds(stale, true);
        assert_eq!((pruned.len(), kept.len()), (2, 0));
    }

    #[test]
    fn only_crds_and_namespaces_cascade() {
        let ns = key("", "Namespace", None, "shop");
        let cm = key("", "ConfigMap", Some("web"), "a");
        let pruned = BTreeMap::from([crd(), (ns.clone(), json!({})), (cm, json!({}))]);
        let reaches = reaches(&pruned);
        assert_eq!(reaches.len(), 2);
        // In key order: the Namespace (core group) first.
        assert!(reaches[1].takes(&key("example.com", "Widget", Some("x"), "w")));
        assert!(!reaches[1].takes(&key("example.com", "Gadget", Some("x"), "w")));
        assert!(reaches[0].takes(&key("apps", "Deployment", Some("shop"), "d")));
        assert!(!reaches[0].takes(&key("apps", "Deployment", Some("shopping"), "d")));
        assert!(!cascades(&BTreeMap::from([(
            key("", "ConfigMap", Some("web"), "a"),
            json!({})
        )])));
    }

    #[test]
    fn desired_objects_a_deletion_takes_are_wanted() {
        let ns = key("", "Namespace", None, "shop");
        let pruned = BTreeMap::from([crd(), (ns.clone(), json!({}))]);
        let set = desired(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere}\n",
        );
        let wanted = wanted(&reaches(&pruned), set.keys());
        assert_eq!(
            wanted,
            BTreeMap::from([
                (key("", "ConfigMap", Some("shop"), "c"), ns),
                (key("example.com", "Widget", Some("web"), "w"), crd().0),
            ])
        );
    }

    #[test]
    fn members_desired_and_the_clusters_own_objects_are_not_foreign() {
        let id = ApplySetId::for_app("web", "web");
        let ns = key("", "Namespace", None, "shop");
        let member =
            json!({"metadata": {"labels": {"applyset.kubernetes.io/part-of": id.as_str()}}});
        let other_app =
            json!({"metadata": {"labels": {"applyset.kubernetes.io/part-of": "applyset-x-v1"}}});
        let owned = json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet"}]}});
        let found = |k: ObjectKey, v: &Value| (k, v.clone(), ns.clone());
        let plain = json!({"metadata": {}});
        let set =
            desired("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: adopt, namespace: shop}\n");
        let result = foreign(
            vec![
                found(key("", "ConfigMap", Some("shop"), "ours"), &member),
                found(key("", "ConfigMap", Some("shop"), "theirs"), &other_app),
                found(key("", "ConfigMap", Some("shop"), "hand"), &plain),
                found(key("", "ConfigMap", Some("shop"), "adopt"), &plain),
                found(key("", "Pod", Some("shop"), "p"), &owned),
                found(key("", "Event", Some("shop"), "e"), &plain),
                found(key("events.k8s.io", "Event", Some("shop"), "e"), &plain),
                found(key("", "ServiceAccount", Some("shop"), "default"), &plain),
                found(key("", "ServiceAccount", Some("shop"), "robot"), &plain),
                found(
                    key("", "ConfigMap", Some("shop"), "kube-root-ca.crt"),
                    &plain,
                ),
                found(key("", "Service", Some("shop"), "api"), &member),
                found(key("", "Endpoints", Some("shop"), "api"), &plain),
                found(key("", "Endpoints", Some("shop"), "orphan"), &plain),
            ],
            &id,
            &set,
        );
        let names: Vec<String> = result.keys().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "ConfigMap shop/hand",
                "ConfigMap shop/theirs",
                "Endpoints shop/orphan",
                "ServiceAccount shop/robot"
            ]
        );
        assert!(result.values().all(|c| c.by == ns));
    }
}
