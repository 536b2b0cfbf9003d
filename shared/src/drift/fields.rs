//! One object's drift, field by field, without a cluster: the live object against what
//! applying the manifest again would make of it (a server-side dry run with force).
//!
//! Comparing with the dry run rather than the manifest itself means server defaults,
//! list merging and other managers' fields are the server's business: a field only differs
//! when applying our manifest would change it back, which is exactly a field we applied
//! that someone changed since. Its owner now, from managedFields, is who changed it.

use serde::Serialize;
use serde_json::{Map, Value};

use super::ignore::IgnoreRules;
use super::owners::{changed_by, owners, pointer_segments};
use crate::diff::field_changes;
use crate::diff::mask::MASK;
use crate::diff::normalise::normalise;
use crate::live::FIELD_MANAGER;
use crate::objects::ObjectKey;

/// A field whose live value is not what the manifest sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    /// JSON pointer into the object (`/spec/replicas`), live object's list indices.
    pub path: String,
    /// What the manifest sets; null when it does not set the field.
    pub desired: Option<Value>,
    /// What the cluster has; null when the field is gone.
    pub live: Option<Value>,
    /// The field manager that owns the field now (who changed it); null when nobody does
    /// (the field was removed).
    pub manager: Option<String>,
    /// `Update` or `Apply`.
    pub operation: Option<String>,
    /// `scale`, `status`, ... when the change went through a subresource.
    pub subresource: Option<String>,
    /// When that manager last changed the object (RFC 3339), if the server recorded it.
    pub time: Option<String>,
}

/// A differing field that an ignore rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredField {
    pub key: ObjectKey,
    pub path: String,
    pub manager: Option<String>,
    /// The rule: `path /spec/replicas`, `manager kube-controller-manager (annotation)`.
    pub reason: String,
}

/// One object compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectFields {
    pub drift: Vec<FieldDrift>,
    pub ignored: Vec<IgnoredField>,
}

/// Compares `live` (as read, managedFields included) with `applied` (the dry run of
/// `manifest` with force). Both are normalised first, so server-written metadata and
/// status never differ. Secret values are masked unless `show_secrets`.
pub fn compare_object(
    key: &ObjectKey,
    manifest: &Value,
    applied: &Value,
    live: &Value,
    rules: &IgnoreRules,
    show_secrets: bool,
) -> ObjectFields {
    let mut live_view = live.clone();
    normalise(&mut live_view);
    let mut applied_view = applied.clone();
    normalise(&mut applied_view);
    let secret = key.group.is_empty() && key.kind == "Secret";
    let mut result = ObjectFields::default();
    for change in field_changes(&live_view, &applied_view) {
        let found = owners(live, &change.path);
        let owner = changed_by(&found, FIELD_MANAGER);
        let manager = owner.map(|o| o.manager.clone());
        if let Some(reason) = rules.reason(key, &[live, manifest], &change.path, manager.as_deref())
        {
            result.ignored.push(IgnoredField {
                key: key.clone(),
                path: change.path,
                manager,
                reason,
            });
            continue;
        }
        let hide = secret && !show_secrets && is_secret_value(&change.path);
        result.drift.push(FieldDrift {
            desired: if hide {
                masked(change.after)
            } else {
                change.after
            },
            live: if hide {
                masked(change.before)
            } else {
                change.before
            },
            path: change.path,
            manager,
            operation: owner.map(|o| o.operation.clone()),
            subresource: owner.and_then(|o| o.subresource.clone()),
            time: owner.and_then(|o| o.time.clone()),
        });
    }
    result
}

/// `/data`, `/data/key`, `/stringData/...`: where a Secret keeps its values.
fn is_secret_value(path: &str) -> bool {
    matches!(
        pointer_segments(path).first().map(String::as_str),
        Some("data" | "stringData")
    )
}

