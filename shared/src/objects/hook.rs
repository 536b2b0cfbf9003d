//! What a hook's annotations say: which events it runs on, its weight, and when it is
//! deleted. Argo CD's `argocd.argoproj.io/hook*` and Helm's `helm.sh/hook*` annotations,
//! read exactly as those tools read them; an object with both is an Argo CD hook, as in
//! Argo CD, which ignores Helm's annotations on an object that has its own.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::ObjectKey;
use super::wave::{WaveError, wave_of};
use crate::render::Origin;

pub const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
pub const ARGO_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
pub const HELM_HOOK: &str = "helm.sh/hook";
pub const HELM_WEIGHT: &str = "helm.sh/hook-weight";
pub const HELM_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

/// One word of a hook annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    // Argo CD
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    Skip,
    PreDelete,
    PostDelete,
    // Helm
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreRollback,
    PostRollback,
    HelmPreDelete,
    HelmPostDelete,
    Test,
}

const ARGO_EVENTS: [(&str, HookEvent); 7] = [
    ("PreSync", HookEvent::PreSync),
    ("Sync", HookEvent::Sync),
    ("PostSync", HookEvent::PostSync),
    ("SyncFail", HookEvent::SyncFail),
    ("Skip", HookEvent::Skip),
    ("PreDelete", HookEvent::PreDelete),
    ("PostDelete", HookEvent::PostDelete),
];

const HELM_EVENTS: [(&str, HookEvent); 10] = [
    ("pre-install", HookEvent::PreInstall),
    ("post-install", HookEvent::PostInstall),
    ("pre-upgrade", HookEvent::PreUpgrade),
    ("post-upgrade", HookEvent::PostUpgrade),
    ("pre-rollback", HookEvent::PreRollback),
    ("post-rollback", HookEvent::PostRollback),
    ("pre-delete", HookEvent::HelmPreDelete),
    ("post-delete", HookEvent::HelmPostDelete),
    ("test", HookEvent::Test),
    // Helm 2's name for test hooks, which Helm 3 still reads as `test`.
    ("test-success", HookEvent::Test),
];

impl HookEvent {
    /// The word as written in the annotation.
    pub fn as_str(self) -> &'static str {
        ARGO_EVENTS
            .iter()
            .chain(HELM_EVENTS.iter())
            .find(|(_, event)| *event == self)
            .map(|(word, _)| *word)
            .unwrap_or("?")
    }

    /// The stage this event runs in on `occasion`, if it runs then at all. Argo CD's sync
    /// hooks run on every sync (a rollback is a sync of an older revision); Helm's run on
    /// the occasion they name: we know from the release records whether a sync installs or
    /// upgrades, which Argo CD cannot tell.
    pub fn stage(self, occasion: Occasion) -> Option<Stage> {
        use HookEvent as E;
        use Occasion as O;
        let syncing = occasion != O::Uninstall;
        match self {
            E::PreSync if syncing => Some(Stage::Pre),
            E::Sync if syncing => Some(Stage::Sync),
            E::PostSync if syncing => Some(Stage::Post),
            E::SyncFail if syncing => Some(Stage::Fail),
            E::PreInstall if occasion == O::Install => Some(Stage::Pre),
            E::PostInstall if occasion == O::Install => Some(Stage::Post),
            E::PreUpgrade if occasion == O::Upgrade => Some(Stage::Pre),
            E::PostUpgrade if occasion == O::Upgrade => Some(Stage::Post),
            E::PreRollback if occasion == O::Rollback => Some(Stage::Pre),
            E::PostRollback if occasion == O::Rollback => Some(Stage::Post),
            E::PreDelete | E::HelmPreDelete if occasion == O::Uninstall => Some(Stage::PreDelete),
            E::PostDelete | E::HelmPostDelete if occasion == O::Uninstall => {
                Some(Stage::PostDelete)
            }
            _ => None,
        }
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sync is doing to the app, which decides the Helm hooks that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// The app has no deployed release yet.
    Install,
    Upgrade,
    Rollback,
    Uninstall,
}

impl Occasion {
    pub fn as_str(self) -> &'static str {
        match self {
            Occasion::Install => "install",
            Occasion::Upgrade => "upgrade",
            Occasion::Rollback => "rollback",
            Occasion::Uninstall => "uninstall",
        }
    }
}

/// When in a sync a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Before anything is applied.
    Pre,
    /// With the objects of its wave.
    Sync,
    /// Once every object is applied and healthy.
    Post,
    /// When the sync failed.
    Fail,
    PreDelete,
    PostDelete,
}

impl Stage {
    /// The name a person reads (Argo CD's phase names).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pre => "PreSync",
            Stage::Sync => "Sync",
            Stage::Post => "PostSync",
            Stage::Fail => "SyncFail",
            Stage::PreDelete => "PreDelete",
            Stage::PostDelete => "PostDelete",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a hook's object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeletePolicy {
    /// The previous run's object, before a new one is created (both tools' default).
    BeforeCreation,
    Succeeded,
    Failed,
}

