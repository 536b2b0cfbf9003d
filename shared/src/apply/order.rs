//! The order objects are applied in, and the reverse order they are pruned in.
//!
//! Waves first: `kubectl-gitops.io/sync-wave` or Argo CD's `argocd.argoproj.io/sync-wave`
//! (an integer, default 0, lowest first); a sync starts a wave only once every object of
//! the waves before it is healthy. Within a wave, classes: Namespaces first (everything
//! namespaced needs one), then CustomResourceDefinitions (custom resources need their kind
//! served), then other cluster-scoped objects (cluster roles and the like, which
//! namespaced objects may refer to), then everything namespaced. Objects in one phase
//! (wave and class) do not depend on each other and are applied at once; they are listed
//! in Helm's install order of kinds, then by name. A revision without waves is one wave:
//! one step per class, as fast as it can go.

use std::collections::BTreeMap;

use crate::objects::{DesiredObject, DesiredSet, ObjectKey};

pub use crate::objects::wave::{ARGO_WAVE_ANNOTATION, WAVE_ANNOTATION, WaveError, wave_of};

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Wave(#[from] WaveError),
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

/// The wave of one desired object: its wave annotation (ours or Argo CD's), 0 without one.
pub fn wave(object: &DesiredObject) -> Result<i64, OrderError> {
    Ok(wave_of(&object.object, &object.key, &object.origin)?)
}

/// The wave a live object was applied in: its annotation as [`wave_of`] reads it, 0 when
/// that cannot be read (the revision that wrote it was checked when it was applied).
pub fn live_wave(live: &serde_json::Value, key: &ObjectKey) -> i64 {
    let origin = crate::render::Origin {
        file: "(live)".into(),
        document: 0,
        line: 0,
    };
    wave_of(live, key, &origin).unwrap_or(0)
}

/// Helm's install order of kinds (`releaseutil.InstallOrder`): within a phase, objects are
/// listed (and so recorded and shown) in this order, other kinds after these.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Where `kind` stands in [`INSTALL_ORDER`] (kinds it does not name come last).
pub fn install_rank(kind: &str) -> usize {
    INSTALL_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(INSTALL_ORDER.len())
}

/// The phases to apply `desired` in: waves in ascending order, each by class (namespaces,
/// CRDs, other cluster-scoped objects, namespaced objects); no empty phases. The keys of a
/// phase are in Helm's install order of kinds, then by key.
pub fn apply_phases(desired: &DesiredSet) -> Result<Vec<Phase>, OrderError> {
    let mut phases: BTreeMap<(i64, Class), Vec<ObjectKey>> = BTreeMap::new();
    for object in desired.iter() {
        let wave = wave(object)?;
        phases
            .entry((wave, Class::of(&object.key)))
            .or_default()
            .push(object.key.clone());
    }
    Ok(phases
        .into_iter()
        .map(|((wave, class), mut keys)| {
            // Keys come in key order; a stable sort keeps it within a kind.
            keys.sort_by_key(|k| install_rank(&k.kind));
            Phase {
                name: class.name(),
                wave,
                keys,
            }
        })
        .collect())
}

/// The waves of `phases`, in order, each once.
pub fn waves(phases: &[Phase]) -> Vec<i64> {
    let mut waves: Vec<i64> = phases.iter().map(|p| p.wave).collect();
    waves.dedup();
    waves
}

/// The phases to delete `keys` in: the apply classes reversed (namespaced objects, other
/// cluster-scoped objects, CRDs, namespaces last, so nothing is deleted out from under a
/// member still to be pruned), all as one wave.
pub fn prune_phases(keys: impl IntoIterator<Item = ObjectKey>) -> Vec<Phase> {
    prune_phases_by_wave(keys, |_| 0)
}

/// [`prune_phases`] with waves: the highest wave first (the reverse of applying, as Argo CD
/// prunes), the classes reversed within each. `wave` gives an object's wave, read from the
/// live object: the revision no longer has it.
pub fn prune_phases_by_wave(
    keys: impl IntoIterator<Item = ObjectKey>,
    wave: impl Fn(&ObjectKey) -> i64,
) -> Vec<Phase> {
    use std::cmp::Reverse;
    let mut phases: BTreeMap<(Reverse<i64>, Reverse<Class>), Vec<ObjectKey>> = BTreeMap::new();
    for key in keys {
        phases
            .entry((Reverse(wave(&key)), Reverse(Class::of(&key))))
            .or_default()
            .push(key);
    }
    phases
        .into_iter()
        .map(|((Reverse(wave), Reverse(class)), mut keys)| {
            keys.sort();
            keys.dedup();
            Phase {
                name: class.name(),
                wave,
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
    use crate::render::{Manifest, Origin};
    use serde_json::{Value, json};

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
                ("namespaced", -2, vec!["cfg".to_string()]),
                ("namespaces", 0, vec!["batch".into()]),
                ("crds", 0, vec!["crd".into()]),
                ("namespaced", 0, vec!["svc".into()]),
                ("namespaced", 1, vec!["api".into(), "worker".into()]),
                ("namespaces", 3, vec!["web".into()]),
                ("cluster", 5, vec!["role".into()]),
            ]
        );
        assert_eq!(waves(&phases), [-2, 0, 1, 3, 5]);
        assert!(apply_phases(&DesiredSet::default()).unwrap().is_empty());
    }

    #[test]
    fn a_phase_lists_its_kinds_in_helms_install_order() {
        let set = desired(vec![
            manifest(1, "apps/v1", "Deployment", "a", Value::Null),
            manifest(2, "v1", "Service", "b", Value::Null),
            manifest(3, "v1", "ServiceAccount", "c", Value::Null),
            manifest(4, "example.com/v1", "Widget", "d", Value::Null),
            manifest(5, "v1", "ConfigMap", "e", Value::Null),
        ]);
        let phases = apply_phases(&set).unwrap();
        assert_eq!(
            names(&phases),
            [(
                "namespaced",
                0,
                vec![
                    "c".to_string(),
                    "e".into(),
                    "b".into(),
                    "a".into(),
                    "d".into()
                ]
            )]
        );
    }

    #[test]
    fn argo_cds_wave_is_honoured_and_must_agree_with_ours() {
        let argo = |line, kind: &str, name: &str, waves: Value| {
            let mut m = manifest(line, "v1", kind, name, Value::Null);
            m.object["metadata"]["annotations"] = waves;
            m
        };
        let set = desired(vec![
            argo(1, "ConfigMap", "late", json!({ARGO_WAVE_ANNOTATION: "2"})),
            argo(
                2,
                "ConfigMap",
                "both",
                json!({ARGO_WAVE_ANNOTATION: "-1", WAVE_ANNOTATION: "-1"}),
            ),
        ]);
        assert_eq!(waves(&apply_phases(&set).unwrap()), [-1, 2]);
        let set = desired(vec![argo(
            7,
            "ConfigMap",
            "torn",
            json!({ARGO_WAVE_ANNOTATION: "1", WAVE_ANNOTATION: "2"}),
        )]);
        assert_eq!(
            apply_phases(&set).unwrap_err().to_string(),
            "app.yaml:7: ConfigMap web/torn has two different waves: kubectl-gitops.io/sync-wave is 2 and argocd.argoproj.io/sync-wave is 1; keep one of them"
        );
        let set = desired(vec![argo(
            3,
            "ConfigMap",
            "x",
            json!({ARGO_WAVE_ANNOTATION: "first"}),
        )]);
        assert!(
            apply_phases(&set)
                .unwrap_err()
                .to_string()
                .starts_with("app.yaml:3: the argocd.argoproj.io/sync-wave annotation of ConfigMap web/x is \"first\""),
        );
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
        let phases: Vec<&str> = prune_phases(keys.clone()).iter().map(|p| p.name).collect();
        assert_eq!(phases, ["namespaced", "cluster", "crds", "namespaces"]);
        assert!(prune_order(Vec::new()).is_empty());
        // With waves: the highest first, classes reversed within each.
        let by_wave = prune_phases_by_wave(keys, |k| match k.name.as_str() {
            "api" | "web" => 2,
            _ => 0,
        });
        let order: Vec<(i64, &str, Vec<&str>)> = by_wave
            .iter()
            .map(|p| {
                (
                    p.wave,
                    p.name,
                    p.keys.iter().map(|k| k.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                (2, "namespaced", vec!["api"]),
                (2, "namespaces", vec!["web"]),
                (0, "namespaced", vec!["cfg"]),
                (0, "cluster", vec!["role"]),
                (0, "crds", vec!["crd"]),
            ]
        );
    }
}
