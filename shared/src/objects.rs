//! Object identity and the desired set: what a revision says should exist.
//!
//! Scope rules follow what kubectl and the API server do, so the desired set matches the
//! objects a `kubectl apply` of the same manifests would produce:
//! - a namespaced object without `metadata.namespace` gets the default namespace, in its
//!   key and in the object itself;
//! - a cluster-scoped object's `metadata.namespace` is dropped (the API server ignores it
//!   too, so keeping it would show a difference that can never be applied);
//! - scope comes from the caller's [`ScopeResolver`] (a cluster's discovery, say), then
//!   [`BuiltinScopes`], then CustomResourceDefinitions in the set itself; a kind nobody
//!   knows is treated as namespaced, the common case for custom resources whose CRD is
//!   installed by someone else.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::render::{Manifest, Origin};

pub mod hash;
pub mod hook;
pub mod wave;

use hash::applied_hash;
use hook::{Hook, HookSpecError};

/// The identity of an object in a cluster. The API version is not part of it: one object
/// is served under several versions of its group. Ordered by group, kind, namespace
/// (cluster-scoped first), name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ObjectKey {
    /// API group, `""` for the core group.
    pub group: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> Ordering {
        bytes_cmp(&self.group, &other.group)
            .then_with(|| bytes_cmp(&self.kind, &other.kind))
            .then_with(|| match (&self.namespace, &other.namespace) {
                (Some(a), Some(b)) => bytes_cmp(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
            .then_with(|| bytes_cmp(&self.name, &other.name))
    }
}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `a.cmp(b)`, eight bytes at a time. Keys are compared in every map a plan keeps (tens
/// of thousands of times for a thousand objects); they are short and share long
/// prefixes, where a call to `memcmp` per field cost a fifth of a no-op sync's CPU.
#[inline]
fn bytes_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut left = a.chunks_exact(8);
    let mut right = b.chunks_exact(8);
    for (x, y) in left.by_ref().zip(right.by_ref()) {
        let word = |chunk: &[u8]| {
            chunk
                .iter()
                .fold(0u64, |word, byte| (word << 8) | u64::from(*byte))
        };
        let (x, y) = (word(x), word(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    a[done..].iter().cmp(b[done..].iter())
}

impl ObjectKey {
    /// The key of an object as written: namespace as given (no defaulting, which needs
    /// scope knowledge; see [`DesiredSet::build`]). `None` unless the object has string
    /// `apiVersion`, `kind` and `metadata.name`.
    pub fn from_object(obj: &Value) -> Option<ObjectKey> {
        identify(obj, false).ok()
    }

    /// `Kind.group` (`Kind` for the core group), the form ApplySet annotations use.
    pub fn group_kind(&self) -> String {
        group_kind(&self.group, &self.kind)
    }
}

/// `Kind.group`, `Kind` for the core group (`""`): `Deployment.apps`, `Pod`.
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// `Kind.group namespace/name` for namespaced objects, `Kind.group name` for
/// cluster-scoped ones; the core group has no suffix: `Deployment.apps web/api`,
/// `ConfigMap web/settings`, `Namespace web`.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.group_kind(), namespace, self.name),
            None => write!(f, "{} {}", self.group_kind(), self.name),
        }
    }
}

/// The group of an `apiVersion`: `apps/v1` -> `apps`, `v1` -> `""`. `None` if malformed.
pub fn group_of(api_version: &str) -> Option<&str> {
    match api_version.split_once('/') {
        None if !api_version.is_empty() => Some(""),
        Some((group, version))
            if !group.is_empty() && !version.is_empty() && !version.contains('/') =>
        {
            Some(group)
        }
        _ => None,
    }
}

/// Why a value is not an identifiable object (completes "the object ..."). A hook
/// (`generated_ok`) may be named by `metadata.generateName`: its key then has that prefix
/// as its name.
fn identify(obj: &Value, generated_ok: bool) -> Result<ObjectKey, &'static str> {
    let field = |name: &str| {
        obj.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let api_version = field("apiVersion").ok_or("has no apiVersion")?;
    let group = group_of(api_version).ok_or("has a malformed apiVersion")?;
    let kind = field("kind").ok_or("has no kind")?;
    let metadata = obj.get("metadata");
    let text = |field: &str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = match (text("name"), text("generateName")) {
        (Some(name), _) => name,
        (None, Some(prefix)) if generated_ok => prefix,
        (None, Some(_)) => {
            return Err(
                "has no metadata.name (generateName is for hooks only: an app's objects need a fixed name to be diffed and pruned)",
            );
        }
        (None, None) => return Err("has no metadata.name"),
    };
    let namespace = match metadata.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) if ns.is_empty() => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(_) => return Err("has a metadata.namespace that is not a string"),
    };
    Ok(ObjectKey {
        group: group.to_string(),
        kind: kind.to_string(),
        namespace,
        name: name.to_string(),
    })
}

