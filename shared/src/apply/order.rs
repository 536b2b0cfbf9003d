//! The order objects are applied in, and the reverse order they are pruned in.
//!
//! Namespaces first (everything namespaced needs one), then CustomResourceDefinitions
//! (custom resources need their kind served), then other cluster-scoped objects (cluster
//! roles and the like, which namespaced objects may refer to), then everything namespaced.
//! The wave annotation orders objects within each of these classes; objects in one phase
//! (class and wave) do not depend on each other and may be applied at once.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::objects::{DesiredObject, DesiredSet, ObjectKey};
use crate::render::Origin;

/// An integer (negative allowed, default 0): lower waves are applied first within a class.
pub const WAVE_ANNOTATION: &str = "kubectl-gitops.io/sync-wave";

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(
        "{origin}: the {WAVE_ANNOTATION} annotation of {key} is {value:?}, not an integer: use a whole number such as \"-1\" or \"2\""
    )]
    NotAnInteger {
        key: Box<ObjectKey>,
        origin: Origin,
        value: String,
    },
    #[error(
        "{origin}: the {WAVE_ANNOTATION} annotation of {key} is {value}, not a string: quote it (\"{value}\"), as every annotation value must be"
    )]
    NotAString {
        key: Box<ObjectKey>,
        origin: Origin,
        value: String,
    },
}

/// Objects applied together: one class, one wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// `"namespaces"`, `"crds"`, `"cluster"` or `"namespaced"`.
    pub name: &'static str,
    pub wave: i64,
    /// In key order.
    pub keys: Vec<ObjectKey>,
}

/// The classes, in apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Namespaces,
    Crds,
    Cluster,
    Namespaced,
}

impl Class {
    fn of(key: &ObjectKey) -> Class {
        match (key.group.as_str(), key.kind.as_str()) {
            ("", "Namespace") => Class::Namespaces,
            ("apiextensions.k8s.io", "CustomResourceDefinition") => Class::Crds,
            _ if key.namespace.is_none() => Class::Cluster,
            _ => Class::Namespaced,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Namespaces => "namespaces",
            Class::Crds => "crds",
            Class::Cluster => "cluster",
            Class::Namespaced => "namespaced",
        }
    }
}

/// The wave of one desired object: its wave annotation, 0 without one.
pub fn wave(object: &DesiredObject) -> Result<i64, OrderError> {
    let value = object
        .object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(WAVE_ANNOTATION));
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(text)) => {
            text.trim()
                .parse::<i64>()
                .map_err(|_| OrderError::NotAnInteger {
                    key: Box::new(object.key.clone()),
                    origin: object.origin.clone(),
                    value: text.clone(),
                })
        }
        Some(other) => Err(OrderError::NotAString {
            key: Box::new(object.key.clone()),
            origin: object.origin.clone(),
            value: other.to_string(),
        }),
    }
}

/// The phases to apply `desired` in: classes in order (namespaces, CRDs, other
/// cluster-scoped objects, namespaced objects), each by ascending wave; no empty phases.
pub fn apply_phases(desired: &DesiredSet) -> Result<Vec<Phase>, OrderError> {
    let mut phases: BTreeMap<(Class, i64), Vec<ObjectKey>> = BTreeMap::new();
    for object in desired.iter() {
        let wave = wave(object)?;
        phases
            .entry((Class::of(&object.key), wave))
            .or_default()
            .push(object.key.clone());
    }
    Ok(phases
        .into_iter()
        .map(|((class, wave), keys)| Phase {
            name: class.name(),
            wave,
            keys,
        })
        .collect())
}

/// The phases to delete `keys` in: the apply classes reversed (namespaced objects, other
/// cluster-scoped objects, CRDs, namespaces last, so nothing is deleted out from under a
/// member still to be pruned). Live members carry no desired wave, so every phase is wave 0.
pub fn prune_phases(keys: impl IntoIterator<Item = ObjectKey>) -> Vec<Phase> {
    let mut classes: BTreeMap<std::cmp::Reverse<Class>, Vec<ObjectKey>> = BTreeMap::new();
    for key in keys {
        classes
            .entry(std::cmp::Reverse(Class::of(&key)))
            .or_default()
            .push(key);
    }
    classes
        .into_iter()
        .map(|(std::cmp::Reverse(class), mut keys)| {
            keys.sort();
            keys.dedup();
            Phase {
                name: class.name(),
                wave: 0,
                keys,
            }
        })
        .collect()
}

