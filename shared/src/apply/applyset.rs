//! ApplySet membership as KEP-3659 defines it, so `kubectl apply --prune --applyset` and
//! kubectl-gitops read each other's sets.
//!
//! - The parent is a Secret `<app>.applyset` in the app's records namespace, labelled
//!   `applyset.kubernetes.io/id=<id>` where the id hashes the parent's name, namespace, kind
//!   and group (see [`ApplySetId::for_parent`]).
//! - Its annotations say which tool manages the set, which group-kinds its members have and
//!   which namespaces other than the parent's they live in: exactly where to LIST members.
//! - Every member is labelled `applyset.kubernetes.io/part-of=<id>`.
//!
//! The parent is written with the union of old and new group-kinds and namespaces *before*
//! members are applied, so a crash between the two never leaves members nobody can find.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::ListParams;
use kube::discovery::Scope;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::live::{LiveCluster, LiveError};
use crate::objects::{DesiredSet, ObjectKey};

/// On every member: the id of the ApplySet it belongs to (read by the live module from
/// each listed object, so defined there).
pub use crate::live::PART_OF_LABEL;
/// On the parent: its own id.
pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
/// On the parent: `<tool>/<version>` of the tool that manages the set.
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
/// On the parent: the members' group-kinds, `Kind.group` (`Kind` for core), sorted, comma separated.
pub const CONTAINS_GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
/// On the parent: namespaces other than the parent's that hold members, sorted, comma separated.
pub const ADDITIONAL_NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
/// The annotation kubectl 1.27 wrote instead of contains-group-kinds (resources, not kinds).
const DEPRECATED_GROUP_RESOURCES_ANNOTATION: &str =
    "applyset.kubernetes.io/contains-group-resources";

/// Our tooling annotation value.
pub const TOOLING: &str = concat!("kubectl-gitops/v", env!("CARGO_PKG_VERSION"));
/// Any version of kubectl-gitops may manage a set another version wrote.
const TOOLING_PREFIX: &str = "kubectl-gitops/";

#[derive(Debug, thiserror::Error)]
pub enum ApplySetError {
    #[error(
        "Secret {namespace}/{name} is not an ApplySet parent ({reason}), so kubectl-gitops will not touch it: rename the app or remove the Secret"
    )]
    NotAParent {
        namespace: String,
        name: String,
        reason: &'static str,
    },
    #[error(
        "ApplySet parent Secret {namespace}/{name} is labelled with the id {found}, but its name and namespace give {expected}, so kubectl-gitops will not touch it: it was written for another parent"
    )]
    IdMismatch {
        namespace: String,
        name: String,
        found: String,
        expected: String,
    },
    #[error(
        "ApplySet parent Secret {namespace}/{name} is managed by {tooling}, not kubectl-gitops, so kubectl-gitops will not touch it or its members: keep using {tooling} for it, or pick another app name"
    )]
    OtherTool {
        namespace: String,
        name: String,
        tooling: String,
    },
    #[error(
        "ApplySet parent Secret {namespace}/{name} has no {TOOLING_ANNOTATION} annotation, so kubectl-gitops cannot tell which tool manages it and will not touch it"
    )]
    NoTooling { namespace: String, name: String },
    #[error(
        "ApplySet parent Secret {namespace}/{name} has a malformed {annotation} annotation {value:?} ({reason}), so kubectl-gitops will not touch it"
    )]
    BadAnnotation {
        namespace: String,
        name: String,
        annotation: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot read the ApplySet parent Secret {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: Box<LiveError>,
    },
    #[error("cannot write the ApplySet parent Secret {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: Box<LiveError>,
    },
    #[error(
        "cannot list the {group_kind} members of the ApplySet {namespace}/{name}{}: {source}",
        in_namespace.as_ref().map(|ns| format!(" in namespace {ns}")).unwrap_or_default()
    )]
    List {
        namespace: String,
        name: String,
        group_kind: String,
        in_namespace: Option<String>,
        #[source]
        source: Box<LiveError>,
    },
}

impl ApplySetError {
    /// Whether the parent could not be read for lack of rights (a read-only user), as
    /// opposed to being missing or broken.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApplySetError::Read { source, .. } if matches!(&**source, LiveError::Api(e) if e.code() == Some(403)))
    }
}

