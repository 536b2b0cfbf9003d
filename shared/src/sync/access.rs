//! What a sync run as someone else may do, asked before its first write.
//!
//! A sync that impersonates (`--as`, or the app list's `service_account:`, a tenant's
//! account) would otherwise find out object by object: the first objects applied, the
//! one its account may not create refused half way. Every write the plan makes is asked
//! of the API server first (SelfSubjectAccessReview, sent as that identity, so the
//! server's own authorizers answer, RBAC or any other), and a plan with a refused write
//! fails naming each verb and resource, with nothing applied and nothing recorded.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use super::SyncError;
use super::plan::SyncPlan;
use crate::diff::change::Action;
use crate::live::{LiveCluster, LiveError};
use crate::objects::ObjectKey;

/// One write, as the API server authorizes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Write {
    pub verb: &'static str,
    pub group: String,
    /// The resource's plural name (`deployments`).
    pub resource: String,
    /// None for a cluster-scoped object.
    pub namespace: Option<String>,
    /// None asks for every object of the resource there.
    pub name: Option<String>,
}

impl Write {
    /// `create clusterroles.rbac.authorization.k8s.io "admin" (cluster-wide)`, as
    /// kubectl's own refusals name them.
    pub fn describe(&self) -> String {
        let resource = match self.group.as_str() {
            "" => self.resource.clone(),
            group => format!("{}.{group}", self.resource),
        };
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        let place = match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "(cluster-wide)".to_string(),
        };
        format!("{} {resource}{name} {place}", self.verb)
    }

    fn without_name(&self) -> Write {
        Write {
            name: None,
            ..self.clone()
        }
    }
}

/// Every write `plan` makes: a server-side apply is a `patch`, and a `create` too for an
/// object that does not exist yet; hooks are created (and deleted when a policy says
/// so); pruned members are deleted; the app's records and ApplySet parent are Secrets in
/// its namespace. Kinds the server does not serve yet (a CRD of the same sync) are left
/// to the CRD's own create.
pub fn writes(cluster: &LiveCluster, plan: &SyncPlan) -> BTreeSet<Write> {
    let mut writes = BTreeSet::new();
    let mut add = |verb: &'static str, key: &ObjectKey| {
        if let Some((resource, _)) = cluster.resolve_kind(&key.group, &key.kind) {
            writes.insert(Write {
                verb,
                group: key.group.clone(),
                resource: resource.plural,
                namespace: key.namespace.clone(),
                name: Some(key.name.clone()),
            });
        }
    };
    for change in &plan.comparison.changes.changes {
        match change.action {
            Action::Added => {
                add("create", &change.key);
                add("patch", &change.key);
            }
            Action::Changed => add("patch", &change.key),
            Action::Removed | Action::Unchanged => {}
        }
    }
    for hook in plan.desired.hooks() {
        add("create", &hook.key);
        if !hook.spec.delete.is_empty() {
            add("delete", &hook.key);
        }
    }
    if plan.prune {
        for key in plan.stale.keys() {
            add("delete", key);
        }
    }
    for verb in ["create", "patch"] {
        writes.insert(Write {
            verb,
            group: String::new(),
            resource: "secrets".into(),
            namespace: Some(plan.namespace.clone()),
            name: None,
        });
    }
    writes
}

/// Asks the server about each of `writes` as the identity the cluster's client acts as;
/// the refused ones, in order. A write asked without a name first (one question per
/// verb, resource and namespace), and by name only when that is refused, so a rule
/// limited to named objects (`resourceNames`) is honoured without a question per object.
pub async fn refused(
    cluster: &LiveCluster,
    writes: &BTreeSet<Write>,
) -> Result<Vec<Write>, LiveError> {
    let broad: BTreeSet<Write> = writes.iter().map(Write::without_name).collect();
    let answers = ask_all(cluster, broad.into_iter().collect()).await?;
    let refused_broadly: BTreeSet<Write> = answers
        .into_iter()
        .filter(|(_, allowed)| !allowed)
        .map(|(write, _)| write)
        .collect();
    let named: Vec<Write> = writes
        .iter()
        .filter(|w| w.name.is_some() && refused_broadly.contains(&w.without_name()))
        .cloned()
        .collect();
    let mut refused: Vec<Write> = ask_all(cluster, named)
        .await?
        .into_iter()
        .filter(|(_, allowed)| !allowed)
        .map(|(write, _)| write)
        .collect();
    // Nameless writes (the records) refused as such.
    refused.extend(
        refused_broadly
            .into_iter()
            .filter(|w| writes.contains(w) && w.name.is_none()),
    );
    refused.sort();
    Ok(refused)
}

async fn ask_all(
    cluster: &LiveCluster,
    writes: Vec<Write>,
) -> Result<Vec<(Write, bool)>, LiveError> {
    stream::iter(writes)
        .map(|write| async move {
            let allowed = cluster.may(&review(&write)).await?;
            Ok::<_, LiveError>((write, allowed))
        })
        .buffer_unordered(cluster.concurrency())
        .try_collect()
        .await
}

fn review(write: &Write) -> Value {
    let mut attributes = json!({
        "verb": write.verb,
        "group": write.group,
        "resource": write.resource,
    });
    if let Some(namespace) = &write.namespace {
        attributes["namespace"] = json!(namespace);
    }
    if let Some(name) = &write.name {
        attributes["name"] = json!(name);
    }
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    })
}

/// Refuses `plan` when the cluster's client impersonates someone who may not make one of
/// its writes.
pub async fn check(cluster: &LiveCluster, plan: &SyncPlan) -> Result<(), SyncError> {
    let Some(who) = cluster.acting_as() else {
        return Ok(());
    };
    let refused = refused(cluster, &writes(cluster, plan)).await?;
    if refused.is_empty() {
        return Ok(());
    }
    Err(SyncError::NotAllowed {
        app: plan.app.clone(),
        who: who.to_string(),
        refused: refused.iter().map(Write::describe).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_named_as_kubectl_names_a_refusal() {
        let write = Write {
            verb: "create",
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
            namespace: None,
            name: Some("admin".into()),
        };
        assert_eq!(
            write.describe(),
            r#"create clusterroles.rbac.authorization.k8s.io "admin" (cluster-wide)"#
        );
        let write = Write {
            verb: "patch",
            group: String::new(),
            resource: "configmaps".into(),
            namespace: Some("team-b".into()),
            name: None,
        };
        assert_eq!(write.describe(), "patch configmaps in namespace team-b");
    }

    #[test]
    fn a_review_asks_about_the_object_by_name_only_when_it_has_one() {
        let write = Write {
            verb: "delete",
            group: "apps".into(),
            resource: "deployments".into(),
            namespace: Some("shop".into()),
            name: Some("web".into()),
        };
        assert_eq!(
            review(&write)["spec"]["resourceAttributes"],
            json!({"verb": "delete", "group": "apps", "resource": "deployments", "namespace": "shop", "name": "web"})
        );
        let cluster_wide = review(&Write {
            namespace: None,
            name: None,
            ..write
        });
        let attributes = cluster_wide["spec"]["resourceAttributes"]
            .as_object()
            .unwrap();
        assert!(!attributes.contains_key("namespace") && !attributes.contains_key("name"));
    }
}