/// A hook's annotations, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    /// Which tool's annotations made it a hook (`argocd` or `helm`).
    pub tool: &'static str,
    pub events: BTreeSet<HookEvent>,
    /// Order within a stage, lowest first: Helm's hook-weight, Argo CD's sync-wave.
    pub weight: i64,
    /// Never empty: without a policy, [`DeletePolicy::BeforeCreation`].
    pub delete: BTreeSet<DeletePolicy>,
}

impl HookSpec {
    /// The stages the hook runs in on `occasion`, in order.
    pub fn stages(&self, occasion: Occasion) -> BTreeSet<Stage> {
        self.events
            .iter()
            .filter_map(|event| event.stage(occasion))
            .collect()
    }

    /// The events that make it run in `stage` on `occasion`, as written: `PreSync`,
    /// `pre-install,pre-upgrade`.
    pub fn events_for(&self, stage: Stage, occasion: Occasion) -> String {
        self.events
            .iter()
            .filter(|e| e.stage(occasion) == Some(stage))
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether it is a hook that never runs: Argo CD's `Skip`, Helm's `test`.
    pub fn never_runs(&self) -> bool {
        self.events
            .iter()
            .all(|e| matches!(e, HookEvent::Skip | HookEvent::Test))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookSpecError {
    #[error(
        "{origin}: the {annotation} annotation of {key} has {word:?}, which is not a hook: use {known}"
    )]
    UnknownEvent {
        key: Box<ObjectKey>,
        origin: Origin,
        annotation: &'static str,
        word: String,
        known: String,
    },
    #[error(
        "{origin}: the {annotation} annotation of {key} has {word:?}, which is not a delete policy: use {known}"
    )]
    UnknownPolicy {
        key: Box<ObjectKey>,
        origin: Origin,
        annotation: &'static str,
        word: String,
        known: &'static str,
    },
    #[error(
        "{origin}: the {HELM_WEIGHT} annotation of {key} is {value:?}, not an integer: use a whole number such as \"-1\" or \"5\""
    )]
    Weight {
        key: Box<ObjectKey>,
        origin: Origin,
        value: String,
    },
    #[error(transparent)]
    Wave(#[from] WaveError),
}

/// A hook of a revision: an object that runs at a point of a sync instead of being one of
/// the app's members.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Its key; for a hook named by `metadata.generateName`, the name is that prefix.
    pub key: ObjectKey,
    /// Named by `generateName`: the server picks the name of each run.
    pub generated: bool,
    pub object: Value,
    pub origin: Origin,
    pub spec: HookSpec,
}

/// `Job.batch shop/migrate` for a named hook, `Job.batch shop/migrate-*` for a generated one.
impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.key, if self.generated { "*" } else { "" })
    }
}

/// The annotation `name` of `object`, if it is a string.
fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// Whether `object` carries a hook annotation (it is a hook, not an app member). Cheap:
/// asked of every object while reading a revision.
pub fn is_hook(object: &Value) -> bool {
    annotation(object, ARGO_HOOK).is_some() || annotation(object, HELM_HOOK).is_some()
}

/// The comma-separated words of an annotation, trimmed, empty ones dropped.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|w| !w.is_empty())
}

