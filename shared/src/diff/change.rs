//! The change set: which objects differ between two sides, kept apart from how it is shown.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::objects::ObjectKey;

/// What happens to one object going from the before side to the after side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Added,
    Changed,
    Removed,
    Unchanged,
}

impl Action {
    /// The lowercase word used in JSON, tables and markdown.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Changed => "changed",
            Action::Removed => "removed",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One object on both sides. `before` is absent for [`Action::Added`], `after` for
/// [`Action::Removed`].
#[derive(Debug, Clone, Serialize)]
pub struct ObjectChange {
    pub key: ObjectKey,
    pub action: Action,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl ObjectChange {
    /// An object known unchanged without comparing it: counted, its contents not kept.
    pub fn unchanged(key: ObjectKey) -> ObjectChange {
        ObjectChange {
            key,
            action: Action::Unchanged,
            before: None,
            after: None,
        }
    }

    /// [`ChangeSet::mask_secrets`] for one change.
    pub fn mask_secret(&mut self) {
        let by_key = self.key.group.is_empty() && self.key.kind == "Secret";
        let by_content = [&self.before, &self.after]
            .into_iter()
            .flatten()
            .any(super::mask::is_secret);
        if !(by_key || by_content) {
            return;
        }
        super::mask::mask_pair(self.before.as_mut(), self.after.as_mut());
        if self.action == Action::Changed && self.before == self.after {
            self.action = Action::Unchanged;
        }
    }
}

/// How many objects each [`Action`] has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Every object of both sides, sorted by key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChangeSet {
    pub changes: Vec<ObjectChange>,
}

impl ChangeSet {
    /// Pairs up two maps of normalised objects by key; equal objects are
    /// [`Action::Unchanged`].
    pub fn between(
        before: BTreeMap<ObjectKey, Value>,
        mut after: BTreeMap<ObjectKey, Value>,
    ) -> ChangeSet {
        let mut changes = Vec::with_capacity(before.len().max(after.len()));
        for (key, old) in before {
            let change = match after.remove(&key) {
                Some(new) => ObjectChange {
                    action: if old == new {
                        Action::Unchanged
                    } else {
                        Action::Changed
                    },
                    key,
                    before: Some(old),
                    after: Some(new),
                },
                None => ObjectChange {
                    key,
                    action: Action::Removed,
                    before: Some(old),
                    after: None,
                },
            };
            changes.push(change);
        }
        changes.extend(after.into_iter().map(|(key, new)| ObjectChange {
            key,
            action: Action::Added,
            before: None,
            after: Some(new),
        }));
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        ChangeSet { changes }
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Added => summary.added += 1,
                Action::Changed => summary.changed += 1,
                Action::Removed => summary.removed += 1,
                Action::Unchanged => summary.unchanged += 1,
            }
        }
        summary
    }

    /// Whether any object is added, changed or removed (the exit code of diff and drift).
    pub fn has_differences(&self) -> bool {
        self.differences().next().is_some()
    }

    /// The objects that are added, changed or removed, in key order.
    pub fn differences(&self) -> impl Iterator<Item = &ObjectChange> {
        self.changes
            .iter()
            .filter(|c| c.action != Action::Unchanged)
    }

    /// Masks every Secret in place (see [`super::mask::mask_secret_pair`]); the caller skips
    /// this when the user asked to see secrets. A Secret whose sides differed only in what
    /// masking folds or drops (`stringData` against equal `data`, the last-applied
    /// annotation) becomes [`Action::Unchanged`], so the action agrees with the text diff.
    pub fn mask_secrets(&mut self) {
        self.changes.iter_mut().for_each(ObjectChange::mask_secret);
    }

    /// The document `-o json` prints: the summary, and the changes without the unchanged
    /// objects unless `include_unchanged`.
    pub fn report(&self, include_unchanged: bool) -> DiffReport {
        DiffReport {
            summary: self.summary(),
            changes: self
                .changes
                .iter()
                .filter(|c| include_unchanged || c.action != Action::Unchanged)
                .cloned()
                .collect(),
        }
    }
}

