//! Per-object options as Argo CD and Helm users write them, read from annotations:
//! `argocd.argoproj.io/sync-options` and our own `kubectl-gitops.io/sync-options` (the same
//! comma-separated `Name=value` list; both are read and taken together),
//! `argocd.argoproj.io/compare-options`, and Helm's `helm.sh/resource-policy: keep`.
//!
//! Pure functions over objects: what each option asks for, the warnings for options we do
//! not honour, and the error for an option given twice with different values. The plan
//! and the apply ask here; nothing in this module talks to a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::diff::{Action, ChangeSet};
use crate::objects::{DesiredSet, ObjectKey};

pub const ARGO_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub const OUR_SYNC_OPTIONS: &str = "kubectl-gitops.io/sync-options";
pub const ARGO_COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";
pub const HELM_RESOURCE_POLICY: &str = "helm.sh/resource-policy";

#[derive(Debug, thiserror::Error)]
pub enum ObjectOptionsError {
    #[error(
        "{object} ({origin}) sets the sync option {name} twice, to {first:?} and {second:?}: keep one value (annotations {ARGO_SYNC_OPTIONS} and {OUR_SYNC_OPTIONS} are read together)"
    )]
    Contradiction {
        object: String,
        origin: String,
        name: String,
        first: String,
        second: String,
    },
}

/// Why a stale member is not pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// `Prune=false`.
    PruneFalse,
    /// `Prune=confirm`: kept, as nobody can confirm here.
    PruneConfirm,
    /// `helm.sh/resource-policy: keep`.
    ResourcePolicy,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeepReason::PruneFalse => "Prune=false",
            KeepReason::PruneConfirm => "Prune=confirm",
            KeepReason::ResourcePolicy => "helm.sh/resource-policy: keep",
        })
    }
}

/// What an object's annotations ask of a sync, a prune, a delete and a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectOptions {
    /// Never pruned, and why.
    pub keep: Option<KeepReason>,
    /// Kept when the app is uninstalled (`Delete=false`, or Helm's keep policy).
    pub keep_on_delete: bool,
    /// Pruned after every other stale object.
    pub prune_last: bool,
    /// Written with a PUT of the whole object (delete and create when the server refuses
    /// a change of an immutable field), not server-side apply.
    pub replace: bool,
    /// A kind the server does not serve yet is shown as added, not an error.
    pub skip_dry_run_on_missing: bool,
    /// Not reported by drift, and not counted by diff-git.
    pub ignore_extraneous: bool,
}

/// An object's options, with the warnings for the options it sets that are not honoured
/// (each naming the object, its origin and the option).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    pub options: ObjectOptions,
    pub warnings: Vec<String>,
}

