//! Masking Secret values so a diff never shows them, while still telling which keys changed
//! (as `kubectl diff` does).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::normalise::{LAST_APPLIED_ANNOTATION, remove_annotation};
use super::secret::fold_string_data;
pub use super::secret::is_secret;

/// What a value becomes when it is the same on both sides, or exists on one side only.
pub const MASK: &str = "***";
/// What a changed value becomes on the before side.
pub const MASK_BEFORE: &str = "*** (before)";
/// What a changed value becomes on the after side.
pub const MASK_AFTER: &str = "*** (after)";

/// The fields of a Secret that hold its values.
const VALUE_FIELDS: &[&str] = &["data", "stringData"];

/// Masks one Secret on its own: every value becomes [`MASK`], and the last-applied
/// annotation (a full copy of the object) is dropped. Anything but a Secret is left alone.
pub fn mask_secret(obj: &mut Value) {
    if is_secret(obj) {
        mask_one(obj);
    }
}

/// Masks the two sides of a Secret's diff: unchanged values become [`MASK`] on both sides,
/// changed values [`MASK_BEFORE`] / [`MASK_AFTER`], values on one side only [`MASK`].
/// `stringData` is folded into `data` first, and the last-applied annotation is dropped.
/// A side that is not a Secret is left alone.
pub fn mask_secret_pair(before: Option<&mut Value>, after: Option<&mut Value>) {
    mask_pair(
        before.filter(|v| is_secret(v)),
        after.filter(|v| is_secret(v)),
    );
}

/// [`mask_secret_pair`] without the check, for callers that know from the object's key.
pub(crate) fn mask_pair(before: Option<&mut Value>, after: Option<&mut Value>) {
    match (before, after) {
        (Some(before), Some(after)) => {
            fold_string_data(before);
            fold_string_data(after);
            let before_data = data_map(before);
            let after_data = data_map(after);
            mask_against(before, after_data.as_ref(), MASK_BEFORE);
            mask_against(after, before_data.as_ref(), MASK_AFTER);
            remove_annotation(before, LAST_APPLIED_ANNOTATION);
            remove_annotation(after, LAST_APPLIED_ANNOTATION);
        }
        (Some(one), None) | (None, Some(one)) => mask_one(one),
        (None, None) => {}
    }
}

fn mask_one(obj: &mut Value) {
    fold_string_data(obj);
    mask_against(obj, None, MASK);
    remove_annotation(obj, LAST_APPLIED_ANNOTATION);
}

fn data_map(obj: &Value) -> Option<Map<String, Value>> {
    obj.get("data").and_then(Value::as_object).cloned()
}

/// Replaces every value of `obj`'s value fields: with [`MASK`] when `other` holds an equal
/// value under the same key (or has no such key), else with `changed`.
fn mask_against(obj: &mut Value, other: Option<&Map<String, Value>>, changed: &str) {
    let Some(top) = obj.as_object_mut() else {
        return;
    };
    for field in VALUE_FIELDS {
        match top.get_mut(*field) {
            Some(Value::Object(map)) => {
                for (key, value) in map.iter_mut() {
                    let mask = match other.and_then(|o| o.get(key)) {
                        Some(theirs) if !same_secret_value(value, theirs) => changed,
                        _ => MASK,
                    };
                    *value = Value::String(mask.to_owned());
                }
            }
            Some(Value::Null) | None => {}
            // Not a map: no key to show, but never its content.
            Some(other_shape) => *other_shape = Value::String(MASK.to_owned()),
        }
    }
}