/// The stable JSON document for scripts: `{"summary": {...}, "changes": [{"key": {"group",
/// "kind", "namespace", "name"}, "action", "before", "after"}, ...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub summary: Summary,
    pub changes: Vec<ObjectChange>,
}

impl From<&ChangeSet> for DiffReport {
    /// Leaves unchanged objects out of `changes`; they are still counted in `summary`.
    fn from(set: &ChangeSet) -> Self {
        set.report(false)
    }
}

/// One field that differs between two versions of an object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// JSON pointer (RFC 6901) into the object, e.g. `/spec/replicas`; `""` is the whole.
    pub path: String,
    /// Absent when the field was added.
    pub before: Option<Value>,
    /// Absent when the field was removed.
    pub after: Option<Value>,
}

/// The fields that differ between `before` and `after`, as JSON pointers with the value on
/// each side, in json-patch's order (after's keys first, then removed keys). A field added
/// or removed whole is one entry, not one per leaf.
pub fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let patch = json_patch::diff(before, after);
    let mut changes = Vec::with_capacity(patch.0.len());
    // json-patch writes trailing array removals as a patch applies them: the same index
    // again and again (`/a/1`, `/a/1`). Report each at its index in `before` instead.
    let mut previous_remove: Option<(String, usize)> = None;
    for op in &patch.0 {
        let path = op.path().to_string();
        let change = match op {
            json_patch::PatchOperation::Remove(_) => {
                let repeat = match &previous_remove {
                    Some((last, n)) if *last == path => n + 1,
                    _ => 0,
                };
                previous_remove = Some((path.clone(), repeat));
                let path = shift_last_index(&path, repeat);
                FieldChange {
                    before: before.pointer(&path).cloned(),
                    after: None,
                    path,
                }
            }
            _ => {
                previous_remove = None;
                FieldChange {
                    before: before.pointer(&path).cloned(),
                    after: after.pointer(&path).cloned(),
                    path,
                }
            }
        };
        changes.push(change);
    }
    changes
}

