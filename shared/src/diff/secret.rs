//! What a diff needs to know of a core Secret: recognising one, and its `stringData`
//! folded into `data` as the API server stores it. Both normalising and masking build on
//! this, so it is a module of its own rather than part of either.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// Whether `obj` is a core Secret (`apiVersion: v1`, or no apiVersion at all).
pub fn is_secret(obj: &Value) -> bool {
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && matches!(api_version, None | Some("v1"))
}

/// Moves a Secret's `stringData` into `data` (base64-encoded, overriding `data`), as the
/// API server does on write, so `stringData: {x: a}` and `data: {x: YQ==}` compare equal.
/// Anything but a Secret is left alone.
pub fn fold_string_data(obj: &mut Value) {
    if !is_secret(obj) {
        return;
    }
    let Some(top) = obj.as_object_mut() else {
        return;
    };
    let string_data = match top.get("stringData") {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Null) => Map::new(),
        // Malformed: leave it for masking to hide rather than guess.
        Some(_) | None => return,
    };
    top.remove("stringData");
    if string_data.is_empty() {
        return;
    }
    if !matches!(top.get("data"), Some(Value::Object(_))) {
        top.insert("data".to_owned(), Value::Object(Map::new()));
    }
    if let Some(data) = top.get_mut("data").and_then(Value::as_object_mut) {
        for (key, value) in string_data {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(key, Value::String(STANDARD.encode(text)));
        }
    }
}