/// A value as `***`; a map of values as the same keys, each `***`.
fn masked(value: Option<Value>) -> Option<Value> {
    value.map(|v| match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, _)| (k, Value::from(MASK)))
                .collect::<Map<String, Value>>(),
        ),
        _ => Value::from(MASK),
    })
}

/// `manifest` without the fields at `pointers`, so applying it leaves them to whoever
/// owns them now (healing must not take an HPA's replicas back). The pointers come from
/// the dry run `applied`, whose list indices may differ from the manifest's: a list
/// element is found in the manifest as the one `applied`'s element contains.
pub fn without_fields(manifest: &Value, applied: &Value, pointers: &[String]) -> Value {
    let mut out = manifest.clone();
    for pointer in pointers {
        let segments = pointer_segments(pointer);
        remove_at(&mut out, Some(applied), &segments);
    }
    out
}

fn remove_at(target: &mut Value, applied: Option<&Value>, segments: &[String]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match target {
        Value::Object(map) => {
            if rest.is_empty() {
                map.remove(first);
            } else if let Some(child) = map.get_mut(first) {
                remove_at(child, applied.and_then(|a| a.get(first)), rest);
            }
        }
        Value::Array(items) => {
            let Ok(index) = first.parse::<usize>() else {
                return;
            };
            let theirs = applied.and_then(|a| a.get(index));
            let position = theirs
                .and_then(|t| items.iter().position(|item| contains(t, item)))
                .or_else(|| (index < items.len()).then_some(index));
            let Some(position) = position else {
                return;
            };
            if rest.is_empty() {
                items.remove(position);
            } else if let Some(child) = items.get_mut(position) {
                remove_at(child, theirs, rest);
            }
        }
        _ => {}
    }
}

