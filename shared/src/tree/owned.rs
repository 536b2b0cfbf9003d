//! Which kinds own which: the objects a member's controller creates, and so the kinds a
//! resource tree lists beside the members.

use std::collections::BTreeSet;

/// A kind: (group, kind).
type Kind = (&'static str, &'static str);

/// (owner group, owner kind) -> the (group, kind) of the objects its controller creates
/// with an ownerReference to it. The built-in workload controllers; other owners (a
/// Service's EndpointSlices, a custom resource's objects) are not looked for.
const OWNED: &[(Kind, &[Kind])] = &[
    (("apps", "Deployment"), &[("apps", "ReplicaSet")]),
    (("apps", "ReplicaSet"), &[("", "Pod")]),
    (("apps", "StatefulSet"), &[("", "Pod")]),
    (("apps", "DaemonSet"), &[("", "Pod")]),
    (("batch", "CronJob"), &[("batch", "Job")]),
    (("batch", "Job"), &[("", "Pod")]),
    (("", "ReplicationController"), &[("", "Pod")]),
];

/// The kinds objects of `group`/`kind` own directly.
pub fn owned_by(group: &str, kind: &str) -> impl Iterator<Item = Kind> {
    OWNED
        .iter()
        .filter(move |((g, k), _)| *g == group && *k == kind)
        .flat_map(|(_, owned)| owned.iter().copied())
}

/// Every kind objects of `group`/`kind` own, directly or through what they own
/// (Deployment: ReplicaSet and Pod). The table has no cycle, and each kind is visited
/// once whatever it held.
pub fn owned_below(group: &str, kind: &str) -> BTreeSet<Kind> {
    let mut found = BTreeSet::new();
    let mut pending: Vec<Kind> = owned_by(group, kind).collect();
    while let Some(next) = pending.pop() {
        if found.insert(next) {
            pending.extend(owned_by(next.0, next.1));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_owns_replica_sets_and_through_them_pods() {
        assert_eq!(
            owned_below("apps", "Deployment"),
            BTreeSet::from([("", "Pod"), ("apps", "ReplicaSet")])
        );
        assert_eq!(
            owned_below("batch", "CronJob"),
            BTreeSet::from([("", "Pod"), ("batch", "Job")])
        );
        assert!(owned_below("", "ConfigMap").is_empty());
        // A kind of the same name in another group owns nothing.
        assert!(owned_below("example.com", "Deployment").is_empty());
    }
}