/// `/a/1` shifted by 2 is `/a/3`; a path not ending in an index is returned as it is.
fn shift_last_index(path: &str, by: usize) -> String {
    if by == 0 {
        return path.to_owned();
    }
    match path.rsplit_once('/') {
        Some((parent, last)) => match last.parse::<usize>() {
            Ok(index) => format!("{parent}/{}", index + by),
            Err(_) => path.to_owned(),
        },
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn config_map(name: &str, value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}})
    }

    fn sample() -> ChangeSet {
        let before = BTreeMap::from([
            (
                key("", "ConfigMap", Some("demo"), "same"),
                config_map("same", "1"),
            ),
            (
                key("", "ConfigMap", Some("demo"), "edit"),
                config_map("edit", "1"),
            ),
            (
                key("", "ConfigMap", Some("demo"), "gone"),
                config_map("gone", "1"),
            ),
        ]);
        let after = BTreeMap::from([
            (
                key("", "ConfigMap", Some("demo"), "same"),
                config_map("same", "1"),
            ),
            (
                key("", "ConfigMap", Some("demo"), "edit"),
                config_map("edit", "2"),
            ),
            (
                key("apps", "Deployment", Some("demo"), "web"),
                json!({"kind": "Deployment"}),
            ),
        ]);
        ChangeSet::between(before, after)
    }

    #[test]
    fn pairs_objects_by_key_in_key_order() {
        let set = sample();
        let got: Vec<(&str, Action, bool, bool)> = set
            .changes
            .iter()
            .map(|c| {
                (
                    c.key.name.as_str(),
                    c.action,
                    c.before.is_some(),
                    c.after.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("edit", Action::Changed, true, true),
                ("gone", Action::Removed, true, false),
                ("same", Action::Unchanged, true, true),
                ("web", Action::Added, false, true),
            ]
        );
        assert_eq!(
            set.summary(),
            Summary {
                added: 1,
                changed: 1,
                removed: 1,
                unchanged: 1
            }
        );
        assert!(set.has_differences());
        assert_eq!(set.differences().count(), 3);
    }

    #[test]
    fn equal_sides_have_no_differences() {
        let objects = BTreeMap::from([(key("", "ConfigMap", None, "a"), config_map("a", "1"))]);
        let set = ChangeSet::between(objects.clone(), objects);
        assert!(!set.has_differences());
        assert!(!ChangeSet::default().has_differences());
    }

    #[test]
    fn report_json_is_stable_and_leaves_unchanged_out() {
        let report = DiffReport::from(&sample());
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(
            json["summary"],
            json!({"added": 1, "changed": 1, "removed": 1, "unchanged": 1})
        );
        assert_eq!(json["changes"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            json["changes"][1],
            json!({
                "key": {"group": "", "kind": "ConfigMap", "namespace": "demo", "name": "gone"},
                "action": "removed",
                "before": config_map("gone", "1"),
                "after": null
            })
        );
        assert_eq!(sample().report(true).changes.len(), 4);
    }

    #[test]
    fn masking_keeps_changed_secrets_changed_and_hides_values() {
        let secret = |v: &str, last_applied: &str| {
            json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": last_applied}},
                "data": {"k": v}
            })
        };
        let k = key("", "Secret", Some("demo"), "s");
        let mut set = ChangeSet::between(
            BTreeMap::from([(k.clone(), secret("YQ==", "old"))]),
            BTreeMap::from([(k.clone(), secret("Yg==", "new"))]),
        );
        set.mask_secrets();
        assert_eq!(set.changes[0].action, Action::Changed);
        assert_eq!(
            set.changes[0]
                .after
                .as_ref()
                .map(|a| a["data"]["k"].clone()),
            Some(json!("*** (after)"))
        );

        // stringData equal to data: the same Secret once folded.
        let mut string_data = secret("YQ==", "old");
        string_data["stringData"] = json!({"k": "a"});
        if let Some(map) = string_data.as_object_mut() {
            map.remove("data");
        }
        let mut set = ChangeSet::between(
            BTreeMap::from([(k.clone(), secret("YQ==", "old"))]),
            BTreeMap::from([(k.clone(), string_data)]),
        );
        assert_eq!(set.changes[0].action, Action::Changed);
        set.mask_secrets();
        assert_eq!(set.changes[0].action, Action::Unchanged);

        // Differing only in the annotation masking drops: nothing left to show.
        let mut set = ChangeSet::between(
            BTreeMap::from([(k.clone(), secret("YQ==", "old"))]),
            BTreeMap::from([(k, secret("YQ==", "new"))]),
        );
        set.mask_secrets();
        assert_eq!(set.changes[0].action, Action::Unchanged);
    }

    #[test]
    fn field_changes_name_json_pointers() {
        let before = json!({
            "metadata": {"labels": {"app": "web", "old": "x"}},
            "spec": {"replicas": 2, "ports": [80, 443, 8080], "a/b": 1}
        });
        let after = json!({
            "metadata": {"labels": {"app": "web", "new": {"deep": true}}},
            "spec": {"replicas": 3, "ports": [80]}
        });
        let got = field_changes(&before, &after);
        let row = |path: &str, b: Option<Value>, a: Option<Value>| FieldChange {
            path: path.to_owned(),
            before: b,
            after: a,
        };
        assert_eq!(
            got,
            [
                row("/metadata/labels/new", None, Some(json!({"deep": true}))),
                row("/metadata/labels/old", Some(json!("x")), None),
                row("/spec/replicas", Some(json!(2)), Some(json!(3))),
                row("/spec/ports/1", Some(json!(443)), None),
                row("/spec/ports/2", Some(json!(8080)), None),
                // `/` in a key is escaped as `~1` (RFC 6901).
                row("/spec/a~1b", Some(json!(1)), None),
            ]
        );
        assert!(field_changes(&before, &before).is_empty());
    }

    #[test]
    fn field_changes_of_whole_documents() {
        let got = field_changes(&Value::Null, &json!({"a": 1}));
        assert_eq!(
            got,
            [FieldChange {
                path: String::new(),
                before: Some(Value::Null),
                after: Some(json!({"a": 1}))
            }]
        );
    }
}
