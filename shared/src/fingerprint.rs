//! Knowing an object is unchanged without asking the server: the last deployed release
//! remembers, per object, a hash of what it applied and the resourceVersion the object had
//! when the sync finished. While the revision still wants the same object and nobody
//! (person or controller) has written it since, a dry-run would only confirm "no change".
//! Any write moves the resourceVersion, so an out-of-band edit is never missed.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::objects::ObjectKey;
use crate::release::record::ReleaseRecord;

/// A hash of an object as the sync applies it (labels included).
pub fn applied_hash(object: &Value) -> String {
    // serde_json keeps the manifest's key order, and the same revision renders the same
    // order, so the bytes are stable for the same desired object.
    let bytes = serde_json::to_vec(object).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// An object's `metadata.resourceVersion`.
pub fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// What a deployed release remembers about its objects.
#[derive(Debug, Clone, Default)]
pub struct Fingerprints {
    by_key: BTreeMap<ObjectKey, (String, String)>,
}

impl Fingerprints {
    /// The fingerprints a release recorded (none for records written before they existed).
    pub fn from_record(record: &ReleaseRecord) -> Fingerprints {
        let by_key = record
            .objects
            .iter()
            .filter_map(|o| {
                Some((
                    o.key.clone(),
                    (o.applied_hash.clone()?, o.resource_version.clone()?),
                ))
            })
            .collect();
        Fingerprints { by_key }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether applying `desired` over `live` is known to change nothing.
    pub fn unchanged(&self, key: &ObjectKey, desired: &Value, live: &Value) -> bool {
        match (self.by_key.get(key), resource_version(live)) {
            (Some((hash, version)), Some(live_version)) => {
                version == live_version && *hash == applied_hash(desired)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::record::{ObjectResult, Operation};
    use serde_json::json;

    fn record_with(key: &ObjectKey, hash: &str, version: &str) -> ReleaseRecord {
        let mut record = ReleaseRecord::start("app", "ns", Operation::Sync, "me", String::new());
        record.objects.push(ObjectResult {
            key: key.clone(),
            action: "created".into(),
            health: None,
            message: None,
            resource_version: Some(version.into()),
            applied_hash: Some(hash.into()),
        });
        record
    }

    #[test]
    fn unchanged_only_while_both_the_object_and_its_version_match() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "1"}});
        let key = ObjectKey::from_object(&desired).expect("key");
        let known = Fingerprints::from_record(&record_with(&key, &applied_hash(&desired), "42"));
        let live = |version: &str| json!({"metadata": {"resourceVersion": version}});
        assert!(known.unchanged(&key, &desired, &live("42")));
        // Someone wrote the object since: ask the server.
        assert!(!known.unchanged(&key, &desired, &live("43")));
        // The revision wants something else now.
        let mut edited = desired.clone();
        edited["data"]["a"] = json!("2");
        assert!(!known.unchanged(&key, &edited, &live("42")));
        // Not in the record, or no version live: unknown.
        let other = ObjectKey {
            name: "d".into(),
            ..key.clone()
        };
        assert!(!known.unchanged(&other, &desired, &live("42")));
        assert!(!known.unchanged(&key, &desired, &json!({})));
    }

    #[test]
    fn hashes_are_stable_and_differ_with_content() {
        let a = json!({"kind": "ConfigMap", "data": {"x": "1"}});
        assert_eq!(applied_hash(&a), applied_hash(&a.clone()));
        assert_eq!(applied_hash(&a).len(), 32);
        assert_ne!(
            applied_hash(&a),
            applied_hash(&json!({"kind": "ConfigMap", "data": {"x": "2"}}))
        );
    }
}