/// The annotation's value split into trimmed, non-empty items.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// Whether a `true`/`false` value says true (any case); None for anything else.
fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads `object`'s options. `object_name` and `origin` name it in warnings and errors
/// (`ConfigMap shop/x`, `deploy/app.yaml:3`).
pub fn read(object: &Value, object_name: &str, origin: &str) -> Result<Read, ObjectOptionsError> {
    let mut read = Read::default();
    // Both annotations together, each option once: the same value twice is harmless.
    let mut sync: BTreeMap<&str, &str> = BTreeMap::new();
    for name in [ARGO_SYNC_OPTIONS, OUR_SYNC_OPTIONS] {
        for item in annotation(object, name).into_iter().flat_map(items) {
            let (option, value) = item
                .split_once('=')
                .map(|(o, v)| (o.trim(), v.trim()))
                .unwrap_or((item, ""));
            match sync.get(option) {
                Some(first) if *first != value => {
                    return Err(ObjectOptionsError::Contradiction {
                        object: object_name.to_string(),
                        origin: origin.to_string(),
                        name: option.to_string(),
                        first: (*first).to_string(),
                        second: value.to_string(),
                    });
                }
                _ => {
                    sync.insert(option, value);
                }
            }
        }
    }
    let options = &mut read.options;
    let mut unhonoured = Vec::new();
    for (&option, &value) in &sync {
        let flag = boolean(value);
        match (option, value, flag) {
            ("Prune", _, Some(true)) => {}
            ("Prune", _, Some(false)) => options.keep = Some(KeepReason::PruneFalse),
            ("Prune", "confirm", _) => {
                options.keep = Some(KeepReason::PruneConfirm);
                unhonoured.push(
                    "sync option Prune=confirm: confirmation is not supported, the object is never pruned (as with Prune=false)".to_string(),
                );
            }
            ("Delete", _, Some(true)) => {}
            ("Delete", _, Some(false)) => options.keep_on_delete = true,
            ("Delete", "confirm", _) => {
                options.keep_on_delete = true;
                unhonoured.push(
                    "sync option Delete=confirm: confirmation is not supported, the object is kept on uninstall (as with Delete=false)".to_string(),
                );
            }
            ("PruneLast", _, Some(on)) => options.prune_last = on,
            ("Replace", _, Some(on)) => options.replace = on,
            ("SkipDryRunOnMissingResource", _, Some(on)) => options.skip_dry_run_on_missing = on,
            // What every sync does already: server-side apply, only what differs.
            ("ServerSideApply", _, Some(true)) | ("ApplyOutOfSyncOnly", _, Some(true)) => {}
            ("ServerSideApply", _, Some(false)) => unhonoured.push(
                "sync option ServerSideApply=false is not supported: objects are always server-side applied (Replace=true writes the whole object instead)".to_string(),
            ),
            ("ApplyOutOfSyncOnly", _, Some(false)) => unhonoured.push(
                "sync option ApplyOutOfSyncOnly=false is not supported: only objects that differ are applied".to_string(),
            ),
            ("Validate", _, Some(true)) => {}
            ("Validate", _, Some(false)) => unhonoured.push(
                "sync option Validate=false is not supported: the API server checks every object against its schema".to_string(),
            ),
            // Argo CD's Force=true deletes and re-creates what it cannot replace, which
            // Replace=true does here; with server-side apply it means nothing.
            ("Force", _, Some(false)) => {}
            ("Force", _, Some(true)) if sync.get("Replace").and_then(|v| boolean(v)) == Some(true) => {}
            ("Force", _, Some(true)) => unhonoured.push(
                "sync option Force=true has no effect without Replace=true (kubectl sync --force-conflicts takes fields over from other managers)".to_string(),
            ),
            ("CreateNamespace", _, _) => unhonoured.push(format!(
                "sync option CreateNamespace={value} is an application option in Argo CD and has no effect on an object: put the Namespace in the revision"
            )),
            _ if value.is_empty() => unhonoured.push(format!("unsupported sync option {option}: ignored")),
            _ => unhonoured.push(format!("unsupported sync option {option}={value}: ignored")),
        }
    }
    for item in annotation(object, ARGO_COMPARE_OPTIONS)
        .into_iter()
        .flat_map(items)
    {
        let (option, value) = item
            .split_once('=')
            .map(|(o, v)| (o.trim(), v.trim()))
            .unwrap_or((item, "true"));
        match (option, boolean(value)) {
            ("IgnoreExtraneous", Some(on)) => options.ignore_extraneous = on,
            // Our comparison is a server-side dry-run already, webhooks included.
            ("ServerSideDiff" | "IncludeMutationWebhook", Some(_)) => {}
            _ => unhonoured.push(format!("unsupported compare option {item}: ignored")),
        }
    }
    match annotation(object, HELM_RESOURCE_POLICY).map(str::trim) {
        None => {}
        Some("keep") => {
            // Helm's keep wins over Prune=false's wording: it also keeps on uninstall.
            options.keep = Some(KeepReason::ResourcePolicy);
            options.keep_on_delete = true;
        }
        Some(other) => unhonoured.push(format!(
            "{HELM_RESOURCE_POLICY}: {other:?} is not a policy Helm knows (only \"keep\"): ignored"
        )),
    }
    read.warnings = unhonoured
        .into_iter()
        .map(|text| format!("{object_name} ({origin}): {text}"))
        .collect();
    Ok(read)
}