/// Answers whether a kind is namespaced.
pub trait ScopeResolver {
    /// `Some(true)` namespaced, `Some(false)` cluster-scoped, `None` unknown.
    fn is_namespaced(&self, group: &str, kind: &str) -> Option<bool>;
}

/// The scopes of the kinds Kubernetes itself serves, without asking a cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinScopes;

/// Every API group Kubernetes itself serves, with its cluster-scoped kinds; all other
/// kinds of these groups are namespaced.
const BUILTIN: &[(&str, &[&str])] = &[
    (
        "",
        &["ComponentStatus", "Namespace", "Node", "PersistentVolume"],
    ),
    (
        "admissionregistration.k8s.io",
        &[
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingWebhookConfiguration",
        ],
    ),
    ("apiextensions.k8s.io", &["CustomResourceDefinition"]),
    ("apiregistration.k8s.io", &["APIService"]),
    ("apps", &[]),
    (
        "authentication.k8s.io",
        &["SelfSubjectReview", "TokenReview"],
    ),
    (
        "authorization.k8s.io",
        &[
            "SelfSubjectAccessReview",
            "SelfSubjectRulesReview",
            "SubjectAccessReview",
        ],
    ),
    ("autoscaling", &[]),
    ("batch", &[]),
    (
        "certificates.k8s.io",
        &["CertificateSigningRequest", "ClusterTrustBundle"],
    ),
    ("coordination.k8s.io", &[]),
    ("discovery.k8s.io", &[]),
    ("events.k8s.io", &[]),
    (
        "flowcontrol.apiserver.k8s.io",
        &["FlowSchema", "PriorityLevelConfiguration"],
    ),
    ("internal.apiserver.k8s.io", &["StorageVersion"]),
    (
        "networking.k8s.io",
        &["IPAddress", "IngressClass", "ServiceCIDR"],
    ),
    ("node.k8s.io", &["RuntimeClass"]),
    ("policy", &[]),
    (
        "rbac.authorization.k8s.io",
        &["ClusterRole", "ClusterRoleBinding"],
    ),
    (
        "resource.k8s.io",
        &["DeviceClass", "DeviceTaintRule", "ResourceSlice"],
    ),
    ("scheduling.k8s.io", &["PriorityClass"]),
    (
        "storage.k8s.io",
        &[
            "CSIDriver",
            "CSINode",
            "StorageClass",
            "VolumeAttachment",
            "VolumeAttributesClass",
        ],
    ),
    ("storagemigration.k8s.io", &["StorageVersionMigration"]),
];

impl ScopeResolver for BuiltinScopes {
    fn is_namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        let (_, cluster_scoped) = BUILTIN.iter().find(|(g, _)| *g == group)?;
        Some(!cluster_scoped.contains(&kind))
    }
}

/// Scopes declared by CustomResourceDefinitions: `(group, kind)` -> namespaced.
struct CrdScopes(HashMap<(String, String), bool>);

