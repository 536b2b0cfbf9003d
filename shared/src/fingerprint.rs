//! Knowing an object is unchanged without asking the server: the last deployed release
//! remembers, per object, a hash of what it applied, the resourceVersion the object had
//! when the sync finished, and a hash of what our field manager owned of it then
//! ([`owned_hash`]). While the revision still wants the same object, a dry-run would only
//! confirm "no change" if nobody has written the object since (same resourceVersion), or
//! if nobody has written any field we own (same owned hash): writes by others to fields
//! we do not apply (a controller's status, its annotations) cannot change what applying
//! again would do.
//!
//! Why the owned hash proves that: the API server moves every field that another
//! manager's write changes or removes out of the set of its previous owners (a
//! `kubectl edit` of a field we applied takes it out of our entry in `managedFields`),
//! and each of our own applies that changes the object moves our entry's time. The
//! object's uid is part of the hash, so a deleted and re-created object is never taken
//! for the one we applied.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::apply::applyset::ApplySetId;
use crate::live::{FIELD_MANAGER, Glance};
pub use crate::objects::hash::applied_hash;
use crate::objects::hash::short_hex as hex;
use crate::objects::{DesiredObject, ObjectKey};
use crate::release::record::ReleaseRecord;

/// An object's `metadata.resourceVersion`.
pub fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Our own entry of `object`'s `managedFields` (our manager's apply to the object
/// itself, not to a subresource).
fn our_entry(object: &Value) -> Option<&Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|entry| {
            entry.get("manager").and_then(Value::as_str) == Some(FIELD_MANAGER)
                && entry.get("operation").and_then(Value::as_str) == Some("Apply")
                && entry.get("subresource").is_none()
        })
}

/// A hash of what our field manager owns of `object`: its uid and our apply entry of
/// `managedFields` (the fields, their apiVersion and the time of our last change). None
/// if the object has no uid or we own nothing of it.
pub fn owned_hash(object: &Value) -> Option<String> {
    let uid = object.pointer("/metadata/uid")?.as_str()?;
    let entry = our_entry(object)?;
    let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
    // Field by field, keys sorted: an apply's answer and a LIST item may write the same
    // entry with its keys in another order or its time in another form.
    let time = text("time")
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second().to_string())
        .unwrap_or_else(|_| text("time").to_string());
    let mut hasher = Sha256::new();
    for part in [uid, text("apiVersion"), &time, text("fieldsType")] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut fields = String::new();
    canonical(entry.get("fieldsV1").unwrap_or(&Value::Null), &mut fields);
    hasher.update(fields.as_bytes());
    Some(hex(&hasher.finalize()))
}

/// `value` as JSON with every object's keys sorted.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether every top-level field `desired` sets is one the server keeps in `live`. A
/// write-only field (a Secret's `stringData`, which the server folds into `data`) is owned
/// by us in `managedFields`, but another writer's change to what it became (`data`) is not
/// a change to it: for such an object only an unchanged resourceVersion proves anything.
fn stores_what_it_applied(desired: &Value, live: &Value) -> bool {
    desired
        .as_object()
        .is_some_and(|desired| keeps_fields(desired.keys().map(String::as_str), live))
}

/// Whether `live` has every one of the top-level `fields`.
fn keeps_fields<'a>(mut fields: impl Iterator<Item = &'a str>, live: &Value) -> bool {
    live.as_object()
        .is_some_and(|live| fields.all(|field| live.contains_key(field)))
}

/// Where a live object stands, as a release remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMark {
    pub resource_version: String,
    /// [`owned_hash`].
    pub owned: Option<String>,
}

impl LiveMark {
    /// `object`'s mark, if it has a resourceVersion (every object the server returns does).
    pub fn of(object: &Value) -> Option<LiveMark> {
        Some(LiveMark {
            resource_version: resource_version(object)?.to_string(),
            owned: owned_hash(object),
        })
    }
}

/// What a release remembers of one object.
#[derive(Debug, Clone)]
struct Remembered {
    applied: String,
    mark: LiveMark,
}

/// What a deployed release remembers about its objects.
#[derive(Debug, Clone, Default)]
pub struct Fingerprints {
    by_key: BTreeMap<ObjectKey, Remembered>,
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
                    Remembered {
                        applied: o.applied_hash.clone()?,
                        mark: LiveMark {
                            resource_version: o.resource_version.clone()?,
                            owned: o.owned_hash.clone(),
                        },
                    },
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

    /// Whether applying `desired` over `live` is known to change nothing: the revision
    /// wants what the release applied, and since then nobody wrote the object, or at least
    /// no field of it that we own.
    pub fn unchanged(&self, desired: &DesiredObject, live: &Value) -> bool {
        // Our managedFields entry is hashed only when the resourceVersion moved: at 10,000
        // unchanged objects the hashes were a tenth of a drift check's CPU time.
        resource_version(live)
            .is_some_and(|version| self.proven(desired, live, version, || owned_hash(live)))
    }

