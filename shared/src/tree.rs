//! An app's resource tree: its members (the objects of a release, as the cluster has them
//! now) and what they own through ownerReferences (Deployment -> ReplicaSet -> Pod,
//! Job -> Pod, ...), each with its health and, after a drift check, a drift mark.
//!
//! Reading costs one LIST per kind and namespace: the members' kinds in the members'
//! namespaces, and the kinds their controllers create ([`owned`]) in the namespaces of the
//! members that create them, all at once; never a GET per object. Owned objects are
//! matched to their owners by uid ([`assemble`]), so a ReplicaSet of another app in the
//! same namespace is not shown, whatever its name. A member that is gone stays in the
//! tree, missing.

mod assemble;
pub mod owned;

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use serde::Serialize;
use serde_json::Value;

pub use assemble::MAX_DEPTH;

use crate::apply::health::Health;
use crate::drift::{AppDrift, Checked, DriftError, ObjectState};
use crate::live::{LiveCluster, LiveError};
use crate::objects::{ObjectKey, group_kind};
use crate::release::history::{self, HistoryError, Release};

/// One object of the tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeNode {
    pub key: ObjectKey,
    /// None for a member that does not exist.
    pub uid: Option<String>,
    /// One of the release's objects (a root of the tree), not an object it owns.
    pub member: bool,
    /// None: the object does not exist (a missing member).
    pub health: Option<Health>,
    /// Why a missing member is missing, when there is more to say than that it is gone.
    pub message: Option<String>,
    /// A member's mark after a drift check; None for owned objects and without a check.
    pub drift: Option<DriftMark>,
    /// What it owns, sorted by key.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// Whether the object exists.
    pub fn exists(&self) -> bool {
        self.health.is_some()
    }
}

/// How a member compares with what was deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftMark {
    InSync,
    Modified,
    Deleted,
    /// Labelled as a member, but not one of the release's objects.
    Stray,
}

impl DriftMark {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftMark::InSync => "in sync",
            DriftMark::Modified => "modified",
            DriftMark::Deleted => "deleted",
            DriftMark::Stray => "stray",
        }
    }
}

impl From<ObjectState> for DriftMark {
    fn from(state: ObjectState) -> DriftMark {
        match state {
            ObjectState::Modified => DriftMark::Modified,
            ObjectState::Deleted => DriftMark::Deleted,
            ObjectState::Stray => DriftMark::Stray,
        }
    }
}

/// An app's members, sorted by key, each with what it owns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceTree {
    pub roots: Vec<TreeNode>,
    /// What could not be read (owned objects a user may not list), which the tree then
    /// lacks.
    pub warnings: Vec<String>,
}

/// Counts over a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TreeSummary {
    pub members: usize,
    pub missing: usize,
    /// Objects the members own, at every depth.
    pub owned: usize,
    /// Of every object that exists, members and owned alike:
    pub healthy: usize,
    pub progressing: usize,
    pub failed: usize,
}

