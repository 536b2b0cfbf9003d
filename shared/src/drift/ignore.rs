//! Ignore rules: fields that someone else legitimately owns (an HPA's replicas, a
//! controller's annotation) are not drift.
//!
//! Rules come from flags (`--ignore-manager`, `--ignore-path`), from the per-app config
//! file in the repository ([`CONFIG_FILE`]) and from annotations on the object itself
//! ([`IGNORE_PATHS_ANNOTATION`], [`IGNORE_MANAGERS_ANNOTATION`]), live or in the manifest.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::owners::pointer_segments;
use crate::objects::ObjectKey;

/// The per-app config file, at the root of the app's path in the repository.
pub const CONFIG_FILE: &str = ".kubectl-gitops.yaml";
/// On an object: JSON pointers to ignore, comma separated.
pub const IGNORE_PATHS_ANNOTATION: &str = "kubectl-gitops.io/drift-ignore";
/// On an object: field managers whose changes to it are ignored, comma separated.
pub const IGNORE_MANAGERS_ANNOTATION: &str = "kubectl-gitops.io/drift-ignore-managers";

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error(
        "{origin}: \"{pointer}\" is not a JSON pointer: it must start with / (e.g. /spec/replicas)"
    )]
    NotAPointer { origin: String, pointer: String },
    #[error(
        "--ignore-path {spec}: name a kind before the colon (Deployment.apps:/spec/replicas) or give only the pointer"
    )]
    NoKind { spec: String },
    #[error("{file}: {message}")]
    Config { file: String, message: String },
}

/// One rule: which objects it covers (absent = any), and what it ignores in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    /// The kind; absent for every kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// The API group (`""` the core group); absent for any group.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// JSON pointers; a field at or under one is ignored. A `*` segment matches any one
    /// segment (`/spec/template/spec/containers/*/image`).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Field managers: a field one of them owns now is ignored.
    #[serde(default)]
    pub managers: Vec<String>,
}

/// The config file: only `ignore` is read; other top-level keys are left to other tools.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    ignore: Vec<IgnoreRule>,
}

impl IgnoreRule {
    /// `--ignore-manager NAME`: that manager's fields in every object.
    pub fn manager(name: &str) -> IgnoreRule {
        IgnoreRule {
            managers: vec![name.to_string()],
            ..IgnoreRule::default()
        }
    }

    /// `--ignore-path [KIND[.GROUP]:]POINTER`: `/metadata/labels/x` in every object,
    /// `Deployment:/spec/replicas` in Deployments of any group, `Deployment.apps:...` in
    /// those of one group (`ConfigMap.:...` would name the core group; `ConfigMap` any).
    pub fn path(spec: &str) -> Result<IgnoreRule, IgnoreError> {
        let (kinds, pointer) = match spec.split_once(":/") {
            Some((kinds, rest)) if !spec.starts_with('/') => (Some(kinds), format!("/{rest}")),
            _ => (None, spec.to_string()),
        };
        check_pointer(&pointer, &format!("--ignore-path {spec}"))?;
        let (kind, group) = match kinds {
            None => (None, None),
            Some("") => {
                return Err(IgnoreError::NoKind {
                    spec: spec.to_string(),
                });
            }
            Some(kinds) => match kinds.split_once('.') {
                None => (Some(kinds.to_string()), None),
                Some((kind, group)) => (Some(kind.to_string()), Some(group.to_string())),
            },
        };
        Ok(IgnoreRule {
            kind,
            group,
            paths: vec![pointer],
            ..IgnoreRule::default()
        })
    }

    fn covers(&self, key: &ObjectKey) -> bool {
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        matches(&self.kind, &key.kind)
            && matches(&self.group, &key.group)
            && matches(&self.name, &key.name)
            && matches(
                &self.namespace,
                key.namespace.as_deref().unwrap_or_default(),
            )
    }
}

