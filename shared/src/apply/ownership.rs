//! Who owns an object that already exists: this app, another ApplySet, a Helm release, or
//! nobody. A sync never takes an object over from another owner unless asked (Helm
//! refuses the same with "invalid ownership metadata"): an object another app still
//! counts as its own would be pruned by whichever app drops it last.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use futures::{StreamExt, stream};
use kube::api::ListParams;
use serde_json::Value;

use super::applyset::{ID_LABEL, PART_OF_LABEL, TOOLING_ANNOTATION, parent_name};
use crate::apply::applyset::ApplySetId;
use crate::live::LiveCluster;
use crate::objects::ObjectKey;

/// Helm's annotation naming the release an object belongs to.
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
/// Helm's annotation naming that release's namespace.
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
/// The label Helm's charts set to `Helm` (`{{ .Release.Service }}`).
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Who an existing object belongs to, as its labels and annotations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// A member of this app's ApplySet.
    Ours,
    /// Someone else's: taking it over needs the caller's consent.
    Foreign(Owner),
    /// Nobody claims it: a sync adopts it, and says so.
    Unowned,
}

/// Another owner of an object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Owner {
    /// A member of another ApplySet; its parent, when it could be found.
    ApplySet {
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        parent: Option<Parent>,
    },
    /// Part of a Helm release (the release's name and namespace when the object says).
    Helm {
        #[serde(skip_serializing_if = "Option::is_none")]
        release: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

/// The parent of another ApplySet, as found by its id label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Parent {
    pub name: String,
    pub namespace: String,
    /// The app, for a parent kubectl-gitops wrote (`<app>.applyset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The parent's tooling annotation (`kubectl/v1.34.0`, `kubectl-gitops/v0.1.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tooling: Option<String>,
}

/// An existing object the revision wants that another owner holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForeignOwner {
    pub key: ObjectKey,
    pub owner: Owner,
}

impl fmt::Display for Owner {
    /// `app a (namespace shop)`, `Helm release web in namespace shop`, `ApplySet <id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::ApplySet {
                parent: Some(parent),
                ..
            } => match (&parent.app, &parent.tooling) {
                (Some(app), _) => write!(f, "app {app} (namespace {})", parent.namespace),
                (None, Some(tooling)) => write!(
                    f,
                    "the ApplySet of {}/{} (managed by {tooling})",
                    parent.namespace, parent.name
                ),
                (None, None) => write!(f, "the ApplySet of {}/{}", parent.namespace, parent.name),
            },
            Owner::ApplySet { id, parent: None } => write!(f, "ApplySet {id}"),
            Owner::Helm {
                release: Some(release),
                namespace: Some(namespace),
            } => write!(f, "Helm release {release} in namespace {namespace}"),
            Owner::Helm {
                release: Some(release),
                namespace: None,
            } => write!(f, "Helm release {release}"),
            Owner::Helm { release: None, .. } => f.write_str("Helm"),
        }
    }
}

/// Who owns `object`, for the app whose ApplySet is `ours`. Our own part-of label wins
/// over Helm's marks (an object adopted from Helm keeps the annotations Helm wrote);
/// another set's label comes before them (it is the more recent claim).
pub fn ownership(object: &Value, ours: &ApplySetId) -> Ownership {
    let labels = object.pointer("/metadata/labels");
    let annotations = object.pointer("/metadata/annotations");
    let text = |map: Option<&Value>, key: &str| {
        map.and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match text(labels, PART_OF_LABEL) {
        Some(id) if id == ours.as_str() => return Ownership::Ours,
        Some(id) => return Ownership::Foreign(Owner::ApplySet { id, parent: None }),
        None => {}
    }
    let release = text(annotations, HELM_RELEASE_NAME);
    let managed_by_helm = text(labels, MANAGED_BY_LABEL).as_deref() == Some("Helm");
    if release.is_some() || managed_by_helm {
        return Ownership::Foreign(Owner::Helm {
            release,
            namespace: text(annotations, HELM_RELEASE_NAMESPACE),
        });
    }
    Ownership::Unowned
}

/// The ownership of the existing objects the revision wants: (those another owner holds,
/// those nobody owns), each sorted by key.
pub fn assess<'a>(
    live: impl IntoIterator<Item = (&'a ObjectKey, &'a Value)>,
    ours: &ApplySetId,
) -> (Vec<ForeignOwner>, Vec<ObjectKey>) {
    let mut assessment = Assessment::default();
    for (key, object) in live {
        assessment.add(key, object, ours);
    }
    assessment.sorted()
}