impl ResourceTree {
    /// Every node, depth first, each with its depth (0 for a member).
    pub fn walk(&self) -> Vec<(usize, &TreeNode)> {
        fn visit<'a>(nodes: &'a [TreeNode], depth: usize, out: &mut Vec<(usize, &'a TreeNode)>) {
            for node in nodes {
                out.push((depth, node));
                visit(&node.children, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        visit(&self.roots, 0, &mut out);
        out
    }

    pub fn summary(&self) -> TreeSummary {
        let mut summary = TreeSummary::default();
        for (depth, node) in self.walk() {
            if depth == 0 {
                summary.members += 1;
            } else {
                summary.owned += 1;
            }
            match &node.health {
                None => summary.missing += 1,
                Some(Health::Healthy) => summary.healthy += 1,
                Some(Health::Progressing(_)) => summary.progressing += 1,
                Some(Health::Failed(_)) => summary.failed += 1,
            }
        }
        summary
    }

    /// Marks each member with what `report` found of it: in sync unless the report names
    /// it.
    pub fn mark_drift(&mut self, report: &AppDrift) {
        let found: BTreeMap<&ObjectKey, ObjectState> =
            report.objects.iter().map(|o| (&o.key, o.state)).collect();
        for root in &mut self.roots {
            root.drift = Some(
                found
                    .get(&root.key)
                    .map_or(DriftMark::InSync, |state| DriftMark::from(*state)),
            );
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read the {kind} objects in {} for the resource tree: {cause}", place(namespace.as_deref()))]
    List {
        kind: String,
        namespace: Option<String>,
        cause: Box<LiveError>,
    },
    #[error(transparent)]
    History(Box<HistoryError>),
    #[error(transparent)]
    Drift(Box<DriftError>),
}

impl From<HistoryError> for TreeError {
    fn from(source: HistoryError) -> Self {
        TreeError::History(Box::new(source))
    }
}

impl From<DriftError> for TreeError {
    fn from(source: DriftError) -> Self {
        TreeError::Drift(Box::new(source))
    }
}

/// The tree of `release`'s objects (hooks are not among them) as the cluster has them.
pub async fn for_release(
    cluster: &LiveCluster,
    release: &Release,
) -> Result<ResourceTree, TreeError> {
    let members = history::member_keys(release, cluster)?;
    build(cluster, &members).await
}

/// The tree of a checked app: the checked release's objects and the strays the check
/// found, each member marked with what the check found of it.
pub async fn for_drift(
    cluster: &LiveCluster,
    checked: &Checked,
) -> Result<ResourceTree, TreeError> {
    let mut members = checked.release_keys.clone();
    members.extend(checked.report.objects.iter().map(|o| o.key.clone()));
    let mut tree = build(cluster, &members).await?;
    tree.mark_drift(&checked.report);
    Ok(tree)
}

/// What one LIST is made for.
#[derive(Debug, Default, Clone, Copy)]
struct Purpose {
    /// Some members are of its kind and namespace: a failed LIST fails the tree.
    members: bool,
    /// Its objects may be owned by members: a failed LIST leaves them out, with a warning.
    owned: bool,
}

/// (group, kind, namespace) of one LIST.
type ListAt = (String, String, Option<String>);

/// The tree of `members`: one LIST per kind and namespace, all at once.
pub async fn build(
    cluster: &LiveCluster,
    members: &BTreeSet<ObjectKey>,
) -> Result<ResourceTree, TreeError> {
    let mut lists: BTreeMap<ListAt, Purpose> = BTreeMap::new();
    let mut unserved: BTreeMap<ObjectKey, String> = BTreeMap::new();
    for key in members {
        if cluster.resolve_kind(&key.group, &key.kind).is_none() {
            unserved.insert(
                key.clone(),
                format!(
                    "its kind {} is not served by the API server",
                    key.group_kind()
                ),
            );
            continue;
        }
        let at = (key.group.clone(), key.kind.clone(), key.namespace.clone());
        lists.entry(at).or_default().members = true;
        let Some(namespace) = &key.namespace else {
            continue;
        };
        for (group, kind) in owned::owned_below(&key.group, &key.kind) {
            let at = (group.to_string(), kind.to_string(), Some(namespace.clone()));
            lists.entry(at).or_default().owned = true;
        }
    }

    let answers = stream::iter(lists)
        .filter_map(|((group, kind, namespace), purpose)| async move {
            let (resource, _) = cluster.resolve_kind(&group, &kind)?;
            Some(async move {
                let listed = cluster.list_shared(&resource, namespace.as_deref()).await;
                (group, kind, namespace, purpose, listed)
            })
        })
        .buffer_unordered(cluster.concurrency())
        .collect::<Vec<_>>()
        .await;

    let mut found: BTreeMap<ObjectKey, Option<Value>> =
        members.iter().map(|key| (key.clone(), None)).collect();
    let mut candidates = Vec::new();
    let mut warnings = Vec::new();
    for (group, kind, namespace, purpose, listed) in answers {
        let failed = |cause: LiveError| TreeError::List {
            kind: group_kind(&group, &kind),
            namespace: namespace.clone(),
            cause: Box::new(cause),
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(cause) if purpose.members => return Err(failed(cause)),
            Err(cause) => {
                warnings.push(format!(
                    "the {} objects in {} are not shown: {cause}",
                    group_kind(&group, &kind),
                    place(namespace.as_deref())
                ));
                continue;
            }
        };
        for (key, object) in listed.iter() {
            let member = purpose.members && members.contains(key);
            if !member && !purpose.owned {
                continue;
            }
            let value = object.value().map_err(failed)?;
            if member {
                found.insert(key.clone(), Some(value));
            } else if has_owners(&value) {
                candidates.push((key.clone(), value));
            }
        }
    }
    warnings.sort();
    let mut roots = assemble::assemble(&found, &candidates);
    for root in &mut roots {
        if let Some(message) = unserved.remove(&root.key) {
            root.message = Some(message);
        }
    }
    Ok(ResourceTree { roots, warnings })
}

fn has_owners(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| !owners.is_empty())
}

/// Where a LIST looked: `namespace shop`, or `the cluster` for a cluster-scoped kind.
fn place(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "the cluster".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{Against, ObjectDrift};

    fn node(name: &str, health: Option<Health>, children: Vec<TreeNode>) -> TreeNode {
        TreeNode {
            key: ObjectKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("shop".into()),
                name: name.into(),
            },
            uid: None,
            member: false,
            health,
            message: None,
            drift: None,
            children,
        }
    }

    #[test]
    fn marks_and_counts_cover_every_member() {
        let mut tree = ResourceTree {
            roots: vec![
                node("gone", None, Vec::new()),
                node(
                    "kept",
                    Some(Health::Healthy),
                    vec![node(
                        "child",
                        Some(Health::Progressing("1/2".into())),
                        vec![node("grandchild", Some(Health::Failed("x".into())), vec![])],
                    )],
                ),
            ],
            warnings: Vec::new(),
        };
        let mut report = AppDrift::new(
            "shop",
            "shop",
            1,
            Against {
                kind: "release",
                name: "1".into(),
                commit: None,
            },
        );
        report.objects.push(ObjectDrift {
            key: tree.roots[0].key.clone(),
            state: ObjectState::Deleted,
            fields: Vec::new(),
            message: None,
        });
        tree.mark_drift(&report);
        assert_eq!(tree.roots[0].drift, Some(DriftMark::Deleted));
        assert_eq!(tree.roots[1].drift, Some(DriftMark::InSync));
        assert_eq!(tree.roots[1].children[0].drift, None);
        assert_eq!(
            tree.summary(),
            TreeSummary {
                members: 2,
                missing: 1,
                owned: 2,
                healthy: 1,
                progressing: 1,
                failed: 1,
            }
        );
        let depths: Vec<usize> = tree.walk().iter().map(|(d, _)| *d).collect();
        assert_eq!(depths, [0, 0, 1, 2]);
    }
}