    /// The mark the release left on `desired`'s object, if the revision wants what the
    /// release applied and the live object, a member of `ours`, is still at the
    /// resourceVersion the release saw: nobody has written it since, so its mark is the
    /// release's, and it is proven unchanged without reading it whole. None whenever the
    /// full proof ([`Fingerprints::unchanged_at`]) is needed.
    pub fn untouched(
        &self,
        desired: &DesiredObject,
        live: &impl Glance,
        ours: &ApplySetId,
    ) -> Option<&LiveMark> {
        self.left_alone(&desired.key, live, ours)
            .filter(|remembered| remembered.applied == desired.applied_hash())
            .map(|remembered| &remembered.mark)
    }

    /// Whether the live object of `key`, a member of `ours`, is still at the
    /// resourceVersion the release saw: what the release applied to it is what it has,
    /// whatever that was (a check against the release itself need not read it).
    pub fn recorded_untouched(
        &self,
        key: &ObjectKey,
        live: &impl Glance,
        ours: &ApplySetId,
    ) -> bool {
        self.left_alone(key, live, ours).is_some()
    }

    /// The mark of the live object of `key` when it was written since the release (a
    /// controller's status, its annotations) but nothing the release applied to it changed:
    /// still a member of `ours`, our managedFields entry as the release left it, and every
    /// top-level field the release applied to it (`applied`) kept (see
    /// [`stores_what_it_applied`]). A check against the release itself needs no desired
    /// object beside that.
    pub fn recorded_owned_untouched(
        &self,
        key: &ObjectKey,
        applied: &[&str],
        live: &Value,
        ours: &ApplySetId,
    ) -> Option<LiveMark> {
        let remembered = self.by_key.get(key)?;
        let mark = LiveMark::of(live)?;
        let kept = live.part_of() == Some(ours.as_str())
            && remembered.mark.owned.is_some()
            && mark.owned == remembered.mark.owned
            && keeps_fields(applied.iter().copied(), live);
        kept.then_some(mark)
    }

    /// What the release remembers of `key`, if its live object is a member of `ours` still
    /// at the resourceVersion the release saw (and the release has its owned hash).
    fn left_alone(
        &self,
        key: &ObjectKey,
        live: &impl Glance,
        ours: &ApplySetId,
    ) -> Option<&Remembered> {
        self.by_key.get(key).filter(|remembered| {
            live.part_of() == Some(ours.as_str())
                && live.resource_version() == Some(remembered.mark.resource_version.as_str())
                && remembered.mark.owned.is_some()
        })
    }

    /// [`Fingerprints::unchanged`] for a caller that has `live`'s mark already.
    pub fn unchanged_at(&self, desired: &DesiredObject, live: &Value, mark: &LiveMark) -> bool {
        self.proven(desired, live, &mark.resource_version, || mark.owned.clone())
    }