/// Whether `outer` holds everything `inner` sets (server defaults may add more).
fn contains(outer: &Value, inner: &Value) -> bool {
    match (outer, inner) {
        (Value::Object(o), Value::Object(i)) => i
            .iter()
            .all(|(k, v)| o.get(k).is_some_and(|ov| contains(ov, v))),
        (Value::Array(o), Value::Array(i)) => i.iter().all(|v| o.iter().any(|ov| contains(ov, v))),
        // `port: "80"` in a manifest is stored as 80.
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            n.to_string() == *s
        }
        _ => outer == inner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::ignore::IgnoreRule;
    use serde_json::json;

    fn key(kind: &str) -> ObjectKey {
        ObjectKey {
            group: if kind == "Deployment" { "apps" } else { "" }.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }
    }

    fn manifest() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [
                   {"name": "web", "image": "nginx:1.26"}]}}}})
    }

    /// The dry run: the manifest, server defaults and another manager's container merged in.
    fn applied() -> Value {
        let mut applied = manifest();
        applied["metadata"]["resourceVersion"] = json!("9");
        applied["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        applied["spec"]["template"]["spec"]["containers"] = json!([
            {"name": "sidecar", "image": "envoy"},
            {"name": "web", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent"}]);
        applied
    }

    fn live() -> Value {
        let mut live = applied();
        live["metadata"]["resourceVersion"] = json!("12");
        live["metadata"]["labels"]
            .as_object_mut()
            .map(|l| l.remove("tier"));
        live["spec"]["replicas"] = json!(5);
        live["spec"]["template"]["spec"]["containers"][1]["image"] = json!("nginx:1.27");
        live["status"] = json!({"replicas": 5});
        live["metadata"]["managedFields"] = json!([
            {"manager": "kubectl-gitops", "operation": "Apply", "time": "2026-01-01T10:00:00Z",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}},
            {"manager": "kubectl", "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-01T11:00:00Z",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                 "k:{\"name\":\"web\"}": {"f:image": {}}}}}}}}]);
        live
    }

    #[test]
    fn reports_changed_and_removed_fields_with_their_owners() {
        let got = compare_object(
            &key("Deployment"),
            &manifest(),
            &applied(),
            &live(),
            &IgnoreRules::default(),
            false,
        );
        assert!(got.ignored.is_empty());
        type Row<'a> = (&'a str, Option<Value>, Option<Value>, Option<&'a str>);
        let rows: Vec<Row> = got
            .drift
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.desired.clone(),
                    f.live.clone(),
                    f.manager.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("/metadata/labels/tier", Some(json!("front")), None, None),
                (
                    "/spec/replicas",
                    Some(json!(2)),
                    Some(json!(5)),
                    Some("kubectl")
                ),
                (
                    "/spec/template/spec/containers/1/image",
                    Some(json!("nginx:1.26")),
                    Some(json!("nginx:1.27")),
                    Some("kubectl-edit")
                ),
            ]
        );
        assert_eq!(got.drift[1].subresource.as_deref(), Some("scale"));
        assert_eq!(got.drift[2].time.as_deref(), Some("2026-01-01T11:00:00Z"));
        assert_eq!(got.drift[2].operation.as_deref(), Some("Update"));
    }

    #[test]
    fn ignore_rules_move_fields_aside() {
        let rules = IgnoreRules {
            rules: vec![
                IgnoreRule::manager("kubectl"),
                IgnoreRule::path("/metadata/labels").unwrap_or_default(),
            ],
        };
        let got = compare_object(
            &key("Deployment"),
            &manifest(),
            &applied(),
            &live(),
            &rules,
            false,
        );
        assert_eq!(got.drift.len(), 1);
        let reasons: Vec<&str> = got.ignored.iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(reasons, ["path /metadata/labels", "manager kubectl"]);
    }

    #[test]
    fn secret_values_are_masked_unless_asked() {
        let manifest = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
                              "stringData": {"password": "hunter2"}});
        let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
                             "data": {"password": "aHVudGVyMg==", "other": "eA=="}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web",
                             "managedFields": [{"manager": "kubectl-patch", "operation": "Update",
                               "fieldsV1": {"f:data": {"f:password": {}}}}]},
                          "data": {"password": "eA=="}});
        let rules = IgnoreRules::default();
        let got = compare_object(&key("Secret"), &manifest, &applied, &live, &rules, false);
        let text = serde_json::to_string(&got.drift).unwrap_or_default();
        assert!(
            !text.contains("aHVudGVyMg") && !text.contains("eA=="),
            "{text}"
        );
        let paths: Vec<&str> = got.drift.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/data/password", "/data/other"]);
        assert_eq!(got.drift[0].desired, Some(json!("***")));
        assert_eq!(got.drift[0].live, Some(json!("***")));
        assert_eq!(got.drift[0].manager.as_deref(), Some("kubectl-patch"));
        assert_eq!(got.drift[1].live, None);
        let shown = compare_object(&key("Secret"), &manifest, &applied, &live, &rules, true);
        assert_eq!(shown.drift[0].live, Some(json!("eA==")));
        assert_eq!(masked(Some(json!({"a": "x"}))), Some(json!({"a": "***"})));
    }

    #[test]
    fn fields_are_left_out_of_a_manifest_by_the_dry_runs_coordinates() {
        let pointers = [
            "/spec/replicas".to_string(),
            // Index 1 in the dry run is the manifest's container 0.
            "/spec/template/spec/containers/1/image".to_string(),
            "/metadata/labels/missing".to_string(),
            "/spec/nothing/0".to_string(),
        ];
        let got = without_fields(&manifest(), &applied(), &pointers);
        let mut want = manifest();
        want["spec"].as_object_mut().map(|s| s.remove("replicas"));
        want["spec"]["template"]["spec"]["containers"] = json!([{"name": "web"}]);
        assert_eq!(got, want);
        // A whole element, matched by content.
        let got = without_fields(
            &manifest(),
            &applied(),
            &["/spec/template/spec/containers/1".to_string()],
        );
        assert_eq!(got["spec"]["template"]["spec"]["containers"], json!([]));
        assert!(contains(&json!({"port": 80}), &json!({"port": "80"})));
    }
}