/// The id of an ApplySet: what its parent's id label and its members' part-of label hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApplySetId(String);

impl ApplySetId {
    /// `applyset-<base64url-nopad(sha256("<name>.<namespace>.<kind>.<group>"))>-v1`, as
    /// KEP-3659 and kubectl compute it (the prefix and suffix make it a valid label value).
    pub fn for_parent(name: &str, namespace: &str, kind: &str, group: &str) -> ApplySetId {
        let digest = Sha256::digest(format!("{name}.{namespace}.{kind}.{group}").as_bytes());
        ApplySetId(format!("applyset-{}-v1", URL_SAFE_NO_PAD.encode(digest)))
    }

    /// The id of a Secret parent (core group, kind `Secret`).
    pub fn for_secret(name: &str, namespace: &str) -> ApplySetId {
        ApplySetId::for_parent(name, namespace, "Secret", "")
    }

    /// The id of `app`'s ApplySet, whose parent lives in `namespace`.
    pub fn for_app(app: &str, namespace: &str) -> ApplySetId {
        ApplySetId::for_secret(&parent_name(app), namespace)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label selector that picks this set's members: `<part-of label>=<id>`.
    pub fn member_selector(&self) -> String {
        format!("{PART_OF_LABEL}={}", self.0)
    }
}

impl fmt::Display for ApplySetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of an app's ApplySet parent Secret: `<app>.applyset`. The suffix keeps it apart
/// from the app's release records (`<app>.r<N>`) in the same namespace.
pub fn parent_name(app: &str) -> String {
    format!("{app}.applyset")
}

/// Labels `object` as a member of the ApplySet `id` (creating metadata.labels if needed).
/// A value that is not a JSON object is left alone: it is no Kubernetes object.
pub fn label_member(object: &mut Value, id: &ApplySetId) {
    // Indexing a JSON object (or null) never panics: it inserts.
    if !object.is_object() {
        return;
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if !object["metadata"]["labels"].is_object() {
        object["metadata"]["labels"] = json!({});
    }
    if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
        labels.insert(PART_OF_LABEL.to_string(), Value::from(id.as_str()));
        // Collected again at its size: a full map doubles its room for one more entry, and
        // the labelled objects are kept for the whole sync (7 MB of room at 10,000).
        *labels = std::mem::take(labels).into_iter().collect();
    }
}

/// Labels every object of `desired` as a member of the ApplySet `id`.
pub fn label_members(desired: &mut DesiredSet, id: &ApplySetId) {
    for (_, object) in desired.iter_mut() {
        label_member(object, id);
    }
}

/// An ApplySet: its parent Secret and what the parent says about the members.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplySet {
    /// The parent Secret's name.
    pub name: String,
    /// The parent Secret's namespace (the app's records namespace).
    pub namespace: String,
    pub id: ApplySetId,
    /// `Kind.group`, `Kind` for the core group, as [`ObjectKey::group_kind`] gives.
    pub group_kinds: BTreeSet<String>,
    /// Namespaces other than the parent's that hold members.
    pub additional_namespaces: BTreeSet<String>,
    /// The tooling annotation as read (ours, for a set made by [`ApplySet::new`]).
    pub tooling: Option<String>,
}

impl ApplySet {
    /// The kinds its members have, as the server serves them (kinds it no longer serves
    /// are left out).
    pub fn member_resources(&self, cluster: &LiveCluster) -> Vec<kube::discovery::ApiResource> {
        self.group_kinds
            .iter()
            .filter_map(|group_kind| {
                let (group, kind) = split_group_kind(group_kind);
                Some(cluster.resolve_kind(group, kind)?.0)
            })
            .collect()
    }

    /// The empty ApplySet of `app`, its parent in `app_namespace`.
    pub fn new(app_namespace: &str, app: &str) -> ApplySet {
        let name = parent_name(app);
        ApplySet {
            id: ApplySetId::for_secret(&name, app_namespace),
            name,
            namespace: app_namespace.to_string(),
            group_kinds: BTreeSet::new(),
            additional_namespaces: BTreeSet::new(),
            tooling: Some(TOOLING.to_string()),
        }
    }

