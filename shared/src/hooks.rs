//! A revision's hooks at the points of a sync where they run: which hooks a stage runs on
//! an occasion, in what order, and (in [`run`]) running them.
//!
//! Within a stage, hooks run by weight (Helm's `hook-weight`, Argo CD's `sync-wave`),
//! lowest first; hooks of one weight run at once, and the next weight starts when each of
//! them has finished. What a hook is and when it runs is read from its annotations
//! ([`crate::objects::hook`]).

pub mod run;

use std::collections::BTreeMap;

use crate::fingerprint::applied_hash;
use crate::objects::hook::{Hook, Occasion, Stage};
use crate::release::record::Operation;

/// The occasion of a sync: a rollback, an install when the app has no deployed release
/// yet, else an upgrade.
pub fn occasion(operation: Operation, deployed_before: bool) -> Occasion {
    match operation {
        Operation::Rollback => Occasion::Rollback,
        _ if deployed_before => Occasion::Upgrade,
        _ => Occasion::Install,
    }
}

/// The hooks that run in `stage` on `occasion`, grouped by weight in ascending order; each
/// group in Helm's install order of kinds, then by name.
pub fn for_stage(hooks: &[Hook], stage: Stage, occasion: Occasion) -> Vec<(i64, Vec<&Hook>)> {
    let mut groups: BTreeMap<i64, Vec<&Hook>> = BTreeMap::new();
    for hook in hooks {
        if hook.spec.stages(occasion).contains(&stage) {
            groups.entry(hook.spec.weight).or_default().push(hook);
        }
    }
    groups
        .into_iter()
        .map(|(weight, mut group)| {
            group.sort_by(|a, b| {
                crate::apply::order::install_rank(&a.key.kind)
                    .cmp(&crate::apply::order::install_rank(&b.key.kind))
                    .then_with(|| a.key.name.cmp(&b.key.name))
            });
            (weight, group)
        })
        .collect()
}

/// The Sync-stage hooks of one wave.
pub fn of_wave(hooks: &[Hook], wave: i64, occasion: Occasion) -> Vec<&Hook> {
    for_stage(hooks, Stage::Sync, occasion)
        .into_iter()
        .filter(|(weight, _)| *weight == wave)
        .flat_map(|(_, group)| group)
        .collect()
}

/// A hook that will not run: Argo CD's `Skip`, Helm's `test`.
pub fn never_run(hooks: &[Hook]) -> impl Iterator<Item = &Hook> {
    hooks.iter().filter(|h| h.spec.never_runs())
}

/// A digest of the hooks as the revision has them (`None` without hooks): a sync that
/// changes no object runs its hooks only when this differs from the deployed release's.
pub fn digest(hooks: &[Hook]) -> Option<String> {
    if hooks.is_empty() {
        return None;
    }
    let objects = hooks.iter().map(|h| h.object.clone()).collect();
    Some(applied_hash(&serde_json::Value::Array(objects)))
}

/// A hook as a preview shows it: where it would run, or that it never runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedHook {
    /// `PreSync`, `Sync`, `PostSync`, `SyncFail`, `PreDelete`, `PostDelete`, or `not run`
    /// for a hook that never runs (Argo CD's `Skip`, Helm's `test`).
    pub stage: String,
    /// `Job.batch shop/migrate-*` (a generated name ends in `*`).
    pub hook: String,
    /// The annotation words that make it run there.
    pub events: String,
    /// Its weight (Helm) or wave (Argo CD, and every Sync hook) within the stage.
    pub order: i64,
}

const STAGES: [Stage; 6] = [
    Stage::Pre,
    Stage::Sync,
    Stage::Post,
    Stage::Fail,
    Stage::PreDelete,
    Stage::PostDelete,
];

/// What each stage would run on `occasion`, stages in order, then the hooks that never run.
pub fn planned(hooks: &[Hook], occasion: Occasion) -> Vec<PlannedHook> {
    let mut out = Vec::new();
    for stage in STAGES {
        for (order, group) in for_stage(hooks, stage, occasion) {
            for hook in group {
                out.push(PlannedHook {
                    stage: stage.to_string(),
                    hook: hook.to_string(),
                    events: hook.spec.events_for(stage, occasion),
                    order,
                });
            }
        }
    }
    for hook in never_run(hooks) {
        out.push(PlannedHook {
            stage: "not run".into(),
            hook: hook.to_string(),
            events: hook
                .spec
                .events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(","),
            order: hook.spec.weight,
        });
    }
    out
}