/// The options of a live object, whatever it says: an unreadable pair of values keeps the
/// object (keeping is the answer that cannot be undone wrongly).
fn lenient(object: &Value) -> ObjectOptions {
    read(object, "", "")
        .map(|read| read.options)
        .unwrap_or(ObjectOptions {
            keep: Some(KeepReason::PruneFalse),
            keep_on_delete: true,
            ..ObjectOptions::default()
        })
}

/// Why `live`, a member the revision no longer has, must not be pruned, if it must not.
/// Its own annotations decide: the revision no longer has it.
pub fn keep_on_prune(live: &Value) -> Option<KeepReason> {
    lenient(live).keep
}

/// Whether uninstalling the app must leave `live` in place (`Delete=false`, Helm's
/// `resource-policy: keep`).
pub fn keep_on_delete(live: &Value) -> bool {
    lenient(live).keep_on_delete
}

/// Whether `object` is written with a replace instead of server-side apply.
pub fn wants_replace(object: &Value) -> bool {
    lenient(object).replace
}

/// Whether `object`, of a kind the server does not serve yet, is shown as added instead
/// of failing the comparison.
pub fn skips_dry_run_on_missing(object: &Value) -> bool {
    lenient(object).skip_dry_run_on_missing
}

/// Whether `object` (desired or live) is left out of drift and of diff-git's verdict.
pub fn ignores_extraneous(object: &Value) -> bool {
    lenient(object).ignore_extraneous
}

/// The warnings for every object of `desired`, in key order; an option given twice with
/// different values is an error naming the object and where it comes from.
pub fn warnings(desired: &DesiredSet) -> Result<Vec<String>, ObjectOptionsError> {
    let mut warnings = Vec::new();
    for object in desired.iter() {
        let read = read(
            &object.object,
            &object.key.to_string(),
            &object.origin.to_string(),
        )?;
        warnings.extend(read.warnings);
    }
    Ok(warnings)
}

/// Takes the differences of objects that ask for `IgnoreExtraneous` (on the revision's
/// side or the live one) out of `changes`, for a command whose verdict must not count
/// them: one note for each, `ignored (IgnoreExtraneous): ConfigMap shop/x changed`.
pub fn set_aside_ignored(changes: &mut ChangeSet) -> Vec<String> {
    let mut notes = Vec::new();
    changes.changes.retain(|change| {
        let ignored = change.action != Action::Unchanged
            && [&change.before, &change.after]
                .into_iter()
                .flatten()
                .any(ignores_extraneous);
        if ignored {
            notes.push(format!(
                "ignored (IgnoreExtraneous): {} {}",
                change.key,
                change.action.as_str()
            ));
        }
        !ignored
    });
    notes
}

/// What a plan takes from the options: the stale members it keeps, those it prunes last,
/// and the warnings to show once.
#[derive(Debug, Clone, Default)]
pub struct PlannedOptions {
    /// Members the revision no longer has that stay, with why. They stay members of the
    /// ApplySet, so that once their annotation is gone (the revision has them again
    /// without it) a later revision that drops them prunes them.
    pub kept: BTreeMap<ObjectKey, KeepReason>,
    /// Stale members pruned in a last step, after every other.
    pub prune_last: BTreeSet<ObjectKey>,
    /// `<object> (<origin>): <what is not honoured>`, in key order.
    pub warnings: Vec<String>,
}

impl PlannedOptions {
    /// `kept ConfigMap shop/x (Prune=false)`, one line per kept member.
    pub fn kept_lines(&self) -> Vec<String> {
        self.kept
            .iter()
            .map(|(key, reason)| format!("kept {key} ({reason})"))
            .collect()
    }

    /// The key sets a prune keeps, one per prune step: everything in `keep` and the
    /// prune-last members first, then `keep` alone. One step when nothing is pruned last.
    pub fn prune_steps(&self, keep: BTreeSet<ObjectKey>) -> Vec<BTreeSet<ObjectKey>> {
        let mut keep = keep;
        keep.extend(self.kept.keys().cloned());
        if self.prune_last.is_empty() {
            return vec![keep];
        }
        let first = keep.iter().chain(&self.prune_last).cloned().collect();
        vec![first, keep]
    }
}

