//! Objects as a LIST returned them: kept as their JSON text, read into a JSON value when
//! asked.
//!
//! A JSON value takes several times the memory of its text (every key and string its own
//! allocation, every map its own table). A plan lists every object of an app and keeps
//! the answers while it compares, but reads most of them only to prove them unchanged
//! and then drops them: at 10,000 objects the values of every LIST at once were half of
//! a diff's memory. Reading them one at a time, from text, holds one value at a time.

use std::sync::Arc;

use kube::discovery::ApiResource;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::LiveError;
use crate::objects::ObjectKey;

/// On every member of an ApplySet: the id of the set it belongs to.
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";

/// One item of a LIST, unread but for the two facts that prove most objects unchanged.
#[derive(Debug, Clone)]
pub struct ListedObject {
    text: Arc<str>,
    /// The item's apiVersion and kind: the server leaves them out of list items.
    type_names: Arc<TypeNames>,
    /// Taken while the item is keyed: comparing it with a release's mark needs no read
    /// of the whole object (at 10,000 objects those reads were a tenth of a check).
    resource_version: Option<Box<str>>,
    part_of: Option<Box<str>>,
}

/// What a live object says of itself without being read whole: where it stands and which
/// ApplySet it is a member of.
pub trait Glance {
    /// `metadata.resourceVersion`.
    fn resource_version(&self) -> Option<&str>;
    /// The ApplySet part-of label, if set and not empty.
    fn part_of(&self) -> Option<&str>;
}

impl Glance for ListedObject {
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    fn part_of(&self) -> Option<&str> {
        self.part_of.as_deref()
    }
}

impl Glance for Value {
    fn resource_version(&self) -> Option<&str> {
        self.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
    }

    fn part_of(&self) -> Option<&str> {
        self.pointer("/metadata/labels")
            .and_then(|labels| labels.get(PART_OF_LABEL))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
    }
}

#[derive(Debug)]
struct TypeNames {
    api_version: String,
    kind: String,
}

impl ListedObject {
    /// The object as a JSON value, with `apiVersion` and `kind` first, as manifests are
    /// written (appended last, they would print last in diffs).
    pub fn value(&self) -> Result<Value, LiveError> {
        let value = serde_json::from_str(&self.text).map_err(|e| LiveError::Decode {
            what: format!("a listed {}", self.type_names.kind),
            message: e.to_string(),
        })?;
        Ok(super::typed_as(
            value,
            &self.type_names.api_version,
            &self.type_names.kind,
        ))
    }
}

/// The items of a LIST answer of `resource`'s kind, each with its key. Items without a
/// name (which the server does not return) are left out.
pub(super) fn items(
    body: &str,
    resource: &ApiResource,
) -> Result<Vec<(ObjectKey, ListedObject)>, LiveError> {
    #[derive(Deserialize)]
    struct List<'a> {
        #[serde(borrow)]
        items: Option<Vec<&'a RawValue>>,
    }
    #[derive(Deserialize)]
    struct Item {
        metadata: Metadata,
    }
    #[derive(Deserialize)]
    struct Metadata {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default, rename = "resourceVersion")]
        resource_version: Option<Box<str>>,
        #[serde(default)]
        labels: Option<Labels>,
    }
    #[derive(Deserialize)]
    struct Labels {
        // PART_OF_LABEL (an attribute takes no constant; a test holds them equal).
        #[serde(default, rename = "applyset.kubernetes.io/part-of")]
        part_of: Option<Box<str>>,
    }
    let decode = |e: serde_json::Error| LiveError::Decode {
        what: format!("the list of {}", resource.plural),
        message: e.to_string(),
    };
    let list: List = serde_json::from_str(body).map_err(decode)?;
    let type_names = Arc::new(TypeNames {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    });
    let mut out = Vec::new();
    for raw in list.items.unwrap_or_default() {
        let item: Item = serde_json::from_str(raw.get()).map_err(decode)?;
        let Some(name) = item.metadata.name.filter(|n| !n.is_empty()) else {
            continue;
        };
        let key = ObjectKey {
            group: resource.group.clone(),
            kind: resource.kind.clone(),
            namespace: item.metadata.namespace.filter(|n| !n.is_empty()),
            name,
        };
        let object = ListedObject {
            text: Arc::from(raw.get()),
            type_names: type_names.clone(),
            resource_version: item.metadata.resource_version,
            part_of: item
                .metadata
                .labels
                .and_then(|labels| labels.part_of)
                .filter(|id| !id.is_empty()),
        };
        out.push((key, object));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn deployments() -> ApiResource {
        ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        }
    }

    #[test]
    fn items_are_keyed_and_read_back_with_their_type_first() {
        let body = r#"{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{},"items":[
            {"metadata":{"name":"web","namespace":"a","uid":"u1"},"spec":{"replicas":2}},
            {"metadata":{"name":"api","namespace":"b"},"spec":{"replicas":1}}]}"#;
        let listed = items(body, &deployments()).unwrap();
        let keys: Vec<String> = listed.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["Deployment.apps a/web", "Deployment.apps b/api"]);
        let value = listed[0].1.value().unwrap();
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["apiVersion", "kind", "metadata", "spec"]
        );
        assert_eq!(value["apiVersion"], "apps/v1");
        assert_eq!(value["spec"]["replicas"], 2);
    }

    #[test]
    fn an_item_tells_its_version_and_applyset_as_its_value_does() {
        let body = format!(
            r#"{{"items":[
            {{"metadata":{{"name":"web","namespace":"a","resourceVersion":"41",
              "labels":{{"app":"web","{PART_OF_LABEL}":"applyset-x-v1"}}}}}},
            {{"metadata":{{"name":"api","namespace":"a","labels":{{"{PART_OF_LABEL}":""}}}}}},
            {{"metadata":{{"name":"db","namespace":"a","resourceVersion":"7"}}}}]}}"#
        );
        let listed = items(&body, &deployments()).unwrap();
        let glances: Vec<(Option<&str>, Option<&str>)> = listed
            .iter()
            .map(|(_, o)| (o.resource_version(), o.part_of()))
            .collect();
        assert_eq!(
            glances,
            [
                (Some("41"), Some("applyset-x-v1")),
                (None, None),
                (Some("7"), None)
            ]
        );
        for (_, object) in &listed {
            let value = object.value().unwrap();
            assert_eq!(value.resource_version(), object.resource_version());
            assert_eq!(value.part_of(), object.part_of());
        }
    }

    #[test]
    fn an_empty_or_null_list_has_no_items_and_a_bad_one_is_an_error() {
        assert!(
            items(r#"{"items":null}"#, &deployments())
                .unwrap()
                .is_empty()
        );
        assert!(items(r#"{"items":[]}"#, &deployments()).unwrap().is_empty());
        let error = items(r#"{"items":[{"metadata":7}]}"#, &deployments()).unwrap_err();
        assert!(error.to_string().contains("deployments"), "{error}");
    }
}
