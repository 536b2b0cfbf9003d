//! Putting the tree together from objects already read: the members, and candidates of
//! the owned kinds, matched to their owners by ownerReferences uid. Pure, so every case
//! (several owners, dangling references, cycles) is tested without a cluster.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::TreeNode;
use crate::apply::health::assess;
use crate::objects::ObjectKey;

/// How deep below a member owned objects are followed. The built-in controllers go two
/// levels deep (CronJob -> Job -> Pod); the bound only keeps a hostile chain of
/// ownerReferences from recursing without end.
pub const MAX_DEPTH: usize = 8;

/// The tree's roots: every member (live or not), sorted by key, each with the candidates
/// it owns, directly or through other candidates. A candidate goes under one owner only:
/// its controller when that is in the tree, else its first owner that is. Each object
/// appears once; candidates no member leads to (other apps' objects, dangling or circular
/// references) are left out.
pub fn assemble(
    members: &BTreeMap<ObjectKey, Option<Value>>,
    candidates: &[(ObjectKey, Value)],
) -> Vec<TreeNode> {
    // Every uid the tree may hold: members' and candidates'.
    let mut known: HashSet<&str> = HashSet::new();
    for object in members.values().flatten() {
        if let Some(uid) = uid(object) {
            known.insert(uid);
        }
    }
    let candidates: Vec<&(ObjectKey, Value)> = candidates
        .iter()
        .filter(|(key, _)| !members.contains_key(key))
        .collect();
    for (_, object) in &candidates {
        if let Some(uid) = uid(object) {
            known.insert(uid);
        }
    }
    // Each candidate under the one owner it is shown beneath.
    let mut children: HashMap<&str, Vec<&(ObjectKey, Value)>> = HashMap::new();
    for &candidate in &candidates {
        if let Some(owner) = chosen_owner(&candidate.1, &known) {
            children.entry(owner).or_default().push(candidate);
        }
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.0.cmp(&b.0));
    }
    // Members first, so a member owned by another member stays a root, not a child.
    let mut placed: HashSet<&str> = members.values().flatten().filter_map(uid).collect();
    members
        .iter()
        .map(|(key, object)| match object {
            Some(object) => {
                let mut node = TreeNode::live(key.clone(), object, true);
                node.children = owned_nodes(object, &children, &mut placed, 1);
                node
            }
            None => TreeNode::missing(key.clone()),
        })
        .collect()
}

/// The nodes of what `owner` owns, each with what it owns in turn, `depth` levels below a
/// member. `placed` holds the uids already in the tree: an object is shown once, and a
/// cycle ends where it comes back.
fn owned_nodes<'a>(
    owner: &Value,
    children: &HashMap<&str, Vec<&'a (ObjectKey, Value)>>,
    placed: &mut HashSet<&'a str>,
    depth: usize,
) -> Vec<TreeNode> {
    let Some(owner_uid) = uid(owner) else {
        return Vec::new();
    };
    if depth > MAX_DEPTH {
        return Vec::new();
    }
    let Some(owned) = children.get(owner_uid) else {
        return Vec::new();
    };
    let mut nodes = Vec::new();
    for &entry in owned {
        let (key, object) = entry;
        let Some(child_uid) = uid(object) else {
            continue;
        };
        if !placed.insert(child_uid) {
            continue;
        }
        let mut node = TreeNode::live(key.clone(), object, false);
        node.children = owned_nodes(object, children, placed, depth + 1);
        nodes.push(node);
    }
    nodes
}

/// The owner `object` is shown under: its controller if the tree may hold it, else the
/// first of its owners that the tree may hold.
fn chosen_owner<'a>(object: &Value, known: &HashSet<&'a str>) -> Option<&'a str> {
    let references = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?;
    let in_tree = |reference: &&Value| {
        reference
            .get("uid")
            .and_then(Value::as_str)
            .and_then(|uid| known.get(uid).copied())
    };
    let controller = references
        .iter()
        .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .find_map(|r| in_tree(&r));
    controller.or_else(|| references.iter().find_map(|r| in_tree(&r)))
}

pub(super) fn uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|uid| !uid.is_empty())
}

impl TreeNode {
    /// A node for an object that exists, its health assessed from its status.
    pub(super) fn live(key: ObjectKey, object: &Value, member: bool) -> TreeNode {
        TreeNode {
            key,
            uid: uid(object).map(str::to_string),
            member,
            health: Some(assess(object)),
            message: None,
            drift: None,
            children: Vec::new(),
        }
    }

    /// A member that does not exist.
    pub(super) fn missing(key: ObjectKey) -> TreeNode {
        TreeNode {
            key,
            uid: None,
            member: true,
            health: None,
            message: None,
            drift: None,
            children: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::apply::health::Health;

    fn key(group: &str, kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    /// An object of `kind` with `uid`, owned by each (uid, controller) of `owners`.
    fn object(
        api_version: &str,
        kind: &str,
        name: &str,
        uid: &str,
        owners: &[(&str, bool)],
    ) -> Value {
        let references: Vec<Value> = owners
            .iter()
            .map(|(owner, controller)| {
                json!({"apiVersion": "v1", "kind": "Whatever", "name": "x", "uid": owner, "controller": controller})
            })
            .collect();
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "ownerReferences": references},
        })
    }

    fn pod(name: &str, uid: &str, owners: &[(&str, bool)]) -> (ObjectKey, Value) {
        let mut pod = object("v1", "Pod", name, uid, owners);
        pod["status"] =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        (key("", "Pod", name), pod)
    }

    fn replica_set(name: &str, uid: &str, owners: &[(&str, bool)]) -> (ObjectKey, Value) {
        let value = object("apps/v1", "ReplicaSet", name, uid, owners);
        (key("apps", "ReplicaSet", name), value)
    }