/// Reads `object`'s hook annotations; `None` if it is not a hook. `key` and `origin`
/// name it in errors.
pub fn read(
    object: &Value,
    key: &ObjectKey,
    origin: &Origin,
) -> Result<Option<HookSpec>, HookSpecError> {
    let (tool, annotation_name, text, table, policy_name): (_, _, _, &[(&str, HookEvent)], _) =
        if let Some(text) = annotation(object, ARGO_HOOK) {
            ("argocd", ARGO_HOOK, text, &ARGO_EVENTS, ARGO_DELETE_POLICY)
        } else if let Some(text) = annotation(object, HELM_HOOK) {
            ("helm", HELM_HOOK, text, &HELM_EVENTS, HELM_DELETE_POLICY)
        } else {
            return Ok(None);
        };
    let mut events = BTreeSet::new();
    for word in words(text) {
        // Helm compares hook words as written; Argo CD too. A misspelt word is an error
        // rather than a hook that silently never runs.
        let event = table
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, e)| *e)
            .ok_or_else(|| HookSpecError::UnknownEvent {
                key: Box::new(key.clone()),
                origin: origin.clone(),
                annotation: annotation_name,
                word: word.to_string(),
                known: table
                    .iter()
                    .map(|(name, _)| *name)
                    .filter(|name| *name != "test-success")
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        events.insert(event);
    }
    let weight = if tool == "helm" {
        match annotation(object, HELM_WEIGHT) {
            None => 0,
            Some(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|_| HookSpecError::Weight {
                    key: Box::new(key.clone()),
                    origin: origin.clone(),
                    value: text.to_string(),
                })?,
        }
    } else {
        wave_of(object, key, origin)?
    };
    let mut delete = BTreeSet::new();
    if let Some(text) = annotation(object, policy_name) {
        for word in words(text) {
            let policy = match (tool, word) {
                ("argocd", "BeforeHookCreation") | ("helm", "before-hook-creation") => {
                    DeletePolicy::BeforeCreation
                }
                ("argocd", "HookSucceeded") | ("helm", "hook-succeeded") => DeletePolicy::Succeeded,
                ("argocd", "HookFailed") | ("helm", "hook-failed") => DeletePolicy::Failed,
                _ => {
                    return Err(HookSpecError::UnknownPolicy {
                        key: Box::new(key.clone()),
                        origin: origin.clone(),
                        annotation: policy_name,
                        word: word.to_string(),
                        known: if tool == "helm" {
                            "before-hook-creation, hook-succeeded, hook-failed"
                        } else {
                            "BeforeHookCreation, HookSucceeded, HookFailed"
                        },
                    });
                }
            };
            delete.insert(policy);
        }
    }
    if delete.is_empty() {
        delete.insert(DeletePolicy::BeforeCreation);
    }
    Ok(Some(HookSpec {
        tool,
        events,
        weight,
        delete,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ObjectKey {
        ObjectKey {
            group: "batch".into(),
            kind: "Job".into(),
            namespace: Some("shop".into()),
            name: "migrate-".into(),
        }
    }

    fn origin() -> Origin {
        Origin {
            file: "app/hooks.yaml".into(),
            document: 0,
            line: 3,
        }
    }

    fn spec(annotations: Value) -> Result<Option<HookSpec>, HookSpecError> {
        let object = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"generateName": "migrate-", "annotations": annotations}});
        read(&object, &key(), &origin())
    }

    #[test]
    fn argo_hooks_take_their_order_from_the_sync_wave() {
        let hook =
            spec(json!({ARGO_HOOK: "PreSync, PostSync", "argocd.argoproj.io/sync-wave": "-2"}))
                .unwrap()
                .unwrap();
        assert_eq!(hook.tool, "argocd");
        assert_eq!(
            hook.events,
            BTreeSet::from([HookEvent::PreSync, HookEvent::PostSync])
        );
        assert_eq!(hook.weight, -2);
        assert_eq!(hook.delete, BTreeSet::from([DeletePolicy::BeforeCreation]));
        assert_eq!(
            hook.stages(Occasion::Upgrade),
            BTreeSet::from([Stage::Pre, Stage::Post])
        );
        assert!(hook.stages(Occasion::Uninstall).is_empty());
    }

    #[test]
    fn helm_hooks_run_on_the_occasion_they_name() {
        let hook = spec(
            json!({HELM_HOOK: "pre-install,pre-upgrade", HELM_WEIGHT: "5",
            HELM_DELETE_POLICY: "hook-succeeded,before-hook-creation"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(hook.weight, 5);
        assert_eq!(
            hook.delete,
            BTreeSet::from([DeletePolicy::BeforeCreation, DeletePolicy::Succeeded])
        );
        assert_eq!(hook.stages(Occasion::Install), BTreeSet::from([Stage::Pre]));
        assert_eq!(hook.stages(Occasion::Upgrade), BTreeSet::from([Stage::Pre]));
        assert!(hook.stages(Occasion::Rollback).is_empty());
        assert_eq!(
            hook.events_for(Stage::Pre, Occasion::Install),
            "pre-install"
        );
        let post = spec(json!({HELM_HOOK: "post-install"})).unwrap().unwrap();
        assert!(post.stages(Occasion::Upgrade).is_empty());
        let delete = spec(json!({HELM_HOOK: "pre-delete"})).unwrap().unwrap();
        assert_eq!(
            delete.stages(Occasion::Uninstall),
            BTreeSet::from([Stage::PreDelete])
        );
        let test = spec(json!({HELM_HOOK: "test"})).unwrap().unwrap();
        assert!(test.never_runs());
    }

    #[test]
    fn argo_annotations_win_over_helm_ones_on_one_object() {
        let hook = spec(json!({ARGO_HOOK: "Sync", HELM_HOOK: "pre-install", HELM_WEIGHT: "9"}))
            .unwrap()
            .unwrap();
        assert_eq!(hook.events, BTreeSet::from([HookEvent::Sync]));
        assert_eq!(hook.weight, 0);
    }

    #[test]
    fn misspelt_words_are_errors_naming_the_object_and_its_line() {
        let err = spec(json!({ARGO_HOOK: "PreSinc"})).unwrap_err().to_string();
        assert!(
            err.starts_with("app/hooks.yaml:3: the argocd.argoproj.io/hook annotation of Job.batch shop/migrate- has \"PreSinc\", which is not a hook: use PreSync, Sync"),
            "{err}"
        );
        let err = spec(json!({HELM_HOOK: "pre-install", HELM_DELETE_POLICY: "HookSucceeded"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use before-hook-creation, hook-succeeded, hook-failed"),
            "{err}"
        );
        let err = spec(json!({HELM_HOOK: "pre-install", HELM_WEIGHT: "high"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an integer"), "{err}");
        assert!(spec(json!({"other": "x"})).unwrap().is_none());
    }
}