/// The `(apiVersion, kind)` of each version a CustomResourceDefinition serves.
pub fn crd_served_kinds(crd: &Value) -> Vec<(String, String)> {
    let spec = &crd["spec"];
    let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str()) else {
        return Vec::new();
    };
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|version| version["served"].as_bool() != Some(false))
        .filter_map(|version| version["name"].as_str())
        .map(|version| (format!("{group}/{version}"), kind.to_string()))
        .collect()
}

impl CrdScopes {
    fn from_manifests(manifests: &[Manifest]) -> Self {
        let mut scopes = HashMap::new();
        for manifest in manifests {
            let obj = &manifest.object;
            let is_crd = obj.get("kind").and_then(Value::as_str)
                == Some("CustomResourceDefinition")
                && obj
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .and_then(group_of)
                    == Some("apiextensions.k8s.io");
            if !is_crd {
                continue;
            }
            let spec = &obj["spec"];
            let (Some(group), Some(kind)) =
                (spec["group"].as_str(), spec["names"]["kind"].as_str())
            else {
                continue;
            };
            let namespaced = match spec["scope"].as_str() {
                Some("Namespaced") => true,
                Some("Cluster") => false,
                _ => continue,
            };
            scopes.insert((group.to_string(), kind.to_string()), namespaced);
        }
        CrdScopes(scopes)
    }

    fn is_namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.0.get(&(group.to_string(), kind.to_string())).copied()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("{origin}: the object {reason}")]
    NotAnObject {
        origin: Origin,
        reason: &'static str,
    },

    #[error(transparent)]
    Hook(#[from] HookSpecError),

    #[error("{key} is defined twice: in {first} and {second}")]
    Duplicate {
        // Boxed to keep the error small.
        key: Box<ObjectKey>,
        first: Origin,
        second: Origin,
    },
}

/// One object a revision wants, keyed and with its namespace settled.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub key: ObjectKey,
    pub object: Value,
    pub origin: Origin,
    /// [`applied_hash`] of `object`, computed once: a sync asks for it three times per
    /// object (to compare, to see the release applies the same objects, to record it).
    applied: OnceLock<String>,
}

impl DesiredObject {
    pub fn new(key: ObjectKey, object: Value, origin: Origin) -> DesiredObject {
        DesiredObject {
            key,
            object,
            origin,
            applied: OnceLock::new(),
        }
    }

    /// [`applied_hash`] of the object as it is now. Changes go through
    /// [`DesiredSet::iter_mut`], which forgets the hash.
    pub fn applied_hash(&self) -> &str {
        self.applied.get_or_init(|| applied_hash(&self.object))
    }
}

/// The objects a revision wants, by key (so iteration is in key order; apply order is
/// decided elsewhere), and its hooks, which are not among them: they run at points of a
/// sync rather than being applied and kept.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    objects: BTreeMap<ObjectKey, DesiredObject>,
    /// In the order the revision has them.
    hooks: Vec<Hook>,
    /// The texts of the files the objects were read from, when they are in the repository
    /// as written (plain YAML and JSON): a refused field is found in them again.
    sources: Option<SourceTexts>,
}

/// Files by repo-relative path: the revision's own (see [`Snapshot::files`]), shared by
/// the clones of a set rather than copied.
///
/// [`Snapshot::files`]: crate::source::Snapshot::files
#[derive(Clone, Default)]
pub struct SourceTexts(Arc<BTreeMap<String, Vec<u8>>>);

impl SourceTexts {
    pub fn new(files: Arc<BTreeMap<String, Vec<u8>>>) -> SourceTexts {
        SourceTexts(files)
    }
}

impl fmt::Debug for SourceTexts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceTexts({} files)", self.0.len())
    }
}