    /// Each node as `depth name`, in tree order.
    fn outline(nodes: &[TreeNode]) -> Vec<String> {
        fn walk(nodes: &[TreeNode], depth: usize, out: &mut Vec<String>) {
            for node in nodes {
                out.push(format!("{depth} {}", node.key.name));
                walk(&node.children, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(nodes, 0, &mut out);
        out
    }

    fn members(entries: Vec<(ObjectKey, Option<Value>)>) -> BTreeMap<ObjectKey, Option<Value>> {
        entries.into_iter().collect()
    }

    #[test]
    fn a_deployment_leads_to_its_replica_sets_and_their_pods_by_uid() {
        let web = object("apps/v1", "Deployment", "web", "d1", &[]);
        let members = members(vec![
            (key("apps", "Deployment", "web"), Some(web)),
            (key("", "ConfigMap", "settings"), None),
        ]);
        let candidates = vec![
            pod("web-b-2", "p3", &[("rs2", true)]),
            pod("web-a-1", "p1", &[("rs1", true)]),
            replica_set("web-b", "rs2", &[("d1", true)]),
            replica_set("web-a", "rs1", &[("d1", true)]),
            pod("web-a-0", "p2", &[("rs1", true)]),
            // Another app's objects, in the same namespace.
            replica_set("other", "rs9", &[("d9", true)]),
            pod("other-1", "p9", &[("rs9", true)]),
            pod("bare", "p10", &[]),
        ];
        let tree = assemble(&members, &candidates);
        assert_eq!(
            outline(&tree),
            [
                "0 settings",
                "0 web",
                "1 web-a",
                "2 web-a-0",
                "2 web-a-1",
                "1 web-b",
                "2 web-b-2"
            ]
        );
        assert_eq!(
            tree[0].health, None,
            "a member that is gone is kept, missing"
        );
        assert!(tree[0].member && tree[1].member && !tree[1].children[0].member);
        assert_eq!(
            tree[1].children[0].children[0].health,
            Some(Health::Healthy)
        );
        assert_eq!(tree[1].children[0].uid.as_deref(), Some("rs1"));
    }

    #[test]
    fn an_object_with_several_owners_goes_under_its_controller_once() {
        let members = members(vec![
            (
                key("apps", "ReplicaSet", "a"),
                Some(replica_set("a", "rsa", &[]).1),
            ),
            (
                key("apps", "ReplicaSet", "b"),
                Some(replica_set("b", "rsb", &[]).1),
            ),
        ]);
        let candidates = vec![
            pod("shared", "p1", &[("rsa", false), ("rsb", true)]),
            pod(
                "first",
                "p2",
                &[("gone", true), ("rsa", false), ("rsb", false)],
            ),
        ];
        let tree = assemble(&members, &candidates);
        assert_eq!(outline(&tree), ["0 a", "1 first", "0 b", "1 shared"]);
    }

    #[test]
    fn cycles_and_dangling_references_end_without_looping() {
        let members = members(vec![(
            key("apps", "Deployment", "web"),
            Some(object(
                "apps/v1",
                "Deployment",
                "web",
                "d1",
                &[("rs1", true)],
            )),
        )]);
        let candidates = vec![
            // The ReplicaSet names the Deployment, the Deployment names the ReplicaSet.
            replica_set("web-a", "rs1", &[("d1", true)]),
            // Two candidates owning each other, reachable from the member.
            pod("loop-a", "la", &[("lb", false), ("rs1", false)]),
            pod("loop-b", "lb", &[("la", true)]),
            // A candidate owning itself, and one whose owner does not exist.
            pod("self", "s1", &[("s1", true)]),
            pod("orphan", "o1", &[("nobody", true)]),
            // No uid at all: nothing can own it, and it can own nothing.
            (
                key("", "Pod", "no-uid"),
                json!({"metadata": {"name": "no-uid", "ownerReferences": [{"uid": "rs1"}]}}),
            ),
        ];
        let tree = assemble(&members, &candidates);
        // loop-a's controller-less owners: lb first (in the tree), so it hangs under loop-b,
        // whose controller is loop-a: neither is reached from the member.
        assert_eq!(outline(&tree), ["0 web", "1 web-a"]);
    }

    #[test]
    fn a_member_owned_by_another_member_stays_a_root() {
        let members = members(vec![
            (
                key("apps", "Deployment", "web"),
                Some(object("apps/v1", "Deployment", "web", "d1", &[])),
            ),
            (
                key("apps", "ReplicaSet", "web-a"),
                Some(replica_set("web-a", "rs1", &[("d1", true)]).1),
            ),
        ]);
        // The LIST of ReplicaSets returns the member too.
        let candidates = vec![
            replica_set("web-a", "rs1", &[("d1", true)]),
            pod("web-a-0", "p1", &[("rs1", true)]),
        ];
        let tree = assemble(&members, &candidates);
        assert_eq!(outline(&tree), ["0 web", "0 web-a", "1 web-a-0"]);
    }

    #[test]
    fn a_chain_deeper_than_the_bound_is_cut() {
        let members = members(vec![(
            key("apps", "Deployment", "top"),
            Some(object("apps/v1", "Deployment", "top", "u0", &[])),
        )]);
        let candidates: Vec<(ObjectKey, Value)> = (1..=MAX_DEPTH + 5)
            .map(|i| {
                pod(
                    &format!("p{i:02}"),
                    &format!("u{i}"),
                    &[(&format!("u{}", i - 1), true)],
                )
            })
            .collect();
        let tree = assemble(&members, &candidates);
        assert_eq!(outline(&tree).len(), 1 + MAX_DEPTH);
    }
}