    /// This set widened to cover `keys` too: the superset to write before applying, so the
    /// old members stay findable for pruning. After pruning, `ApplySet::new(..)
    /// .with_members(kept)` is the exact set to write.
    pub fn with_members<'a>(&self, keys: impl IntoIterator<Item = &'a ObjectKey>) -> ApplySet {
        let mut set = self.clone();
        for key in keys {
            set.group_kinds.insert(key.group_kind());
            if let Some(namespace) = &key.namespace
                && *namespace != set.namespace
            {
                set.additional_namespaces.insert(namespace.clone());
            }
        }
        set
    }

    /// The parent Secret to server-side apply: id label, tooling and membership
    /// annotations, no data.
    pub fn parent_object(&self) -> Value {
        let mut annotations = json!({
            TOOLING_ANNOTATION: TOOLING,
            CONTAINS_GROUP_KINDS_ANNOTATION: join(&self.group_kinds),
        });
        // Left out when empty; server-side apply then removes an earlier value we wrote.
        if !self.additional_namespaces.is_empty() {
            annotations[ADDITIONAL_NAMESPACES_ANNOTATION] =
                Value::from(join(&self.additional_namespaces));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ID_LABEL: self.id.as_str()},
                "annotations": annotations,
            },
            "type": "Opaque",
        })
    }

    /// Reads a parent Secret. Refuses one whose id label is missing or is not the id its
    /// name and namespace give (KEP-3659: such a parent is not the set it claims to be).
    /// Tooling is read, not judged: see [`ApplySet::check_tooling`].
    pub fn from_parent(secret: &Value) -> Result<ApplySet, ApplySetError> {
        let text = |pointer: &str| secret.pointer(pointer).and_then(Value::as_str);
        let name = text("/metadata/name").unwrap_or_default().to_string();
        let namespace = text("/metadata/namespace").unwrap_or_default().to_string();
        let not_a_parent = |reason| ApplySetError::NotAParent {
            namespace: namespace.clone(),
            name: name.clone(),
            reason,
        };
        if text("/apiVersion") != Some("v1") || text("/kind") != Some("Secret") {
            return Err(not_a_parent("it is not a v1 Secret"));
        }
        if name.is_empty() || namespace.is_empty() {
            return Err(not_a_parent("it has no name or namespace"));
        }
        let labels = secret.pointer("/metadata/labels");
        let found = labels
            .and_then(|l| l.get(ID_LABEL))
            .and_then(Value::as_str)
            .ok_or_else(|| not_a_parent("it has no applyset.kubernetes.io/id label"))?;
        let id = ApplySetId::for_secret(&name, &namespace);
        if found != id.as_str() {
            return Err(ApplySetError::IdMismatch {
                namespace,
                name,
                found: found.to_string(),
                expected: id.0,
            });
        }
        let annotation = |key: &str| {
            secret
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
        };
        let group_kinds = match annotation(CONTAINS_GROUP_KINDS_ANNOTATION) {
            Some(value) => {
                let kinds = split(value);
                if kinds
                    .iter()
                    .any(|gk| split_group_kind(gk).1.is_empty() || gk.ends_with('.'))
                {
                    return Err(ApplySetError::BadAnnotation {
                        namespace,
                        name,
                        annotation: CONTAINS_GROUP_KINDS_ANNOTATION,
                        value: value.to_string(),
                        reason: "each entry must be Kind or Kind.group",
                    });
                }
                kinds
            }
            // kubectl 1.27 listed resources instead; mapping them needs discovery, and no
            // set we may touch has them, so such a parent is refused rather than misread.
            None if annotation(DEPRECATED_GROUP_RESOURCES_ANNOTATION).is_some() => {
                return Err(not_a_parent(
                    "it lists its members by the old contains-group-resources annotation",
                ));
            }
            None => {
                return Err(not_a_parent(
                    "it has no applyset.kubernetes.io/contains-group-kinds annotation",
                ));
            }
        };
        let additional_namespaces = annotation(ADDITIONAL_NAMESPACES_ANNOTATION)
            .map(split)
            .unwrap_or_default();
        Ok(ApplySet {
            tooling: annotation(TOOLING_ANNOTATION).map(str::to_string),
            name,
            namespace,
            id,
            group_kinds,
            additional_namespaces,
        })
    }

    /// Refuses a set another tool manages (`kubectl/v1.37.1`, say) or one that does not say
    /// which tool manages it: its members are someone else's to prune.
    pub fn check_tooling(&self) -> Result<(), ApplySetError> {
        match &self.tooling {
            Some(tooling) if tooling.starts_with(TOOLING_PREFIX) => Ok(()),
            Some(tooling) => Err(ApplySetError::OtherTool {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                tooling: tooling.clone(),
            }),
            None => Err(ApplySetError::NoTooling {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            }),
        }
    }

    /// The namespaces LISTs of namespaced members go to: the parent's and the additional ones.
    fn member_namespaces(&self) -> BTreeSet<&str> {
        std::iter::once(self.namespace.as_str())
            .chain(self.additional_namespaces.iter().map(String::as_str))
            .collect()
    }
}