impl DesiredSet {
    /// Keys each manifest and settles its namespace (see the module documentation):
    /// namespaced objects without one get `default_namespace` (`"default"` if that is
    /// empty), cluster-scoped objects lose theirs. Scope comes from `scopes`, then the
    /// built-in table, then CustomResourceDefinitions in `manifests`, else namespaced.
    /// Two manifests with the
    /// same key are an error naming both origins.
    pub fn build(
        manifests: Vec<Manifest>,
        default_namespace: &str,
        scopes: &dyn ScopeResolver,
    ) -> Result<DesiredSet, ObjectsError> {
        let default_namespace = if default_namespace.is_empty() {
            "default"
        } else {
            default_namespace
        };
        let crds = CrdScopes::from_manifests(&manifests);
        let mut objects: BTreeMap<ObjectKey, DesiredObject> = BTreeMap::new();
        let mut hooks: Vec<Hook> = Vec::new();
        for Manifest { mut object, origin } in manifests {
            let is_hook = hook::is_hook(&object);
            let mut key = match identify(&object, is_hook) {
                Ok(key) => key,
                Err(reason) => return Err(ObjectsError::NotAnObject { origin, reason }),
            };
            let namespaced = scopes
                .is_namespaced(&key.group, &key.kind)
                .or_else(|| BuiltinScopes.is_namespaced(&key.group, &key.kind))
                .or_else(|| crds.is_namespaced(&key.group, &key.kind))
                .unwrap_or(true);
            // identify() proved metadata is there; it is an object if it has a name.
            let metadata = object.get_mut("metadata").and_then(Value::as_object_mut);
            match (namespaced, metadata) {
                (true, Some(metadata)) if key.namespace.is_none() => {
                    metadata.insert("namespace".into(), Value::from(default_namespace));
                    key.namespace = Some(default_namespace.to_string());
                }
                (false, Some(metadata)) => {
                    metadata.remove("namespace");
                    key.namespace = None;
                }
                _ => {}
            }
            if is_hook {
                let generated = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
                let first = hooks
                    .iter()
                    .find(|h| !generated && !h.generated && h.key == key)
                    .map(|h| &h.origin)
                    .or_else(|| objects.get(&key).map(|o| &o.origin));
                if let Some(first) = first {
                    return Err(ObjectsError::Duplicate {
                        key: Box::new(key),
                        first: first.clone(),
                        second: origin,
                    });
                }
                if let Some(spec) = hook::read(&object, &key, &origin)? {
                    hooks.push(Hook {
                        key,
                        generated,
                        object,
                        origin,
                        spec,
                    });
                }
                continue;
            }
            let hook_first = hooks.iter().find(|h| !h.generated && h.key == key);
            if let Some(first) = objects
                .get(&key)
                .map(|o| &o.origin)
                .or(hook_first.map(|h| &h.origin))
            {
                return Err(ObjectsError::Duplicate {
                    key: Box::new(key),
                    first: first.clone(),
                    second: origin,
                });
            }
            objects.insert(key.clone(), DesiredObject::new(key, object, origin));
        }
        Ok(DesiredSet {
            objects,
            hooks,
            sources: None,
        })
    }

    /// The set, with the texts of the files its objects came from (see
    /// [`DesiredSet::refused_at`]).
    pub fn with_sources(mut self, sources: SourceTexts) -> DesiredSet {
        self.sources = Some(sources);
        self
    }

    /// Where to point a person at when the server refuses `object` with `message`: the
    /// line of the field it names, when the set has the object's file, else the object's
    /// document.
    pub fn refused_at(&self, object: &DesiredObject, message: &str) -> Origin {
        match self
            .sources
            .as_ref()
            .and_then(|s| s.0.get(&object.origin.file))
        {
            Some(text) => {
                object
                    .origin
                    .of_refusal(&String::from_utf8_lossy(text), &object.object, message)
            }
            None => object.origin.clone(),
        }
    }

    /// The revision's hooks, in the order it has them.
    pub fn hooks(&self) -> &[Hook] {
        &self.hooks
    }