/// [`assess`] one object at a time, for a caller that reads objects one by one and
/// does not keep them all.
#[derive(Debug, Default)]
pub struct Assessment {
    foreign: Vec<ForeignOwner>,
    unowned: Vec<ObjectKey>,
}

impl Assessment {
    /// Notes who owns `object`; true if it is a member of `ours`.
    pub fn add(&mut self, key: &ObjectKey, object: &Value, ours: &ApplySetId) -> bool {
        match ownership(object, ours) {
            Ownership::Ours => return true,
            Ownership::Foreign(owner) => self.foreign.push(ForeignOwner {
                key: key.clone(),
                owner,
            }),
            Ownership::Unowned => self.unowned.push(key.clone()),
        }
        false
    }

    /// (those another owner holds, those nobody owns), each sorted by key.
    pub fn sorted(mut self) -> (Vec<ForeignOwner>, Vec<ObjectKey>) {
        self.foreign.sort_by(|a, b| a.key.cmp(&b.key));
        self.unowned.sort();
        (self.foreign, self.unowned)
    }
}

/// The parent of what `parent` (a Secret labelled with an ApplySet id) says about itself.
pub fn parent_of(secret: &Value) -> Option<Parent> {
    let text = |pointer: &str| secret.pointer(pointer).and_then(Value::as_str);
    let name = text("/metadata/name")?.to_string();
    let namespace = text("/metadata/namespace")?.to_string();
    let tooling = secret
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TOOLING_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_string);
    // Ours name their parent `<app>.applyset`; the id proves the name is the one hashed.
    let app = name
        .strip_suffix(".applyset")
        .filter(|app| {
            tooling
                .as_deref()
                .is_some_and(|t| t.starts_with("kubectl-gitops/"))
                && parent_name(app) == name
        })
        .map(str::to_string);
    Some(Parent {
        name,
        namespace,
        app,
        tooling,
    })
}

