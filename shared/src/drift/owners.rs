//! Who owns a field now: the managedFields entries whose field set holds a JSON pointer.
//!
//! A field set (`fieldsV1`) mirrors the object: `f:<name>` for a map key, `k:<json>` for a
//! list element picked by its key fields, `v:<json>` for a set element by value, `i:<n>`
//! for a list element by index, and `.` for "the node itself". The list forms name
//! elements by identity, a pointer by index, so the walk looks at the live element at
//! that index to see which identity it has: no schema is needed.

use serde::Serialize;
use serde_json::{Map, Value};

/// A field manager that owns a field, as its managedFields entry says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldOwner {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `scale`, `status`, ... when the change went through a subresource.
    pub subresource: Option<String>,
    /// When the entry last changed (RFC 3339); some entries, `kubectl scale`'s among them,
    /// have none.
    pub time: Option<String>,
}

/// The segments of an RFC 6901 pointer (`~1` is `/`, `~0` is `~`); `""` has none.
pub fn pointer_segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Every manager whose field set holds `pointer` in `object` (the field itself or part
/// of it), in managedFields order.
pub fn owners(object: &Value, pointer: &str) -> Vec<FieldOwner> {
    let segments = pointer_segments(pointer);
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|entry| {
            entry
                .get("fieldsV1")
                .is_some_and(|fields| holds(fields, Some(object), &segments))
        })
        .filter_map(|entry| {
            let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
            Some(FieldOwner {
                manager: text("manager")?,
                operation: text("operation").unwrap_or_default(),
                subresource: text("subresource").filter(|s| !s.is_empty()),
                time: text("time"),
            })
        })
        .collect()
}

/// The owner to name as the one who changed a field: another manager than `ours` if any
/// (the newest of them), else `ours`.
pub fn changed_by<'a>(owners: &'a [FieldOwner], ours: &str) -> Option<&'a FieldOwner> {
    // RFC 3339 times in UTC sort as text; an entry without a time sorts first.
    owners
        .iter()
        .filter(|o| o.manager != ours)
        .max_by(|a, b| a.time.cmp(&b.time))
        .or_else(|| owners.iter().find(|o| o.manager == ours))
}

/// Whether the field set `fields` has a node for `segments`, walking `value` (the live
/// object at the same place) to tell list elements apart.
fn holds(fields: &Value, value: Option<&Value>, segments: &[String]) -> bool {
    let Some(set) = fields.as_object() else {
        return false;
    };
    let Some((first, rest)) = segments.split_first() else {
        return true;
    };
    match value {
        Some(Value::Array(items)) => {
            let Ok(index) = first.parse::<usize>() else {
                return false;
            };
            let element = items.get(index);
            set.iter()
                .find(|(name, _)| element_matches(name, index, element))
                .is_some_and(|(_, child)| holds(child, element, rest))
        }
        _ => set
            .get(&format!("f:{first}"))
            .is_some_and(|child| holds(child, value.and_then(|v| v.get(first)), rest)),
    }
}

/// Whether a field-set name (`k:{"name":"web"}`, `v:"x"`, `i:0`) denotes the list
/// element `element` found at `index`.
fn element_matches(name: &str, index: usize, element: Option<&Value>) -> bool {
    if let Some(keys) = name.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
            return false;
        };
        return element
            .and_then(Value::as_object)
            .is_some_and(|element| keys_match(&keys, element));
    }
    if let Some(value) = name.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).is_ok_and(|v| Some(&v) == element);
    }
    if let Some(i) = name.strip_prefix("i:") {
        return i.parse::<usize>() == Ok(index);
    }
    false
}

fn keys_match(keys: &Map<String, Value>, element: &Map<String, Value>) -> bool {
    keys.iter().all(|(k, v)| element.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Deployment as the server returned it after `kubectl-gitops` applied it,
    /// `kubectl scale` changed replicas and `kubectl edit` changed the image.
    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web", "a/b": "x"},
                "managedFields": [
                    {"manager": "kubectl-gitops", "operation": "Apply", "time": "2026-01-01T10:00:00Z",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:a/b": {}}},
                      "f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {".": {}, "f:name": {},
                          "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}},
                        "k:{\"name\":\"side\"}": {".": {}, "f:name": {}, "f:image": {}}}}},
                        "f:finalizers": {"v:\"a\"": {}}}}},
                    {"manager": "kubectl", "operation": "Update", "subresource": "scale",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T11:00:00Z",
                     "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {"f:image": {}}}}}}}}
                ]
            },
            "spec": {
                "replicas": 5,
                "finalizers": ["a", "b"],
                "template": {"spec": {"containers": [
                    {"name": "side", "image": "busybox"},
                    {"name": "web", "image": "nginx:1.27",
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}
                ]}}
            }
        })
    }

    fn managers(pointer: &str) -> Vec<String> {
        owners(&deployment(), pointer)
            .into_iter()
            .map(|o| o.manager)
            .collect()
    }

    #[test]
    fn finds_the_manager_of_a_field_by_list_key_not_index() {
        assert_eq!(
            managers("/spec/template/spec/containers/1/image"),
            ["kubectl-edit"]
        );
        assert_eq!(
            managers("/spec/template/spec/containers/0/image"),
            ["kubectl-gitops"]
        );
        assert_eq!(
            managers("/spec/template/spec/containers/1/ports/0/containerPort"),
            ["kubectl-gitops"]
        );
        // The element itself: owned by both (the apply made it, the edit changed part).
        assert_eq!(
            managers("/spec/template/spec/containers/1"),
            ["kubectl-gitops", "kubectl-edit"]
        );
    }

    #[test]
    fn subresource_owners_and_set_values_and_escaped_keys() {
        let found = owners(&deployment(), "/spec/replicas");
        assert_eq!(
            found,
            [FieldOwner {
                manager: "kubectl".into(),
                operation: "Update".into(),
                subresource: Some("scale".into()),
                time: None,
            }]
        );
        assert_eq!(managers("/spec/finalizers/0"), ["kubectl-gitops"]);
        assert!(managers("/spec/finalizers/1").is_empty());
        assert_eq!(managers("/metadata/labels/a~1b"), ["kubectl-gitops"]);
    }

    #[test]
    fn unowned_missing_and_malformed_paths_have_no_owner() {
        assert!(managers("/spec/paused").is_empty());
        assert!(managers("/spec/template/spec/containers/7/image").is_empty());
        assert!(managers("/spec/template/spec/containers/x/image").is_empty());
        assert!(owners(&json!({"metadata": {}}), "/spec").is_empty());
        assert!(
            owners(
                &json!({"metadata": {"managedFields": [{"fieldsV1": 3}]}}),
                "/a"
            )
            .is_empty()
        );
    }

    #[test]
    fn the_changer_is_another_manager_than_ours_newest_first() {
        let all = owners(&deployment(), "/spec/template/spec/containers/1");
        assert_eq!(
            changed_by(&all, "kubectl-gitops").map(|o| o.manager.as_str()),
            Some("kubectl-edit")
        );
        let ours = owners(&deployment(), "/metadata/labels/app");
        assert_eq!(
            changed_by(&ours, "kubectl-gitops").map(|o| o.manager.as_str()),
            Some("kubectl-gitops")
        );
        assert_eq!(changed_by(&[], "kubectl-gitops"), None);
    }

    #[test]
    fn pointer_segments_unescape() {
        assert_eq!(pointer_segments(""), Vec::<String>::new());
        assert_eq!(pointer_segments("/a~1b/c~0d/0"), ["a/b", "c~d", "0"]);
    }
}
