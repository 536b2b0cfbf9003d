//! Dropping what is noise in a diff: fields the API server writes and nobody puts in git.

use serde_json::{Map, Value};

/// The annotation `kubectl apply` (client-side) writes: a full copy of the object, so it
/// doubles every change in a diff and, on Secrets, leaks their values.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The annotation the Deployment controller bumps on every rollout.
pub const DEPLOYMENT_REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// The prefix of the ApplySet labels and annotations (KEP-3659) this project writes.
pub const APPLYSET_PREFIX: &str = "applyset.kubernetes.io/";

/// Fields under `metadata` that the API server owns.
const SERVER_METADATA_FIELDS: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    // Set only while an object is being deleted; git never holds them.
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Which labels and annotations [`normalise_with`] drops, by key prefix.
///
/// A prefix equal to a whole key drops just that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormaliseOptions {
    pub drop_label_prefixes: Vec<String>,
    pub drop_annotation_prefixes: Vec<String>,
}

impl Default for NormaliseOptions {
    /// Drops the last-applied and Deployment revision annotations; keeps every label.
    fn default() -> Self {
        NormaliseOptions {
            drop_label_prefixes: Vec::new(),
            drop_annotation_prefixes: vec![
                LAST_APPLIED_ANNOTATION.to_owned(),
                DEPLOYMENT_REVISION_ANNOTATION.to_owned(),
            ],
        }
    }
}

impl NormaliseOptions {
    /// The defaults, plus our own ApplySet bookkeeping (`applyset.kubernetes.io/*` labels
    /// and annotations), for comparing objects of which only one side went through a sync.
    pub fn ignoring_applyset() -> Self {
        let mut opts = NormaliseOptions::default();
        opts.drop_label_prefixes.push(APPLYSET_PREFIX.to_owned());
        opts.drop_annotation_prefixes
            .push(APPLYSET_PREFIX.to_owned());
        opts
    }
}

/// Normalises with [`NormaliseOptions::default`].
pub fn normalise(obj: &mut Value) {
    normalise_with(obj, &NormaliseOptions::default());
}

/// Drops `status`, server-owned metadata, the labels and annotations `opts` names, and the
/// empty `labels` / `annotations` maps that leaves behind. A Secret's `stringData` is folded
/// into `data`, as the API server stores it, so both spellings of one value compare equal.
pub fn normalise_with(obj: &mut Value, opts: &NormaliseOptions) {
    let Some(top) = obj.as_object_mut() else {
        return;
    };
    top.remove("status");
    if let Some(meta) = top.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA_FIELDS {
            meta.remove(*field);
        }
        drop_keys_by_prefix(meta, "labels", &opts.drop_label_prefixes);
        drop_keys_by_prefix(meta, "annotations", &opts.drop_annotation_prefixes);
    }
    super::secret::fold_string_data(obj);
}

/// Removes the keys of `meta[field]` that start with one of `prefixes`, then the map itself
/// if that (or anything else) left it empty or null.
fn drop_keys_by_prefix(meta: &mut Map<String, Value>, field: &str, prefixes: &[String]) {
    if let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) {
        map.retain(|key, _| !prefixes.iter().any(|p| key.starts_with(p.as_str())));
    }
    remove_if_empty(meta, field);
}

/// Removes one annotation, and the annotations map if it ends up empty.
pub(crate) fn remove_annotation(obj: &mut Value, key: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(map) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        map.remove(key);
    }
    remove_if_empty(meta, "annotations");
}

/// `labels: {}` and `labels: null` mean the same as no labels; drop them so they never diff.
fn remove_if_empty(meta: &mut Map<String, Value>, field: &str) {
    let empty = match meta.get(field) {
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        meta.remove(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "demo",
                "uid": "0b8e1f7c-1111-2222-3333-444455556666",
                "resourceVersion": "12345",
                "generation": 4,
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "selfLink": "/apis/apps/v1/namespaces/demo/deployments/web",
                "deletionGracePeriodSeconds": 30,
                "managedFields": [{"manager": "kubectl-gitops", "operation": "Apply"}],
                "labels": {"app": "web", "applyset.kubernetes.io/part-of": "applyset-abc-v1"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
                    "deployment.kubernetes.io/revision": "7",
                    "team.example.com/owner": "payments"
                },
                "finalizers": ["example.com/keep"]
            },
            "spec": {"replicas": 2, "template": {"metadata": {"annotations": {}}}},
            "status": {"replicas": 2, "readyReplicas": 2}
        })
    }

    #[test]
    fn drops_exactly_the_noise_and_keeps_user_metadata() {
        let mut obj = live_deployment();
        normalise(&mut obj);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "demo",
                    "labels": {"app": "web", "applyset.kubernetes.io/part-of": "applyset-abc-v1"},
                    "annotations": {"team.example.com/owner": "payments"},
                    "finalizers": ["example.com/keep"]
                },
                // Only metadata maps are cleaned; an empty map in the spec is the user's.
                "spec": {"replicas": 2, "template": {"metadata": {"annotations": {}}}}
            })
        );
    }

    #[test]
    fn keeps_key_order() {
        let mut obj = live_deployment();
        normalise(&mut obj);
        let keys: Vec<&str> = obj
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"]);
    }

    #[test]
    fn removes_maps_left_empty() {
        let mut obj = json!({
            "kind": "ConfigMap",
            "metadata": {
                "name": "cfg",
                "labels": {},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
            }
        });
        normalise(&mut obj);
        assert_eq!(
            obj,
            json!({"kind": "ConfigMap", "metadata": {"name": "cfg"}})
        );
    }

    #[test]
    fn applyset_bookkeeping_dropped_only_when_asked() {
        let mut obj = json!({
            "kind": "ConfigMap",
            "metadata": {
                "name": "cfg",
                "labels": {"applyset.kubernetes.io/part-of": "applyset-abc-v1"},
                "annotations": {"applyset.kubernetes.io/tooling": "kubectl-gitops/v0.1.0", "a": "b"}
            }
        });
        let mut plain = obj.clone();
        normalise(&mut plain);
        assert_eq!(plain, obj);

        normalise_with(&mut obj, &NormaliseOptions::ignoring_applyset());
        assert_eq!(
            obj,
            json!({"kind": "ConfigMap", "metadata": {"name": "cfg", "annotations": {"a": "b"}}})
        );
    }

    #[test]
    fn custom_prefixes_do_not_drop_the_defaults_unless_listed() {
        let mut obj = live_deployment();
        let opts = NormaliseOptions {
            drop_label_prefixes: vec!["app".to_owned()],
            drop_annotation_prefixes: Vec::new(),
        };
        normalise_with(&mut obj, &opts);
        assert_eq!(obj["metadata"].get("labels"), None);
        assert_eq!(
            obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            json!("7")
        );
    }

    #[test]
    fn leaves_non_objects_and_bare_objects_alone() {
        let mut scalar = json!("not an object");
        normalise(&mut scalar);
        assert_eq!(scalar, json!("not an object"));

        let mut bare = json!({"kind": "Thing", "spec": {"status": "kept"}});
        normalise(&mut bare);
        assert_eq!(bare, json!({"kind": "Thing", "spec": {"status": "kept"}}));
    }

    #[test]
    fn folds_secret_string_data() {
        let mut obj = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "stringData": {"password": "hunter2"}
        });
        normalise(&mut obj);
        assert_eq!(obj["data"], json!({"password": "aHVudGVyMg=="}));
        assert_eq!(obj.get("stringData"), None);
    }
}