    /// Whether the live object at `version` is as the release left it, `owned` giving the
    /// hash of our managedFields entry when it is needed.
    fn proven(
        &self,
        desired: &DesiredObject,
        live: &Value,
        version: &str,
        owned: impl FnOnce() -> Option<String>,
    ) -> bool {
        let Some(remembered) = self.by_key.get(&desired.key) else {
            return false;
        };
        let untouched = version == remembered.mark.resource_version
            || remembered.mark.owned.is_some()
                && owned() == remembered.mark.owned
                && stores_what_it_applied(&desired.object, live);
        untouched && remembered.applied == desired.applied_hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::record::{ObjectResult, Operation};
    use serde_json::json;

    fn wanted(key: &ObjectKey, object: &Value) -> DesiredObject {
        let origin = crate::render::Origin {
            file: "app.yaml".into(),
            document: 0,
            line: 1,
        };
        DesiredObject::new(key.clone(), object.clone(), origin)
    }

    fn record_with(key: &ObjectKey, hash: &str, version: &str) -> ReleaseRecord {
        record_owning(key, hash, version, None)
    }

    fn record_owning(
        key: &ObjectKey,
        hash: &str,
        version: &str,
        owned: Option<String>,
    ) -> ReleaseRecord {
        let mut record =
            ReleaseRecord::start("app", "ns", Operation::Sync, "me", Default::default());
        record.objects.push(ObjectResult {
            key: key.clone(),
            action: "created".into(),
            health: None,
            message: None,
            resource_version: Some(version.into()),
            applied_hash: Some(hash.into()),
            owned_hash: owned,
        });
        record
    }

    /// A live Deployment as the server returns it: our apply entry, and whatever other
    /// managers' entries are given.
    fn live(uid: &str, version: &str, ours: Value, others: &[Value]) -> Value {
        let mut entries = vec![ours];
        entries.extend(others.iter().cloned());
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
            "name": "web", "namespace": "ns", "uid": uid, "resourceVersion": version,
            "managedFields": entries,
        }, "spec": {"replicas": 2}})
    }

    fn entry(manager: &str, operation: &str, time: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
               "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn writes_to_fields_we_do_not_own_keep_an_object_known_unchanged() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": 2}});
        let key = ObjectKey::from_object(&desired).expect("key");
        let ours = entry(
            FIELD_MANAGER,
            "Apply",
            "2026-01-01T00:00:00Z",
            json!({"f:spec": {"f:replicas": {}}}),
        );
        let applied = live("u1", "10", ours.clone(), &[]);
        let known = Fingerprints::from_record(&record_owning(
            &key,
            &applied_hash(&desired),
            "10",
            owned_hash(&applied),
        ));
        // A controller wrote the status and an annotation of its own: the version moved,
        // our fields did not.
        let mut status = entry(
            "kube-controller-manager",
            "Update",
            "2026-01-01T00:00:01Z",
            json!({"f:status": {}}),
        );
        status["subresource"] = json!("status");
        let annotation = entry(
            "kube-controller-manager",
            "Update",
            "2026-01-01T00:00:01Z",
            json!({"f:metadata": {"f:annotations": {}}}),
        );
        assert!(known.unchanged(
            &wanted(&key, &desired),
            &live("u1", "12", ours.clone(), &[status.clone(), annotation])
        ));
        // Someone edited a field we applied: the server took it out of our entry.
        let edited = entry(
            FIELD_MANAGER,
            "Apply",
            "2026-01-01T00:00:00Z",
            json!({"f:spec": {}}),
        );
        let editor = entry(
            "kubectl-edit",
            "Update",
            "2026-01-01T00:00:05Z",
            json!({"f:spec": {"f:replicas": {}}}),
        );
        assert!(!known.unchanged(
            &wanted(&key, &desired),
            &live("u1", "13", edited, &[editor])
        ));
        // Another apply of ours changed something: our entry's time moved.
        let reapplied = entry(
            FIELD_MANAGER,
            "Apply",
            "2026-01-01T00:01:00Z",
            json!({"f:spec": {"f:replicas": {}}}),
        );
        assert!(!known.unchanged(&wanted(&key, &desired), &live("u1", "14", reapplied, &[])));
        // Deleted and created again with the very same entry: another object.
        assert!(!known.unchanged(
            &wanted(&key, &desired),
            &live("u2", "15", ours.clone(), &[])
        ));
        // Our entry is gone (managedFields reset by someone).
        let mut bare = live("u1", "16", ours, &[]);
        bare["metadata"]["managedFields"] = json!([status]);
        assert!(!known.unchanged(&wanted(&key, &desired), &bare));
        // A release written before owned hashes existed: only the version proves it.
        let old = Fingerprints::from_record(&record_with(&key, &applied_hash(&desired), "10"));
        assert!(!old.unchanged(
            &wanted(&key, &desired),
            &live(
                "u1",
                "12",
                entry(
                    FIELD_MANAGER,
                    "Apply",
                    "2026-01-01T00:00:00Z",
                    json!({"f:spec": {"f:replicas": {}}})
                ),
                &[]
            )
        ));
    }

    #[test]
    fn an_object_at_the_version_the_release_saw_is_untouched_only_as_a_member_applied_alike() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": 2}});
        let key = ObjectKey::from_object(&desired).expect("key");
        let ours = ApplySetId::for_app("web", "ns");
        let member = |version: &str, set: &ApplySetId| {
            let mut object = live(
                "u1",
                version,
                entry(FIELD_MANAGER, "Apply", "2026-01-01T00:00:00Z", json!({})),
                &[],
            );
            object["metadata"]["labels"] =
                json!({crate::apply::applyset::PART_OF_LABEL: set.as_str()});
            object
        };
        let owned = owned_hash(&member("10", &ours));
        let known = Fingerprints::from_record(&record_owning(
            &key,
            &applied_hash(&desired),
            "10",
            owned.clone(),
        ));
        let wanted_now = wanted(&key, &desired);
        let mark = known.untouched(&wanted_now, &member("10", &ours), &ours);
        assert_eq!(mark.map(|m| m.owned.clone()), Some(owned.clone()));
        assert_eq!(mark.map(|m| m.resource_version.as_str()), Some("10"));
        // Written since: the full proof decides.
        assert!(
            known
                .untouched(&wanted_now, &member("11", &ours), &ours)
                .is_none()
        );
        // Another app's member at the same version (same field manager): not proven here.
        let other = ApplySetId::for_app("other", "ns");
        assert!(
            known
                .untouched(&wanted_now, &member("10", &other), &ours)
                .is_none()
        );
        // The revision wants something else than the release applied.
        let changed = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": 3}});
        assert!(
            known
                .untouched(&wanted(&key, &changed), &member("10", &ours), &ours)
                .is_none()
        );
        // A record without the owned hash: the live object's is computed the full way.
        let old = Fingerprints::from_record(&record_with(&key, &applied_hash(&desired), "10"));
        assert!(
            old.untouched(&wanted_now, &member("10", &ours), &ours)
                .is_none()
        );
    }

    #[test]
    fn a_secret_applied_with_string_data_is_proven_by_its_version_alone() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "stringData": {"token": "a"}});
        let key = ObjectKey::from_object(&desired).expect("key");
        let ours = entry(
            FIELD_MANAGER,
            "Apply",
            "2026-01-01T00:00:00Z",
            json!({"f:stringData": {"f:token": {}}}),
        );
        let secret = |version: &str, others: &[Value]| {
            let mut entries = vec![ours.clone()];
            entries.extend(others.iter().cloned());
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": "s", "namespace": "ns", "uid": "u1", "resourceVersion": version,
                "managedFields": entries}, "data": {"token": "YQ=="}})
        };
        let known = Fingerprints::from_record(&record_owning(
            &key,
            &applied_hash(&desired),
            "10",
            owned_hash(&secret("10", &[])),
        ));
        assert!(known.unchanged(&wanted(&key, &desired), &secret("10", &[])));
        // `kubectl patch -p '{"stringData":{"token":"edited"}}'` changes data, which
        // nobody's entry of ours names: our entry is as it was, yet the value is not.
        let patch = entry(
            "kubectl-patch",
            "Update",
            "2026-01-01T00:00:09Z",
            json!({"f:data": {"f:token": {}}}),
        );
        assert!(!known.unchanged(&wanted(&key, &desired), &secret("11", &[patch])));
    }

    #[test]
    fn the_owned_hash_does_not_depend_on_how_the_entry_is_written() {
        // As a LIST item has it, and as an apply's answer decoded and written out again.
        let listed = json!({"metadata": {"uid": "u", "managedFields": [
            {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "v1",
             "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}, "f:data": {"f:k": {}}}}
        ]}});
        let answered = json!({"metadata": {"managedFields": [
            {"apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}},
             "manager": FIELD_MANAGER, "operation": "Apply", "time": "2026-01-01T00:00:00.000Z"}
        ], "uid": "u"}});
        assert!(owned_hash(&listed).is_some());
        assert_eq!(owned_hash(&listed), owned_hash(&answered));
        let mut other_fields = listed.clone();
        other_fields["metadata"]["managedFields"][0]["fieldsV1"] = json!({"f:data": {}});
        assert_ne!(owned_hash(&listed), owned_hash(&other_fields));
    }

    #[test]
    fn only_our_own_apply_entry_counts_as_what_we_own() {
        let object = |entries: Value| json!({"metadata": {"uid": "u", "managedFields": entries}});
        let fields = json!({"f:data": {}});
        assert_eq!(owned_hash(&object(json!([]))), None);
        assert_eq!(
            owned_hash(&object(json!([entry(
                "kubectl-edit",
                "Apply",
                "t",
                fields.clone()
            )]))),
            None
        );
        assert_eq!(
            owned_hash(&object(json!([entry(
                FIELD_MANAGER,
                "Update",
                "t",
                fields.clone()
            )]))),
            None
        );
        let mut on_status = entry(FIELD_MANAGER, "Apply", "t", fields.clone());
        on_status["subresource"] = json!("status");
        assert_eq!(owned_hash(&object(json!([on_status]))), None);
        assert!(owned_hash(&object(json!([entry(FIELD_MANAGER, "Apply", "t", fields)]))).is_some());
        assert_eq!(
            owned_hash(&json!({"metadata": {"managedFields": []}})),
            None
        );
    }

    #[test]
    fn unchanged_only_while_both_the_object_and_its_version_match() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "1"}});
        let key = ObjectKey::from_object(&desired).expect("key");
        let known = Fingerprints::from_record(&record_with(&key, &applied_hash(&desired), "42"));
        let live = |version: &str| json!({"metadata": {"resourceVersion": version}});
        assert!(known.unchanged(&wanted(&key, &desired), &live("42")));
        // Someone wrote the object since: ask the server.
        assert!(!known.unchanged(&wanted(&key, &desired), &live("43")));
        // The revision wants something else now.
        let mut edited = desired.clone();
        edited["data"]["a"] = json!("2");
        assert!(!known.unchanged(&wanted(&key, &edited), &live("42")));
        // Not in the record, or no version live: unknown.
        let other = ObjectKey {
            name: "d".into(),
            ..key.clone()
        };
        assert!(!known.unchanged(&wanted(&other, &desired), &live("42")));
        assert!(!known.unchanged(&wanted(&key, &desired), &json!({})));
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