/// One line per planned hook: `PreSync: Job.batch shop/migrate-* (pre-install, weight -1)`,
/// `not run: Pod shop/test (a helm test hook)`.
pub fn preview_lines(planned: &[PlannedHook]) -> Vec<String> {
    planned
        .iter()
        .map(|p| {
            if p.stage == "not run" {
                let why = if p.events == "Skip" {
                    "Skip"
                } else {
                    "a helm test hook"
                };
                return format!("not run: {} ({why})", p.hook);
            }
            let order = if p.events.chars().next().is_some_and(char::is_uppercase) {
                "wave"
            } else {
                "weight"
            };
            format!(
                "{}: {} ({}, {order} {})",
                p.stage, p.hook, p.events, p.order
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::objects::{BuiltinScopes, DesiredSet};
    use crate::render::parse_documents;

    const HOOKS: &str = "\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: \"-1\"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: seed
  annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: \"-1\"}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: check
  annotations: {argocd.argoproj.io/hook: PreSync}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: smoke
  annotations: {argocd.argoproj.io/hook: Sync, argocd.argoproj.io/sync-wave: \"2\"}
---
apiVersion: v1
kind: Pod
metadata:
  name: test
  annotations: {helm.sh/hook: test}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: member}
";

    fn set() -> DesiredSet {
        DesiredSet::build(
            parse_documents("hooks.yaml", HOOKS).unwrap(),
            "shop",
            &BuiltinScopes,
        )
        .unwrap()
    }

    #[test]
    fn hooks_are_not_members_and_run_by_stage_and_weight() {
        let set = set();
        assert_eq!(set.len(), 1, "only the ConfigMap is a member");
        assert_eq!(set.hooks().len(), 5);
        let pre = for_stage(set.hooks(), Stage::Pre, Occasion::Install);
        let names: Vec<(i64, Vec<String>)> = pre
            .iter()
            .map(|(w, g)| (*w, g.iter().map(|h| h.to_string()).collect()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    -1,
                    vec![
                        "ConfigMap shop/seed".to_string(),
                        "Job.batch shop/migrate-*".into()
                    ]
                ),
                (0, vec!["Job.batch shop/check".into()]),
            ]
        );
        // On an upgrade, the pre-install hooks stay out.
        let pre = for_stage(set.hooks(), Stage::Pre, Occasion::Upgrade);
        assert_eq!(pre.len(), 1);
        assert_eq!(of_wave(set.hooks(), 2, Occasion::Upgrade).len(), 1);
        assert!(of_wave(set.hooks(), 0, Occasion::Upgrade).is_empty());
    }

    #[test]
    fn the_preview_lists_each_stage_and_what_never_runs() {
        let set = set();
        assert_eq!(
            preview_lines(&planned(set.hooks(), Occasion::Install)),
            [
                "PreSync: ConfigMap shop/seed (pre-install, weight -1)",
                "PreSync: Job.batch shop/migrate-* (pre-install, weight -1)",
                "PreSync: Job.batch shop/check (PreSync, wave 0)",
                "Sync: Job.batch shop/smoke (Sync, wave 2)",
                "not run: Pod shop/test (a helm test hook)",
            ]
        );
    }

    #[test]
    fn the_digest_changes_with_the_hooks() {
        let set = set();
        let a = digest(set.hooks()).unwrap();
        assert_eq!(digest(&[]), None);
        let mut other = set.clone();
        other.hooks_mut()[0].object["spec"] = serde_json::json!({"x": 1});
        assert_ne!(digest(other.hooks()).unwrap(), a);
        assert_eq!(occasion(Operation::Sync, false), Occasion::Install);
        assert_eq!(occasion(Operation::Sync, true), Occasion::Upgrade);
        assert_eq!(occasion(Operation::Rollback, true), Occasion::Rollback);
    }
}