    /// The hooks, mutably: for changes that keep their identity (labels, say).
    pub fn hooks_mut(&mut self) -> &mut [Hook] {
        &mut self.hooks
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&DesiredObject> {
        self.objects.get(key)
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.objects.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.objects.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = &DesiredObject> {
        self.objects.values()
    }

    /// The objects, mutably, by key: for changes that keep an object's identity (labels,
    /// say). The key is not handed out mutably, so the set stays keyed correctly.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&ObjectKey, &mut Value)> {
        self.objects.values_mut().map(|o| {
            o.applied = OnceLock::new();
            (&o.key, &mut o.object)
        })
    }
}

impl IntoIterator for DesiredSet {
    type Item = DesiredObject;
    type IntoIter = std::collections::btree_map::IntoValues<ObjectKey, DesiredObject>;

    fn into_iter(self) -> Self::IntoIter {
        self.objects.into_values()
    }
}

impl<'a> IntoIterator for &'a DesiredSet {
    type Item = &'a DesiredObject;
    type IntoIter = std::collections::btree_map::Values<'a, ObjectKey, DesiredObject>;

    fn into_iter(self) -> Self::IntoIter {
        self.objects.values()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crd_serves_its_kind_at_each_version_not_marked_unserved() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [
                    {"name": "v1", "served": true},
                    {"name": "v1beta1", "served": false},
                    {"name": "v2"}
                ]
            }
        });
        assert_eq!(
            crd_served_kinds(&crd),
            [
                ("example.com/v1".to_string(), "Widget".to_string()),
                ("example.com/v2".to_string(), "Widget".to_string()),
            ]
        );
        assert!(crd_served_kinds(&json!({"spec": {"group": "example.com"}})).is_empty());
    }

    #[test]
    fn keys_order_as_their_fields_do() {
        let words = [
            "",
            "a",
            "apps",
            "ConfigMap",
            "Deployment",
            "configmap-00012",
            "configmap-00013",
            "configmap-0001",
            "configmap-000120",
            "ns-1",
            "ns-10",
            "ns-2",
            "zz\u{e9}",
            "z\u{ff}",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefg",
        ];
        let mut keys = Vec::new();
        for group in ["", "apps"] {
            for kind in &words[..6] {
                for namespace in [None, Some("ns-1"), Some("ns-10"), Some("abcdefghi")] {
                    for name in words {
                        keys.push(ObjectKey {
                            group: group.into(),
                            kind: (*kind).into(),
                            namespace: namespace.map(String::from),
                            name: name.into(),
                        });
                    }
                }
            }
        }
        let fields = |k: &ObjectKey| {
            (
                k.group.clone(),
                k.kind.clone(),
                k.namespace.clone(),
                k.name.clone(),
            )
        };
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), fields(a).cmp(&fields(b)), "{a} vs {b}");
            }
        }
    }

    fn manifest(file: &str, line: usize, object: Value) -> Manifest {
        let origin = Origin {
            file: file.to_string(),
            document: 0,
            line,
        };
        Manifest { object, origin }
    }

    fn obj(api_version: &str, kind: &str, name: &str, namespace: Option<&str>) -> Value {
        let mut object =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = namespace {
            object["metadata"]["namespace"] = json!(ns);
        }
        object
    }

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn keys_parse_groups_and_display() {
        assert_eq!(group_of("apps/v1"), Some("apps"));
        assert_eq!(group_of("v1"), Some(""));
        assert_eq!(group_of("a/b/c"), None);
        assert_eq!(group_of("/v1"), None);
        let k = ObjectKey::from_object(&obj("apps/v1", "Deployment", "api", Some("web"))).unwrap();
        assert_eq!(k, key("apps", "Deployment", Some("web"), "api"));
        assert_eq!(k.to_string(), "Deployment.apps web/api");
        assert_eq!(
            key("", "Namespace", None, "web").to_string(),
            "Namespace web"
        );
        assert_eq!(
            ObjectKey::from_object(&json!({"apiVersion": "v1", "kind": "Pod"})),
            None
        );
    }

    #[test]
    fn namespaces_are_defaulted_by_scope() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget"}}
        });
        let manifests = vec![
            manifest("a.yaml", 1, obj("apps/v1", "Deployment", "api", None)),
            manifest("a.yaml", 5, obj("v1", "ConfigMap", "cfg", Some("other"))),
            manifest("a.yaml", 9, obj("v1", "Namespace", "web", Some("ignored"))),
            manifest(
                "a.yaml",
                13,
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r", None),
            ),
            manifest("b.yaml", 1, crd),
            manifest(
                "b.yaml",
                20,
                obj("example.com/v1", "Widget", "w", Some("ignored")),
            ),
            manifest("b.yaml", 30, obj("unknown.io/v1", "Gadget", "g", None)),
        ];
        let set = DesiredSet::build(manifests, "web", &BuiltinScopes).unwrap();
        let keys: Vec<String> = set.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            [
                "ConfigMap other/cfg",
                "Namespace web",
                "CustomResourceDefinition.apiextensions.k8s.io widgets.example.com",
                "Deployment.apps web/api",
                "Widget.example.com w",
                "ClusterRole.rbac.authorization.k8s.io r",
                "Gadget.unknown.io web/g",
            ]
        );
        let deploy = set
            .get(&key("apps", "Deployment", Some("web"), "api"))
            .unwrap();
        assert_eq!(deploy.object["metadata"]["namespace"], json!("web"));
        assert_eq!(deploy.object["apiVersion"], json!("apps/v1"));
        let ns = set.get(&key("", "Namespace", None, "web")).unwrap();
        assert_eq!(ns.object["metadata"], json!({"name": "web"}));
        let widget = set.get(&key("example.com", "Widget", None, "w")).unwrap();
        assert_eq!(widget.origin.to_string(), "b.yaml:20");
        assert_eq!(set.len(), 7);
        assert_eq!((&set).into_iter().count(), set.into_iter().count());
    }

    #[test]
    fn resolver_first_then_builtins_and_unknown_kinds_are_namespaced() {
        struct Cluster;
        impl ScopeResolver for Cluster {
            fn is_namespaced(&self, _: &str, kind: &str) -> Option<bool> {
                (kind == "Gadget").then_some(false)
            }
        }
        let manifests = vec![
            manifest("a.yaml", 1, obj("unknown.io/v1", "Gadget", "g", Some("x"))),
            manifest("a.yaml", 2, obj("unknown.io/v1", "Gizmo", "g", None)),
            manifest("a.yaml", 3, obj("v1", "Namespace", "n", None)),
        ];
        let set = DesiredSet::build(manifests, "", &Cluster).unwrap();
        let keys: Vec<String> = set.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            [
                "Namespace n",
                "Gadget.unknown.io g",
                "Gizmo.unknown.io default/g"
            ]
        );
    }

    #[test]
    fn duplicates_name_both_origins() {
        let manifests = vec![
            manifest("apps/a.yaml", 3, obj("apps/v1", "Deployment", "web", None)),
            manifest("apps/c.yaml", 1, obj("v1", "Service", "web", None)),
            manifest(
                "apps/b.yaml",
                10,
                obj("apps/v2", "Deployment", "web", Some("apps")),
            ),
        ];
        let err = DesiredSet::build(manifests, "apps", &BuiltinScopes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment.apps apps/web is defined twice: in apps/a.yaml:3 and apps/b.yaml:10"
        );
    }

    #[test]
    fn unidentifiable_objects_are_errors() {
        let manifests = vec![manifest(
            "x.yaml",
            4,
            json!({"apiVersion": "v1", "kind": "Pod"}),
        )];
        let err = DesiredSet::build(manifests, "d", &BuiltinScopes).unwrap_err();
        assert_eq!(err.to_string(), "x.yaml:4: the object has no metadata.name");
    }
}
