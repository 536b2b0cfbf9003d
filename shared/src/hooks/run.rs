//! Running hooks: each is created anew (its previous run deleted first, by its delete
//! policy), waited for until it has run to an end (a Job or Pod until it succeeds or fails,
//! anything else until healthy), and deleted after by its policy.
//!
//! Hooks are not members of the app's ApplySet: they carry [`HOOK_OF_LABEL`] instead, so
//! they can be found, and a prune never takes them for stale members.

use std::time::Duration;

use futures::future::join_all;
use kube::api::ListParams;
use serde_json::Value;
use tokio::time::Instant;

use crate::apply::health::{Health, assess, completion};
use crate::cancel::Cancel;
use crate::live::{LiveCluster, LiveError};
use crate::objects::ObjectKey;
use crate::objects::hook::{DeletePolicy, Hook, Occasion, Stage};
use crate::release::record::HookRun;

/// The label on every hook object a sync creates: the app's ApplySet id.
pub const HOOK_OF_LABEL: &str = "kubectl-gitops.io/hook-of";

/// How often a running hook is looked at.
const POLL: Duration = Duration::from_millis(500);

/// What the runs of a hook stage need: where, until when, and what stops them.
pub struct Runner<'a> {
    pub cluster: &'a LiveCluster,
    /// The app's ApplySet id, for [`HOOK_OF_LABEL`].
    pub app_id: &'a str,
    pub occasion: Occasion,
    /// The sync's deadline: a hook counts against `--timeout`.
    pub deadline: Instant,
    pub cancel: &'a Cancel,
}

/// How a hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    Failed(String),
    TimedOut(String),
    Interrupted,
}

impl Ending {
    fn word(&self) -> &'static str {
        match self {
            Ending::Succeeded => "succeeded",
            Ending::Failed(_) => "failed",
            Ending::TimedOut(_) => "timed-out",
            Ending::Interrupted => "interrupted",
        }
    }

    fn message(&self) -> Option<String> {
        match self {
            Ending::Failed(m) | Ending::TimedOut(m) => Some(m.clone()),
            Ending::Succeeded | Ending::Interrupted => None,
        }
    }
}