/// Rules from every source, applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    pub rules: Vec<IgnoreRule>,
}

impl IgnoreRules {
    /// Reads the config file's text; `file` names it in errors (with the line).
    pub fn from_config(file: &str, text: &str) -> Result<IgnoreRules, IgnoreError> {
        let config: ConfigFile = match serde_yaml_ng::from_str::<Option<ConfigFile>>(text) {
            Ok(config) => config.unwrap_or(ConfigFile { ignore: Vec::new() }),
            Err(error) => {
                return Err(IgnoreError::Config {
                    file: match error.location() {
                        Some(at) => format!("{file}:{}", at.line()),
                        None => file.to_string(),
                    },
                    message: error.to_string(),
                });
            }
        };
        for (index, rule) in config.ignore.iter().enumerate() {
            for pointer in &rule.paths {
                check_pointer(pointer, &format!("{file}: ignore[{index}]"))?;
            }
        }
        Ok(IgnoreRules {
            rules: config.ignore,
        })
    }

    pub fn extend(&mut self, other: IgnoreRules) {
        self.rules.extend(other.rules);
    }

    /// Why a field of `key` at `pointer`, owned now by `manager`, is ignored, if it is.
    /// `objects` are the live object and the manifest, whose annotations add rules.
    pub fn reason(
        &self,
        key: &ObjectKey,
        objects: &[&Value],
        pointer: &str,
        manager: Option<&str>,
    ) -> Option<String> {
        let segments = pointer_segments(pointer);
        for rule in self.rules.iter().filter(|r| r.covers(key)) {
            if let Some(path) = rule.paths.iter().find(|p| covers_path(p, &segments)) {
                return Some(format!("path {path}"));
            }
            if let Some(m) = manager.filter(|m| rule.managers.iter().any(|r| r == m)) {
                return Some(format!("manager {m}"));
            }
        }
        for object in objects {
            let paths = annotation_list(object, IGNORE_PATHS_ANNOTATION);
            if let Some(path) = paths.iter().find(|p| covers_path(p, &segments)) {
                return Some(format!("path {path} ({IGNORE_PATHS_ANNOTATION})"));
            }
            let managers = annotation_list(object, IGNORE_MANAGERS_ANNOTATION);
            if let Some(m) = manager.filter(|m| managers.iter().any(|r| r == m)) {
                return Some(format!("manager {m} ({IGNORE_MANAGERS_ANNOTATION})"));
            }
        }
        None
    }
}

fn check_pointer(pointer: &str, origin: &str) -> Result<(), IgnoreError> {
    if pointer.starts_with('/') {
        Ok(())
    } else {
        Err(IgnoreError::NotAPointer {
            origin: origin.to_string(),
            pointer: pointer.to_string(),
        })
    }
}

/// Whether the rule pointer `rule` is `segments` or one of its ancestors.
fn covers_path(rule: &str, segments: &[String]) -> bool {
    if !rule.starts_with('/') {
        return false;
    }
    let wanted = pointer_segments(rule);
    wanted.len() <= segments.len()
        && wanted
            .iter()
            .zip(segments)
            .all(|(want, have)| want == "*" || want == have)
}