/// `keys` in prune order (see [`prune_phases`]), by key within a class.
pub fn prune_order(keys: impl IntoIterator<Item = ObjectKey>) -> Vec<ObjectKey> {
    prune_phases(keys)
        .into_iter()
        .flat_map(|phase| phase.keys)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::BuiltinScopes;
    use crate::render::Manifest;
    use serde_json::json;

    fn manifest(line: usize, api_version: &str, kind: &str, name: &str, wave: Value) -> Manifest {
        let mut object =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
        if !wave.is_null() {
            object["metadata"]["annotations"] = json!({WAVE_ANNOTATION: wave});
        }
        Manifest {
            object,
            origin: Origin {
                file: "app.yaml".into(),
                document: 0,
                line,
            },
        }
    }

    fn desired(manifests: Vec<Manifest>) -> DesiredSet {
        DesiredSet::build(manifests, "web", &BuiltinScopes).unwrap()
    }

    fn names(phases: &[Phase]) -> Vec<(&'static str, i64, Vec<String>)> {
        phases
            .iter()
            .map(|p| {
                let keys = p.keys.iter().map(|k| k.name.clone()).collect();
                (p.name, p.wave, keys)
            })
            .collect()
    }

    #[test]
    fn classes_come_in_order_and_waves_order_within_them() {
        let set = desired(vec![
            manifest(1, "apps/v1", "Deployment", "api", json!("1")),
            manifest(2, "v1", "ConfigMap", "cfg", json!("-2")),
            manifest(3, "v1", "Service", "svc", Value::Null),
            manifest(
                4,
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "role",
                json!("5"),
            ),
            manifest(
                5,
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "crd",
                Value::Null,
            ),
            manifest(6, "v1", "Namespace", "web", json!("3")),
            manifest(7, "v1", "Namespace", "batch", Value::Null),
            manifest(8, "apps/v1", "Deployment", "worker", json!(" 1 ")),
        ]);
        let phases = apply_phases(&set).unwrap();
        assert_eq!(
            names(&phases),
            [
                ("namespaces", 0, vec!["batch".to_string()]),
                ("namespaces", 3, vec!["web".into()]),
                ("crds", 0, vec!["crd".into()]),
                ("cluster", 5, vec!["role".into()]),
                ("namespaced", -2, vec!["cfg".into()]),
                ("namespaced", 0, vec!["svc".into()]),
                ("namespaced", 1, vec!["api".into(), "worker".into()]),
            ]
        );
        assert!(apply_phases(&DesiredSet::default()).unwrap().is_empty());
    }

    #[test]
    fn a_bad_wave_names_the_object_and_its_origin() {
        let set = desired(vec![manifest(9, "v1", "ConfigMap", "cfg", json!("soon"))]);
        let err = apply_phases(&set).unwrap_err().to_string();
        assert_eq!(
            err,
            "app.yaml:9: the kubectl-gitops.io/sync-wave annotation of ConfigMap web/cfg is \"soon\", not an integer: use a whole number such as \"-1\" or \"2\""
        );
        let set = desired(vec![manifest(4, "v1", "ConfigMap", "cfg", json!(2))]);
        let err = apply_phases(&set).unwrap_err().to_string();
        assert!(err.starts_with("app.yaml:4: "), "{err}");
        assert!(err.contains("not a string: quote it (\"2\")"), "{err}");
    }

    #[test]
    fn prune_reverses_the_classes() {
        let key = |group: &str, kind: &str, namespace: Option<&str>, name: &str| ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        };
        let keys = vec![
            key("", "Namespace", None, "web"),
            key(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                None,
                "crd",
            ),
            key("rbac.authorization.k8s.io", "ClusterRole", None, "role"),
            key("apps", "Deployment", Some("web"), "api"),
            key("", "ConfigMap", Some("web"), "cfg"),
        ];
        let order: Vec<String> = prune_order(keys.clone())
            .iter()
            .map(|k| k.name.clone())
            .collect();
        assert_eq!(order, ["cfg", "api", "role", "crd", "web"]);
        let phases: Vec<&str> = prune_phases(keys).iter().map(|p| p.name).collect();
        assert_eq!(phases, ["namespaced", "cluster", "crds", "namespaces"]);
        assert!(prune_order(Vec::new()).is_empty());
    }
}