impl Runner<'_> {
    /// Runs `hooks` (one weight of one stage) at once and waits for each. The runs come
    /// back in the order of `hooks`.
    pub async fn run_group(&self, stage: Stage, hooks: &[&Hook]) -> Vec<HookRun> {
        join_all(hooks.iter().map(|hook| self.run_one(stage, hook))).await
    }

    async fn run_one(&self, stage: Stage, hook: &Hook) -> HookRun {
        let begun = jiff::Timestamp::now();
        let clock = Instant::now();
        let (key, ending, deleted) = match self.create(hook).await {
            Ok(key) => {
                let ending = self.wait(&key).await;
                let delete = match &ending {
                    Ending::Succeeded => hook.spec.delete.contains(&DeletePolicy::Succeeded),
                    Ending::Failed(_) => hook.spec.delete.contains(&DeletePolicy::Failed),
                    _ => false,
                };
                // A failed delete leaves the object, which the next run's
                // before-hook-creation removes; the run's result stands.
                let deleted = delete && self.cluster.delete(&key, None, false).await.is_ok();
                (key, ending, deleted)
            }
            Err(ending) => (hook.key.clone(), ending, false),
        };
        HookRun {
            key,
            stage: stage.as_str().to_string(),
            events: hook.spec.events_for(stage, self.occasion),
            result: ending.word().to_string(),
            started: begun,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            message: ending.message(),
            deleted,
        }
    }

    /// Creates the hook's object anew, labelled as this app's hook; its key as created.
    async fn create(&self, hook: &Hook) -> Result<ObjectKey, Ending> {
        if self.cancel.is_cancelled() {
            return Err(Ending::Interrupted);
        }
        if !hook.generated {
            self.clear_previous(hook).await?;
        }
        let mut object = hook.object.clone();
        label(&mut object, self.app_id);
        let created = self
            .cluster
            .put(&object, None, false)
            .await
            .map_err(|e| Ending::Failed(format!("could not be created: {e}")))?;
        let name = created
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(&hook.key.name);
        Ok(ObjectKey {
            name: name.to_string(),
            ..hook.key.clone()
        })
    }

    /// A named hook's previous run, deleted when its policy says so (waiting until it is
    /// gone, so the name is free), else refused: it would be taken for this run.
    async fn clear_previous(&self, hook: &Hook) -> Result<(), Ending> {
        let failed = |e: LiveError| {
            Ending::Failed(format!(
                "its previous run could not be read or deleted: {e}"
            ))
        };
        if self
            .cluster
            .get_key(&hook.key)
            .await
            .map_err(failed)?
            .is_none()
        {
            return Ok(());
        }
        if !hook.spec.delete.contains(&DeletePolicy::BeforeCreation) {
            return Err(Ending::Failed(format!(
                "{} exists from an earlier run and its delete policy does not include before-hook-creation: delete it, or add that policy",
                hook.key
            )));
        }
        self.cluster
            .delete(&hook.key, None, false)
            .await
            .map_err(failed)?;
        loop {
            if self
                .cluster
                .get_key(&hook.key)
                .await
                .map_err(failed)?
                .is_none()
            {
                return Ok(());
            }
            if Instant::now() >= self.deadline {
                return Err(Ending::TimedOut(
                    "its previous run was still being deleted".into(),
                ));
            }
            if self.pause().await.is_err() {
                return Err(Ending::Interrupted);
            }
        }
    }

    /// Waits until the hook has run to an end, the deadline passes, or the sync is
    /// stopped (then the hook is left running: it is the cluster's now).
    async fn wait(&self, key: &ObjectKey) -> Ending {
        loop {
            let last;
            match self.cluster.get_key(key).await {
                Ok(Some(object)) => match hook_completion(key, &object) {
                    Some(Ok(())) => return Ending::Succeeded,
                    Some(Err(message)) => {
                        return Ending::Failed(self.with_pod_message(key, message).await);
                    }
                    None => last = progress(&object),
                },
                Ok(None) => return Ending::Failed("deleted while it ran".into()),
                // A passing error: the next look may succeed; the deadline bounds it.
                Err(error) => last = format!("could not be read: {error}"),
            }
            if Instant::now() >= self.deadline {
                return Ending::TimedOut(format!("still running at the timeout ({last})"));
            }
            if self.pause().await.is_err() {
                return Ending::Interrupted;
            }
        }
    }

    /// A failed Job's message, with why its failed Pod failed when the Pod says (its
    /// termination message): the Job's condition alone only says that it failed.
    async fn with_pod_message(&self, job: &ObjectKey, message: String) -> String {
        if job.group != "batch" || job.kind != "Job" {
            return message;
        }
        let Some((pods, _)) = self.cluster.resolve("v1", "Pod") else {
            return message;
        };
        let params =
            ListParams::default().labels(&format!("batch.kubernetes.io/job-name={}", job.name));
        let Ok(listed) = self
            .cluster
            .list_selected(&pods, job.namespace.as_deref(), &params)
            .await
        else {
            return message;
        };
        let why = listed
            .iter()
            .find_map(|(_, pod)| completion(pod).and_then(Result::err));
        match why {
            Some(why) => format!("{message}; {why}"),
            None => message,
        }
    }

    /// Sleeps one poll interval (not past the deadline); Err when the sync was stopped.
    async fn pause(&self) -> Result<(), ()> {
        let until = (Instant::now() + POLL).min(self.deadline);
        tokio::select! {
            () = tokio::time::sleep_until(until) => Ok(()),
            () = self.cancel.cancelled() => Err(()),
        }
    }
}

/// Marks `object` as a hook of the app with ApplySet id `app_id`.
fn label(object: &mut Value, app_id: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(HOOK_OF_LABEL.into(), Value::from(app_id));
        }
    }
}

/// Whether the hook `key` names has run to an end: `Some(Ok)` succeeded, `Some(Err(why))`
/// failed, `None` still running. A Job or a Pod by the health module's [`completion`], any
/// other kind by its health (created and healthy is done, as Helm and Argo CD see it).
pub fn hook_completion(key: &ObjectKey, object: &Value) -> Option<Result<(), String>> {
    if matches!(
        (key.group.as_str(), key.kind.as_str()),
        ("batch", "Job") | ("", "Pod")
    ) {
        return completion(object);
    }
    match assess(object) {
        Health::Healthy => Some(Ok(())),
        Health::Failed(message) => Some(Err(message)),
        Health::Progressing(_) => None,
    }
}

/// What a running hook is doing, for the message of a timeout.
fn progress(object: &Value) -> String {
    match object.pointer("/status/phase").and_then(Value::as_str) {
        Some(phase) => format!("phase {phase}"),
        None => match assess(object) {
            Health::Progressing(message) => message,
            other => other.to_string(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn other_kinds_end_when_healthy() {
        let config_map =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        let key = |group: &str, kind: &str| ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: "x".into(),
        };
        assert_eq!(
            hook_completion(&key("", "ConfigMap"), &config_map),
            Some(Ok(()))
        );
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {}});
        assert_eq!(
            hook_completion(&key("batch", "Job"), &job),
            None,
            "a Job runs until it ends, healthy or not"
        );
    }

    #[test]
    fn a_hook_is_labelled_as_the_apps() {
        let mut object = json!({"metadata": {"generateName": "x-"}});
        label(&mut object, "applyset-abc-v1");
        assert_eq!(
            object["metadata"]["labels"][HOOK_OF_LABEL],
            "applyset-abc-v1"
        );
    }
}