/// A comma-separated annotation, trimmed, empty entries dropped.
fn annotation_list(object: &Value, name: &str) -> Vec<String> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
        .map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn key(group: &str, kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    #[test]
    fn path_flags_name_kinds_groups_or_everything() {
        let any = IgnoreRule::path("/metadata/labels/x").unwrap();
        assert_eq!((any.kind, any.group), (None, None));
        let kind = IgnoreRule::path("Deployment:/spec/replicas").unwrap();
        assert_eq!(
            (kind.kind.as_deref(), kind.group, kind.paths),
            (Some("Deployment"), None, vec!["/spec/replicas".to_string()])
        );
        let grouped = IgnoreRule::path("Deployment.apps:/spec/replicas").unwrap();
        assert_eq!(grouped.group.as_deref(), Some("apps"));
        let core = IgnoreRule::path("ConfigMap.:/data").unwrap();
        assert_eq!(core.group.as_deref(), Some(""));
        let err = IgnoreRule::path("spec.replicas").unwrap_err();
        assert!(err.to_string().contains("must start with /"), "{err}");
    }

    #[test]
    fn rules_match_paths_under_them_wildcards_and_managers() {
        let mut rules = IgnoreRules {
            rules: vec![
                IgnoreRule::path("Deployment.apps:/spec/template/spec/containers/*/image").unwrap(),
                IgnoreRule::manager("hpa"),
            ],
        };
        rules
            .rules
            .push(IgnoreRule::path("/metadata/labels").unwrap());
        let web = key("apps", "Deployment", "web");
        let reason = |k: &ObjectKey, p: &str, m: Option<&str>| rules.reason(k, &[], p, m);
        assert_eq!(
            reason(&web, "/spec/template/spec/containers/1/image", None).as_deref(),
            Some("path /spec/template/spec/containers/*/image")
        );
        assert_eq!(
            reason(&web, "/spec/template/spec/containers/1/name", None),
            None
        );
        assert_eq!(
            reason(
                &key("", "ConfigMap", "c"),
                "/spec/template/spec/containers/0/image",
                None
            ),
            None
        );
        assert_eq!(
            reason(&web, "/spec/replicas", Some("hpa")).as_deref(),
            Some("manager hpa")
        );
        assert_eq!(reason(&web, "/spec/replicas", Some("kubectl")), None);
        assert!(reason(&web, "/metadata/labels/team", None).is_some());
        // A rule deeper than the change cannot ignore it.
        assert_eq!(reason(&web, "/metadata", None), None);
    }

    #[test]
    fn annotations_add_rules_for_their_object() {
        let live = json!({"metadata": {"annotations": {
            IGNORE_PATHS_ANNOTATION: "/spec/replicas, /metadata/labels/x",
            IGNORE_MANAGERS_ANNOTATION: "autoscaler"
        }}});
        let rules = IgnoreRules::default();
        let web = key("apps", "Deployment", "web");
        assert!(
            rules
                .reason(&web, &[&live], "/metadata/labels/x", None)
                .is_some()
        );
        assert!(
            rules
                .reason(&web, &[&json!({}), &live], "/spec/replicas", None)
                .unwrap()
                .contains(IGNORE_PATHS_ANNOTATION)
        );
        assert!(
            rules
                .reason(&web, &[&live], "/spec/paused", Some("autoscaler"))
                .is_some()
        );
        assert!(rules.reason(&web, &[&live], "/spec/paused", None).is_none());
    }

    #[test]
    fn config_files_are_read_with_line_numbers_in_errors() {
        let text = "ignore:\n- kind: Deployment\n  group: apps\n  name: web\n  paths: [/spec/replicas]\n  managers: [hpa]\nsync: {other: tool}\n";
        let rules = IgnoreRules::from_config("app/.kubectl-gitops.yaml", text).unwrap();
        assert_eq!(rules.rules.len(), 1);
        assert_eq!(rules.rules[0].name.as_deref(), Some("web"));
        assert!(rules.rules[0].covers(&key("apps", "Deployment", "web")));
        assert!(!rules.rules[0].covers(&key("apps", "Deployment", "api")));
        assert!(IgnoreRules::from_config("f", "").unwrap().rules.is_empty());

        let err =
            IgnoreRules::from_config("f.yaml", "ignore:\n- kind: X\n  pathz: [/a]\n").unwrap_err();
        assert!(err.to_string().starts_with("f.yaml:3"), "{err}");
        let err = IgnoreRules::from_config("f.yaml", "ignore:\n- paths: [spec]\n").unwrap_err();
        assert!(err.to_string().contains("ignore[0]"), "{err}");
    }
}
