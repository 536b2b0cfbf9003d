//! Pruning: deleting the members of an ApplySet that the new revision no longer has.
//!
//! Only objects the ApplySet's label selector finds, and that carry its part-of label, are
//! candidates; each is deleted with its uid as a precondition, so an object re-created under
//! the same name by someone else since the LIST is never deleted in its place.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use serde_json::Value;

use crate::apply::applyset::{ApplySet, ApplySetError, list_members};
use crate::apply::order::{live_wave, prune_order, prune_phases_by_wave};
use crate::cancel::Cancel;
use crate::live::{LiveCluster, LiveError};
use crate::objects::ObjectKey;

/// How many deletes run at once.

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    ApplySet(#[from] ApplySetError),
    #[error(
        "cannot delete {key}, a member of the ApplySet {namespace}/{name} that the revision no longer has: {source}"
    )]
    Delete {
        key: Box<ObjectKey>,
        namespace: String,
        name: String,
        /// What was deleted before the failure, so a release record can still count it.
        pruned: Vec<ObjectKey>,
        #[source]
        source: Box<LiveError>,
    },
}

impl PruneError {
    /// The error of a later prune step, counting what the steps before it deleted.
    pub fn after(self, earlier: &[ObjectKey]) -> PruneError {
        match self {
            PruneError::Delete {
                key,
                namespace,
                name,
                pruned,
                source,
            } => PruneError::Delete {
                key,
                namespace,
                name,
                pruned: earlier.iter().cloned().chain(pruned).collect(),
                source,
            },
            other => other,
        }
    }
}

/// The members not in `keep`, in prune order.
pub fn stale(members: &BTreeMap<ObjectKey, Value>, keep: &BTreeSet<ObjectKey>) -> Vec<ObjectKey> {
    prune_order(members.keys().filter(|key| !keep.contains(key)).cloned())
}

/// Deletes the live members of `set` that are not in `keep` (background propagation), in
/// prune order (waves reversed, as their live objects say), deletes within one class and
/// wave at once. With `dry_run` the server only checks
/// the deletes. Returns what was deleted (or would be); objects already gone, or replaced
/// by another object of the same name since they were listed, are not in it. Once
/// `cancel` is set no new delete starts: what was deleted until then is returned.
pub async fn prune(
    cluster: &LiveCluster,
    set: &ApplySet,
    keep: &BTreeSet<ObjectKey>,
    dry_run: bool,
    cancel: &Cancel,
) -> Result<Vec<ObjectKey>, PruneError> {
    set.check_tooling()?;
    let members = list_members(cluster, set).await?;
    let members = &members;
    let mut pruned = Vec::new();
    for phase in prune_phases_by_wave(stale(members, keep), |key| {
        members.get(key).map_or(0, |live| live_wave(live, key))
    }) {
        if cancel.is_cancelled() {
            break;
        }
        let results: Vec<(ObjectKey, Result<bool, LiveError>)> = stream::iter(phase.keys)
            .take_while(|_| futures::future::ready(!cancel.is_cancelled()))
            .map(|key| async move {
                let uid = members
                    .get(&key)
                    .and_then(|object| object.pointer("/metadata/uid"))
                    .and_then(Value::as_str);
                let result = cluster.delete(&key, uid, dry_run).await;
                (key, result)
            })
            .buffer_unordered(cluster.concurrency())
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut failure = None;
        for (key, result) in results {
            match result {
                Ok(true) => deleted.push(key),
                Ok(false) => {}
                // The uid precondition failed: the name now belongs to an object we never listed.
                Err(LiveError::Api(e)) if e.code() == Some(409) => {}
                Err(source) => {
                    failure.get_or_insert((key, source));
                }
            }
        }
        // Results arrive as deletes finish; report them in key order.
        deleted.sort();
        pruned.extend(deleted);
        if let Some((key, source)) = failure {
            return Err(PruneError::Delete {
                key: Box::new(key),
                namespace: set.namespace.clone(),
                name: set.name.clone(),
                pruned,
                source: Box::new(source),
            });
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn stale_members_are_those_not_kept_in_prune_order() {
        let ns = key("", "Namespace", None, "old");
        let role = key("rbac.authorization.k8s.io", "ClusterRole", None, "r");
        let cfg = key("", "ConfigMap", Some("web"), "cfg");
        let api = key("apps", "Deployment", Some("web"), "api");
        let kept = key("apps", "Deployment", Some("web"), "kept");
        let members: BTreeMap<ObjectKey, Value> = [&ns, &role, &cfg, &api, &kept]
            .into_iter()
            .map(|k| (k.clone(), json!({})))
            .collect();
        let keep = BTreeSet::from([kept.clone(), key("", "Secret", Some("web"), "new")]);
        assert_eq!(stale(&members, &keep), [cfg, api, role, ns]);
        let everything: BTreeSet<ObjectKey> = members.keys().cloned().collect();
        assert!(stale(&members, &everything).is_empty());
        assert!(stale(&BTreeMap::new(), &keep).is_empty());
    }
}