/// Comma-joined, in the set's (sorted) order.
fn join(items: &BTreeSet<String>) -> String {
    items
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// A comma-separated annotation as a set; `""` is the empty set.
fn split(value: &str) -> BTreeSet<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `Deployment.apps` -> (`apps`, `Deployment`); `ConfigMap` -> (``, `ConfigMap`). Kinds
/// have no dots, groups do: the first dot separates them.
fn split_group_kind(group_kind: &str) -> (&str, &str) {
    match group_kind.split_once('.') {
        Some((kind, group)) => (group, kind),
        None => ("", group_kind),
    }
}

/// The parent Secret of `app` in `namespace`, or None if there is none.
pub async fn read(
    cluster: &LiveCluster,
    namespace: &str,
    app: &str,
) -> Result<Option<ApplySet>, ApplySetError> {
    let name = parent_name(app);
    let read_error = |source: LiveError| ApplySetError::Read {
        namespace: namespace.to_string(),
        name: name.clone(),
        source: Box::new(source),
    };
    let (resource, _) = cluster.resolve("v1", "Secret").ok_or_else(|| {
        read_error(LiveError::UnknownKind {
            api_version: "v1".into(),
            kind: "Secret".into(),
            server: cluster.server().to_string(),
        })
    })?;
    let secret = cluster
        .get(&resource, Some(namespace), &name)
        .await
        .map_err(read_error)?;
    secret.as_ref().map(ApplySet::from_parent).transpose()
}

/// Writes the parent Secret (server-side apply with our field manager, forced: the parent
/// is ours alone once [`ApplySet::check_tooling`] passed or it did not exist).
pub async fn write_parent(cluster: &LiveCluster, set: &ApplySet) -> Result<(), ApplySetError> {
    cluster
        .apply(&set.parent_object(), true)
        .await
        .map_err(|source| ApplySetError::Write {
            namespace: set.namespace.clone(),
            name: set.name.clone(),
            source: Box::new(source),
        })?;
    Ok(())
}

/// Every live member of `set`: one label-selected LIST per group-kind, in the parent's and
/// each additional namespace for namespaced kinds, once for cluster-scoped ones. Kinds the
/// server no longer serves are skipped: they can have no members left.
///
/// Inside a [`LiveCluster::shared_reads`] scope, a kind whose members were listed across
/// all namespaces ([`LiveCluster::prefetch`]), or a kind and namespace the comparison has
/// already listed in full, is not asked again.
pub async fn list_members(
    cluster: &LiveCluster,
    set: &ApplySet,
) -> Result<BTreeMap<ObjectKey, Value>, ApplySetError> {
    list_members_where(cluster, set, |_, _| true, |_| true).await
}

/// [`list_members`] in the group-kinds and namespaces `wanted(group_kind, namespace)`
/// accepts (namespace None for a cluster-scoped kind): a caller can look where nothing
/// else lists while a comparison lists the rest, then read those from the shared LISTs.
/// Only members whose key `pick` accepts are returned (a plan wants the stale ones, not
/// copies of every object it is about to compare).
pub async fn list_members_where(
    cluster: &LiveCluster,
    set: &ApplySet,
    wanted: impl Fn(&str, Option<&str>) -> bool,
    pick: impl Fn(&ObjectKey) -> bool,
) -> Result<BTreeMap<ObjectKey, Value>, ApplySetError> {
    let selector = set.id.member_selector();
    let params = ListParams::default().labels(&selector);
    let namespaces = set.member_namespaces();
    let mut lists = Vec::new();
    for group_kind in &set.group_kinds {
        let (group, kind) = split_group_kind(group_kind);
        let Some((resource, caps)) = cluster.resolve_kind(group, kind) else {
            continue;
        };
        match caps.scope {
            Scope::Cluster => {
                if wanted(group_kind, None) {
                    lists.push((group_kind, resource, None));
                }
            }
            Scope::Namespaced => lists.extend(
                namespaces
                    .iter()
                    .filter(|ns| wanted(group_kind, Some(ns)))
                    .map(|ns| (group_kind, resource.clone(), Some(*ns))),
            ),
        }
    }
    let params = &params;
    let selector = selector.as_str();
    let pick = &pick;
    let found = stream::iter(lists)
        .map(|(group_kind, resource, namespace)| async move {
            if let Some(members) = cluster.listed_members(&resource, namespace, selector, pick) {
                return Ok(members);
            }
            if let Some(listed) = cluster.listed(&resource, namespace) {
                // The text is JSON the server sent, an object, so it reads back.
                return Ok(listed
                    .iter()
                    .filter(|(key, _)| pick(key))
                    .filter_map(|(key, object)| Some((key.clone(), object.value().ok()?)))
                    .filter(|(_, object)| is_member(object, &set.id))
                    .collect());
            }
            cluster
                .list_selected(&resource, namespace, params)
                .await
                .map_err(|source| ApplySetError::List {
                    namespace: set.namespace.clone(),
                    name: set.name.clone(),
                    group_kind: group_kind.clone(),
                    in_namespace: namespace.map(str::to_string),
                    source: Box::new(source),
                })
        })
        .buffer_unordered(cluster.concurrency())
        .try_collect::<Vec<_>>()
        .await?;
    // The selector already did this (a shared full LIST did not); checking again costs nothing and keeps prune honest.
    Ok(found
        .into_iter()
        .flatten()
        .filter(|(key, object)| pick(key) && is_member(object, &set.id))
        .collect())
}

/// Whether `object` carries the part-of label of `id`.
pub fn is_member(object: &Value, id: &ApplySetId) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(PART_OF_LABEL))
        .and_then(Value::as_str)
        == Some(id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn ids_are_the_ones_kubectl_computes() {
        // Taken from `kubectl apply --applyset=secret/probe -n asx-probe` (kubectl 1.37.1).
        assert_eq!(
            ApplySetId::for_secret("probe", "asx-probe").to_string(),
            "applyset-xvo7gmKB0AvbrWjxBok6fCSDkHipZ5Qv8tscRefDynM-v1"
        );
        assert_ne!(
            ApplySetId::for_secret("probe", "asx-probe"),
            ApplySetId::for_parent("probe", "asx-probe", "ConfigMap", "")
        );
        assert_eq!(parent_name("shop"), "shop.applyset");
    }

    #[test]
    fn members_widen_the_set_and_the_parent_says_so() {
        let set = ApplySet::new("records", "shop").with_members(&[
            key("apps", "Deployment", Some("web"), "api"),
            key("", "ConfigMap", Some("records"), "cfg"),
            key("", "Namespace", None, "web"),
        ]);
        let wider = set.with_members(&[key("", "ConfigMap", Some("batch"), "x")]);
        assert_eq!(
            wider.group_kinds,
            BTreeSet::from([
                "ConfigMap".into(),
                "Deployment.apps".into(),
                "Namespace".into()
            ])
        );
        assert_eq!(
            wider.additional_namespaces,
            BTreeSet::from(["batch".into(), "web".into()])
        );
        let parent = wider.parent_object();
        assert_eq!(
            parent,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "shop.applyset", "namespace": "records",
                    "labels": {ID_LABEL: ApplySetId::for_secret("shop.applyset", "records").as_str()},
                    "annotations": {
                        TOOLING_ANNOTATION: TOOLING,
                        CONTAINS_GROUP_KINDS_ANNOTATION: "ConfigMap,Deployment.apps,Namespace",
                        ADDITIONAL_NAMESPACES_ANNOTATION: "batch,web",
                    },
                },
                "type": "Opaque",
            })
        );
        assert_eq!(ApplySet::from_parent(&parent).unwrap(), wider);
        let empty = ApplySet::new("records", "shop").parent_object();
        assert_eq!(
            empty["metadata"]["annotations"][CONTAINS_GROUP_KINDS_ANNOTATION],
            ""
        );
        assert!(
            empty["metadata"]["annotations"]
                .get(ADDITIONAL_NAMESPACES_ANNOTATION)
                .is_none()
        );
        assert_eq!(
            ApplySet::from_parent(&empty).unwrap(),
            ApplySet::new("records", "shop")
        );
    }

    fn kubectl_parent() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "probe", "namespace": "asx-probe",
                "labels": {ID_LABEL: "applyset-xvo7gmKB0AvbrWjxBok6fCSDkHipZ5Qv8tscRefDynM-v1"},
                "annotations": {
                    ADDITIONAL_NAMESPACES_ANNOTATION: "",
                    CONTAINS_GROUP_KINDS_ANNOTATION: "ConfigMap,Deployment.apps",
                    TOOLING_ANNOTATION: "kubectl/v1.37.1",
                },
            },
            "type": "Opaque",
        })
    }

    #[test]
    fn another_tools_set_is_read_but_refused() {
        let set = ApplySet::from_parent(&kubectl_parent()).unwrap();
        assert!(set.additional_namespaces.is_empty());
        assert_eq!(set.group_kinds.len(), 2);
        let err = set.check_tooling().unwrap_err().to_string();
        assert!(err.contains("asx-probe/probe"), "{err}");
        assert!(err.contains("kubectl/v1.37.1"), "{err}");
        assert!(err.contains("will not touch it"), "{err}");
        let mut untooled = set.clone();
        untooled.tooling = None;
        assert!(matches!(
            untooled.check_tooling(),
            Err(ApplySetError::NoTooling { .. })
        ));
        let mut older_us = set;
        older_us.tooling = Some("kubectl-gitops/v0.0.1".into());
        older_us.check_tooling().unwrap();
    }

    #[test]
    fn parents_that_are_not_what_they_claim_are_refused() {
        let cases = [
            (
                "/metadata/namespace",
                json!("moved"),
                "but its name and namespace give",
            ),
            (
                "/metadata/labels",
                json!({}),
                "has no applyset.kubernetes.io/id label",
            ),
            ("/kind", json!("ConfigMap"), "it is not a v1 Secret"),
            (
                "/metadata/annotations",
                json!({CONTAINS_GROUP_KINDS_ANNOTATION: "ConfigMap,.apps"}),
                "malformed",
            ),
            (
                "/metadata/annotations",
                json!({DEPRECATED_GROUP_RESOURCES_ANNOTATION: "configmaps"}),
                "old contains-group-resources annotation",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut parent = kubectl_parent();
            *parent.pointer_mut(pointer).unwrap() = value;
            let err = ApplySet::from_parent(&parent).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(err.contains("will not touch it"), "{err}");
        }
    }

    #[test]
    fn labelling_adds_part_of_and_keeps_other_labels() {
        let id = ApplySetId::for_secret("shop.applyset", "records");
        let mut with_labels = json!({"metadata": {"name": "a", "labels": {"app": "x"}}});
        label_member(&mut with_labels, &id);
        assert_eq!(
            with_labels["metadata"]["labels"],
            json!({"app": "x", PART_OF_LABEL: id.as_str()})
        );
        let mut bare = json!({"kind": "ConfigMap"});
        label_member(&mut bare, &id);
        assert!(is_member(&bare, &id));
        assert!(!is_member(
            &bare,
            &ApplySetId::for_secret("other", "records")
        ));
        let mut not_an_object = json!("text");
        label_member(&mut not_an_object, &id);
        assert_eq!(not_an_object, json!("text"));
    }

    #[test]
    fn group_kinds_split_at_the_first_dot() {
        assert_eq!(
            split_group_kind("Widget.example.com"),
            ("example.com", "Widget")
        );
        assert_eq!(split_group_kind("ConfigMap"), ("", "ConfigMap"));
        assert_eq!(split(""), BTreeSet::new());
        assert_eq!(split("b, a,"), BTreeSet::from(["a".into(), "b".into()]));
    }
}