/// Equal values, or equal bytes behind two base64 spellings (line breaks are ignored when
/// decoding, as the API server does).
fn same_secret_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a.as_str().and_then(decode), b.as_str().and_then(decode)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn secret(data: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "demo"},
            "type": "Opaque",
            "data": data
        })
    }

    #[test]
    fn unchanged_changed_and_one_sided_keys_stay_distinguishable() {
        let mut before = secret(json!({
            "same": b64("s3cret-same"),
            "changed": b64("old-value"),
            "gone": b64("gone-value")
        }));
        let mut after = secret(json!({
            "same": b64("s3cret-same"),
            "changed": b64("new-value"),
            "new": b64("new-key-value")
        }));
        mask_secret_pair(Some(&mut before), Some(&mut after));
        assert_eq!(
            before["data"],
            json!({"same": "***", "changed": "*** (before)", "gone": "***"})
        );
        assert_eq!(
            after["data"],
            json!({"same": "***", "changed": "*** (after)", "new": "***"})
        );
    }

    #[test]
    fn string_data_equal_to_data_is_unchanged() {
        let mut live = secret(json!({"password": b64("hunter2"), "user": b64("admin")}));
        let mut desired = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "demo"},
            "type": "Opaque",
            "data": {"user": b64("root")},
            // stringData wins over data for the same key, as on the server.
            "stringData": {"password": "hunter2", "user": "admin"}
        });
        mask_secret_pair(Some(&mut live), Some(&mut desired));
        assert_eq!(live, desired);
        assert_eq!(desired["data"], json!({"password": "***", "user": "***"}));
        assert_eq!(desired.get("stringData"), None);
    }

    #[test]
    fn string_data_that_differs_is_changed() {
        let mut live = secret(json!({"password": b64("hunter2")}));
        let mut desired = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"password": "hunter3"}
        });
        mask_secret_pair(Some(&mut live), Some(&mut desired));
        assert_eq!(live["data"]["password"], json!(MASK_BEFORE));
        assert_eq!(desired["data"]["password"], json!(MASK_AFTER));
    }

    #[test]
    fn base64_spelled_with_line_breaks_is_the_same_value() {
        let mut before = secret(json!({"k": "aHVu\ndGVyMg=="}));
        let mut after = secret(json!({"k": "aHVudGVyMg=="}));
        mask_secret_pair(Some(&mut before), Some(&mut after));
        assert_eq!(before, after);
    }

    #[test]
    fn last_applied_never_leaks() {
        let value = "correct-horse-battery-staple";
        let last_applied = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"password": value},
            "data": {"token": b64(value)}
        })
        .to_string();
        let with_annotation = |data: Value| {
            let mut s = secret(data);
            s["metadata"]["annotations"] = json!({
                LAST_APPLIED_ANNOTATION: last_applied,
                "team.example.com/owner": "payments"
            });
            s
        };

        let mut before = with_annotation(json!({"password": b64(value)}));
        let mut after = with_annotation(json!({"password": b64("other")}));
        mask_secret_pair(Some(&mut before), Some(&mut after));
        let mut alone = with_annotation(json!({"token": b64(value)}));
        alone["stringData"] = json!({"password": value});
        mask_secret(&mut alone);

        for masked in [&before, &after, &alone] {
            let text = masked.to_string();
            assert!(!text.contains(value), "{text}");
            assert!(!text.contains(&b64(value)), "{text}");
            assert!(!text.contains("last-applied"), "{text}");
            assert_eq!(
                masked["metadata"]["annotations"],
                json!({"team.example.com/owner": "payments"})
            );
        }
    }

    #[test]
    fn one_side_only_masks_everything() {
        let mut added = secret(json!({"a": b64("x"), "b": b64("y")}));
        mask_secret_pair(None, Some(&mut added));
        assert_eq!(added["data"], json!({"a": "***", "b": "***"}));

        let mut removed = secret(json!({"a": b64("x")}));
        mask_secret_pair(Some(&mut removed), None);
        assert_eq!(removed["data"], json!({"a": "***"}));
    }

    #[test]
    fn malformed_values_are_hidden_whole() {
        let mut obj = secret(json!("not-a-map-but-secret"));
        obj["stringData"] = json!(["also", "secret"]);
        mask_secret(&mut obj);
        assert_eq!(obj["data"], json!(MASK));
        assert_eq!(obj["stringData"], json!(MASK));
    }

    #[test]
    fn leaves_other_objects_alone() {
        let config_map = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "annotations": {LAST_APPLIED_ANNOTATION: "{}"}},
            "data": {"k": "v"}
        });
        let custom = json!({
            "apiVersion": "vault.example.com/v1",
            "kind": "Secret",
            "data": {"k": "v"}
        });
        for original in [config_map, custom] {
            let mut obj = original.clone();
            mask_secret(&mut obj);
            assert_eq!(obj, original);
            let mut other = original.clone();
            mask_secret_pair(Some(&mut obj), Some(&mut other));
            assert_eq!(obj, original);
        }
    }

    #[test]
    fn fold_is_idempotent_and_handles_null() {
        let mut obj = secret(json!(null));
        obj["stringData"] = json!(null);
        fold_string_data(&mut obj);
        assert_eq!(obj.get("stringData"), None);
        assert_eq!(obj["data"], json!(null));

        let mut obj = secret(json!({"a": b64("x")}));
        obj["stringData"] = json!({"b": "y"});
        fold_string_data(&mut obj);
        let once = obj.clone();
        fold_string_data(&mut obj);
        assert_eq!(obj, once);
        assert_eq!(obj["data"], json!({"a": b64("x"), "b": b64("y")}));
    }
}