/// Names the parents of the other ApplySets in `owners`: one LIST of Secrets labelled
/// with each foreign id, across all namespaces. A parent that cannot be found or read (no
/// rights to list Secrets everywhere, a parent of another kind) leaves the id as the name.
pub async fn name_parents(cluster: &LiveCluster, owners: &mut [ForeignOwner]) {
    let ids: BTreeSet<String> = owners
        .iter()
        .filter_map(|o| match &o.owner {
            Owner::ApplySet { id, parent: None } => Some(id.clone()),
            _ => None,
        })
        .collect();
    if ids.is_empty() {
        return;
    }
    let Some((resource, _)) = cluster.resolve("v1", "Secret") else {
        return;
    };
    let resource = &resource;
    let found: BTreeMap<String, Parent> = stream::iter(ids)
        .map(|id| async move {
            let params = ListParams::default().labels(&format!("{ID_LABEL}={id}"));
            let listed = cluster.list_selected(resource, None, &params).await.ok()?;
            // The parent is the one whose id its own name and namespace give.
            let parent = listed.iter().find_map(|(key, secret)| {
                let namespace = key.namespace.as_deref()?;
                (ApplySetId::for_secret(&key.name, namespace).as_str() == id)
                    .then(|| parent_of(secret))
                    .flatten()
            })?;
            Some((id, parent))
        })
        .buffer_unordered(cluster.concurrency())
        .filter_map(|found| async move { found })
        .collect()
        .await;
    for owner in owners {
        if let Owner::ApplySet { id, parent } = &mut owner.owner {
            *parent = found.get(id).cloned();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn object(labels: Value, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "shared", "namespace": "shop",
                            "labels": labels, "annotations": annotations}})
    }

    #[test]
    fn an_object_of_this_app_is_ours_even_with_helm_marks_left_over() {
        let ours = ApplySetId::for_app("b", "shop");
        let labels = json!({PART_OF_LABEL: ours.as_str(), MANAGED_BY_LABEL: "Helm"});
        let annotations = json!({HELM_RELEASE_NAME: "web"});
        assert_eq!(
            ownership(&object(labels, annotations), &ours),
            Ownership::Ours
        );
    }

    #[test]
    fn the_same_app_in_another_namespace_is_another_set() {
        let ours = ApplySetId::for_app("b", "shop");
        let theirs = ApplySetId::for_app("b", "staging");
        let found = ownership(
            &object(json!({PART_OF_LABEL: theirs.as_str()}), json!({})),
            &ours,
        );
        assert_eq!(
            found,
            Ownership::Foreign(Owner::ApplySet {
                id: theirs.to_string(),
                parent: None
            })
        );
    }

    #[test]
    fn helm_marks_name_the_release_or_only_helm() {
        let ours = ApplySetId::for_app("b", "shop");
        let annotated = object(
            json!({}),
            json!({HELM_RELEASE_NAME: "web", HELM_RELEASE_NAMESPACE: "shop"}),
        );
        let Ownership::Foreign(owner) = ownership(&annotated, &ours) else {
            panic!("not foreign");
        };
        assert_eq!(owner.to_string(), "Helm release web in namespace shop");
        let labelled = object(json!({MANAGED_BY_LABEL: "Helm"}), json!({}));
        let Ownership::Foreign(owner) = ownership(&labelled, &ours) else {
            panic!("not foreign");
        };
        assert_eq!(owner.to_string(), "Helm");
        // Another tool's managed-by is no claim we know how to honour.
        let other = object(json!({MANAGED_BY_LABEL: "kustomize"}), json!({}));
        assert_eq!(ownership(&other, &ours), Ownership::Unowned);
    }

    #[test]
    fn an_object_without_marks_is_unowned() {
        let ours = ApplySetId::for_app("b", "shop");
        let bare = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "x", "namespace": "shop"}});
        assert_eq!(ownership(&bare, &ours), Ownership::Unowned);
        let empty = object(json!({PART_OF_LABEL: ""}), json!({HELM_RELEASE_NAME: ""}));
        assert_eq!(ownership(&empty, &ours), Ownership::Unowned);
    }

    #[test]
    fn a_parent_of_ours_names_its_app_and_another_tools_its_secret() {
        let ours = json!({"metadata": {"name": "a.applyset", "namespace": "shop",
            "annotations": {TOOLING_ANNOTATION: "kubectl-gitops/v0.1.0"}}});
        let parent = parent_of(&ours).unwrap();
        let owner = Owner::ApplySet {
            id: "x".into(),
            parent: Some(parent),
        };
        assert_eq!(owner.to_string(), "app a (namespace shop)");
        let kubectl = json!({"metadata": {"name": "a.applyset", "namespace": "shop",
            "annotations": {TOOLING_ANNOTATION: "kubectl/v1.34.0"}}});
        let owner = Owner::ApplySet {
            id: "x".into(),
            parent: parent_of(&kubectl),
        };
        assert_eq!(
            owner.to_string(),
            "the ApplySet of shop/a.applyset (managed by kubectl/v1.34.0)"
        );
        let unnamed = Owner::ApplySet {
            id: "applyset-abc-v1".into(),
            parent: None,
        };
        assert_eq!(unnamed.to_string(), "ApplySet applyset-abc-v1");
    }

    #[test]
    fn assessing_sorts_foreign_and_unowned_apart() {
        let ours = ApplySetId::for_app("b", "shop");
        let key = |name: &str| ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("shop".into()),
            name: name.into(),
        };
        let live = [
            (
                key("mine"),
                object(json!({PART_OF_LABEL: ours.as_str()}), json!({})),
            ),
            (
                key("helm"),
                object(json!({}), json!({HELM_RELEASE_NAME: "web"})),
            ),
            (key("bare"), object(json!({}), json!({}))),
        ];
        let (foreign, unowned) = assess(live.iter().map(|(k, v)| (k, v)), &ours);
        assert_eq!(
            foreign
                .iter()
                .map(|f| f.key.name.as_str())
                .collect::<Vec<_>>(),
            ["helm"]
        );
        assert_eq!(unowned, [key("bare")]);
    }
}