/// Splits the stale members by their own annotations into (pruned, kept with why), and
/// says which of the pruned go last.
pub fn split_stale(
    stale: BTreeMap<ObjectKey, Value>,
) -> (
    BTreeMap<ObjectKey, Value>,
    BTreeMap<ObjectKey, KeepReason>,
    BTreeSet<ObjectKey>,
) {
    let mut pruned = BTreeMap::new();
    let mut kept = BTreeMap::new();
    let mut last = BTreeSet::new();
    for (key, object) in stale {
        let options = lenient(&object);
        if let Some(reason) = options.keep {
            kept.insert(key, reason);
            continue;
        }
        if options.prune_last {
            last.insert(key.clone());
        }
        pruned.insert(key, object);
    }
    (pruned, kept, last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn object(annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "x", "namespace": "shop", "annotations": annotations}})
    }

    fn options(annotations: Value) -> Read {
        read(&object(annotations), "ConfigMap shop/x", "app.yaml:3").unwrap()
    }

    #[test]
    fn each_option_is_read_with_whitespace_around_items_ignored() {
        let read = options(json!({ARGO_SYNC_OPTIONS:
            " Prune=false ,PruneLast=true,, Replace=true , SkipDryRunOnMissingResource=true,Delete=false "}));
        assert_eq!(
            read.options,
            ObjectOptions {
                keep: Some(KeepReason::PruneFalse),
                keep_on_delete: true,
                prune_last: true,
                replace: true,
                skip_dry_run_on_missing: true,
                ignore_extraneous: false,
            }
        );
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert_eq!(options(json!({})), Read::default());
        assert_eq!(
            options(json!({ARGO_SYNC_OPTIONS: "Prune=true,Delete=true,Replace=false"})).options,
            ObjectOptions::default()
        );
    }

    #[test]
    fn our_annotation_reads_like_argo_cds_and_both_lists_are_taken() {
        let ours = options(json!({OUR_SYNC_OPTIONS: "Replace=true"}));
        assert!(ours.options.replace);
        let both = options(json!({
            ARGO_SYNC_OPTIONS: "Prune=false,Replace=true",
            OUR_SYNC_OPTIONS: "PruneLast=true, Replace=true",
        }));
        assert_eq!(both.options.keep, Some(KeepReason::PruneFalse));
        assert!(both.options.prune_last && both.options.replace);
        assert!(both.warnings.is_empty());
    }

    #[test]
    fn the_same_option_with_different_values_is_an_error_naming_the_object_and_origin() {
        for annotations in [
            json!({ARGO_SYNC_OPTIONS: "Prune=false", OUR_SYNC_OPTIONS: "Prune=true"}),
            json!({ARGO_SYNC_OPTIONS: "Replace=true,Replace=false"}),
        ] {
            let error = read(&object(annotations), "ConfigMap shop/x", "app.yaml:3")
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("ConfigMap shop/x (app.yaml:3) sets the sync option "),
                "{error}"
            );
        }
    }

    #[test]
    fn options_we_do_not_honour_warn_with_the_object_origin_and_option() {
        let read = options(json!({
            ARGO_SYNC_OPTIONS: "Validate=false,CreateNamespace=true,Force=true,Frobnicate=yes,Bare",
            ARGO_COMPARE_OPTIONS: "Whatever",
            HELM_RESOURCE_POLICY: "delete",
        }));
        assert_eq!(read.options, ObjectOptions::default());
        let warnings = read.warnings.join("\n");
        for option in [
            "Validate=false",
            "CreateNamespace=true",
            "Force=true",
            "unsupported sync option Frobnicate=yes: ignored",
            "unsupported sync option Bare: ignored",
            "unsupported compare option Whatever: ignored",
            "\"delete\" is not a policy Helm knows",
        ] {
            assert!(warnings.contains(option), "{option} in {warnings}");
        }
        assert_eq!(read.warnings.len(), 7);
        assert!(
            read.warnings
                .iter()
                .all(|w| w.starts_with("ConfigMap shop/x (app.yaml:3): "))
        );
    }

    #[test]
    fn what_we_always_do_is_accepted_silently() {
        let read = options(json!({
            ARGO_SYNC_OPTIONS: "ServerSideApply=true,ApplyOutOfSyncOnly=true,Validate=true,Replace=true,Force=true",
            ARGO_COMPARE_OPTIONS: "ServerSideDiff=true, IncludeMutationWebhook=true",
        }));
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert!(read.options.replace);
    }

    #[test]
    fn prune_confirm_keeps_the_object_with_a_warning() {
        let read = options(json!({ARGO_SYNC_OPTIONS: "Prune=confirm"}));
        assert_eq!(read.options.keep, Some(KeepReason::PruneConfirm));
        assert_eq!(read.warnings.len(), 1);
        assert!(read.warnings[0].contains("confirmation is not supported"));
    }

    #[test]
    fn helms_keep_policy_keeps_on_prune_and_on_delete() {
        let kept = object(json!({HELM_RESOURCE_POLICY: "keep"}));
        assert_eq!(keep_on_prune(&kept), Some(KeepReason::ResourcePolicy));
        assert!(keep_on_delete(&kept));
    }

    #[test]
    fn keep_on_delete_follows_delete_false_only() {
        assert!(keep_on_delete(&object(
            json!({ARGO_SYNC_OPTIONS: "Delete=false"})
        )));
        assert!(keep_on_delete(&object(
            json!({OUR_SYNC_OPTIONS: "Delete=false"})
        )));
        assert!(!keep_on_delete(&object(
            json!({ARGO_SYNC_OPTIONS: "Prune=false"})
        )));
        assert!(!keep_on_delete(&object(json!({}))));
        assert!(!keep_on_delete(&json!({"metadata": {"name": "x"}})));
        // A contradiction cannot be resolved on a live object: it is kept.
        assert!(keep_on_delete(&object(json!({
            ARGO_SYNC_OPTIONS: "Delete=false", OUR_SYNC_OPTIONS: "Delete=true"
        }))));
    }

    #[test]
    fn ignore_extraneous_is_a_compare_option() {
        assert!(ignores_extraneous(&object(
            json!({ARGO_COMPARE_OPTIONS: "IgnoreExtraneous"})
        )));
        assert!(ignores_extraneous(&object(
            json!({ARGO_COMPARE_OPTIONS: "ServerSideDiff=true, IgnoreExtraneous"})
        )));
        assert!(!ignores_extraneous(&object(
            json!({ARGO_SYNC_OPTIONS: "IgnoreExtraneous"})
        )));
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    #[test]
    fn stale_members_are_kept_pruned_or_pruned_last_by_their_live_annotations() {
        let stale = BTreeMap::from([
            (key("plain"), object(json!({}))),
            (
                key("never"),
                object(json!({ARGO_SYNC_OPTIONS: "Prune=false"})),
            ),
            (key("helm"), object(json!({HELM_RESOURCE_POLICY: "keep"}))),
            (
                key("last"),
                object(json!({OUR_SYNC_OPTIONS: "PruneLast=true"})),
            ),
        ]);
        let (pruned, kept, last) = split_stale(stale);
        assert_eq!(
            pruned.keys().collect::<Vec<_>>(),
            [&key("last"), &key("plain")]
        );
        assert_eq!(last, BTreeSet::from([key("last")]));
        let planned = PlannedOptions {
            kept,
            prune_last: last,
            warnings: Vec::new(),
        };
        assert_eq!(
            planned.kept_lines(),
            [
                "kept ConfigMap shop/helm (helm.sh/resource-policy: keep)",
                "kept ConfigMap shop/never (Prune=false)"
            ]
        );
        let steps = planned.prune_steps(BTreeSet::from([key("wanted")]));
        assert_eq!(steps.len(), 2);
        // First everything but the plain one stays; then the last one goes too.
        assert!(steps[0].contains(&key("last")) && !steps[0].contains(&key("plain")));
        assert!(!steps[1].contains(&key("last")));
        for step in &steps {
            assert!(step.contains(&key("never")) && step.contains(&key("helm")));
            assert!(step.contains(&key("wanted")));
        }
    }
}
