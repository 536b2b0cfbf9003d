//! Health after apply: is an object what its manifest asked for yet, still getting there,
//! or stuck?
//!
//! The rules follow kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus/status`), the library
//! `kubectl apply --wait`-style tools (kpt, Flux, Config Sync) share, so our verdicts match
//! theirs. In order:
//! 1. generic, for every kind: an object being deleted is progressing; so is one whose
//!    controller has not yet observed its latest `metadata.generation`; a `Stalled`
//!    condition that is True is a failure, a `Reconciling` one that is True is progress;
//! 2. rules for the kinds Kubernetes itself serves (see [`rules`]);
//! 3. for every other kind, a `Ready` condition: True is healthy, anything else is progress
//!    (controllers set it False while they work); no `Ready` condition at all is healthy
//!    (ConfigMaps, Secrets, RBAC, most CRs).
//!
//! Where we differ from kstatus, on purpose (the same table, with the reasons, is in
//! docs/health.md; each rule says why where it is written):
//!
//! | object | kstatus | here |
//! |---|---|---|
//! | Job, started and running | current | progressing until Complete |
//! | Job, suspended | in progress until started | healthy |
//! | Pod in phase Failed | current | failed, with the container's termination message |
//! | Pod unschedulable | failed after 15 s | progressing until the timeout |
//! | StatefulSet, OnDelete | current at once | waits for its replicas to be ready |
//! | DaemonSet, OnDelete | waits for every pod updated | does not wait for updates |
//! | Deployment, paused, rolled out | in progress (no NewReplicaSetAvailable) | healthy |
//! | PersistentVolumeClaim, Lost | in progress | failed |
//! | workload whose status has no observedGeneration yet | judged by the rest of its status | progressing until observed |
//! | other kinds: `Ready` not True | current (reads only Reconciling, Stalled) | progressing |
//!
//! Where kstatus was followed after a look at its source (`core.go`): a
//! PodDisruptionBudget is healthy once observed, however many pods are healthy; a
//! StatefulSet with a partition (the API server defaults it to 0) counts updatedReplicas,
//! one without counts currentReplicas and compares the revisions.
//!
//! [`assess`] is pure, so every rule is tested without a cluster; [`wait_healthy`] polls
//! the live objects and applies it.

mod completion;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub use completion::completion;

use crate::live::{LiveCluster, LiveError};
use crate::objects::{ObjectKey, group_of};

/// Where an object stands after apply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum Health {
    /// What the manifest asked for is in place (kstatus: Current).
    Healthy,
    /// Not there yet; the message says what is missing (kstatus: InProgress, Terminating).
    Progressing(String),
    /// Will not get there by waiting; the message says why (kstatus: Failed).
    Failed(String),
}

impl Health {
    /// Whether waiting longer cannot change the verdict of one assessment: healthy or failed.
    pub fn is_final(&self) -> bool {
        !matches!(self, Health::Progressing(_))
    }

    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Health::Failed(_))
    }

    /// The message of a progressing or failed object.
    pub fn message(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Progressing(message) | Health::Failed(message) => Some(message),
        }
    }
}

/// `healthy`, `progressing: 1/2 replicas ready`, `failed: progress deadline exceeded`.
impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Progressing(message) => write!(f, "progressing: {message}"),
            Health::Failed(message) => write!(f, "failed: {message}"),
        }
    }
}

/// The health of one live object, as the API server returned it (status included).
pub fn assess(object: &Value) -> Health {
    if let Some(health) = generic(object) {
        return health;
    }
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(group_of)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    rules::for_kind(group, kind, object).unwrap_or_else(|| rules::ready_condition(object))
}

/// Kinds whose controllers always write `status.observedGeneration`: until they do, the
/// rest of their status describes nothing yet (a Deployment with zero replicas would
/// otherwise look done before its controller has seen it).
const ALWAYS_OBSERVED: &[(&str, &str)] = &[
    ("apps", "DaemonSet"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("", "ReplicationController"),
    ("policy", "PodDisruptionBudget"),
];

/// kstatus's generic checks, which hold for every kind. `None`: they decide nothing.
fn generic(object: &Value) -> Option<Health> {
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Some(Health::Progressing("being deleted".into()));
    }
    if let Some(generation) = rules::int(object, "/metadata/generation") {
        let observed = rules::int(object, "/status/observedGeneration");
        let always_observed = || {
            let group = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .and_then(group_of);
            let kind = object.get("kind").and_then(Value::as_str);
            ALWAYS_OBSERVED
                .iter()
                .any(|(g, k)| Some(*g) == group && Some(*k) == kind)
        };
        // Only a status that claims to describe an older generation is stale; most kinds
        // without observedGeneration never write one.
        let stale = match observed {
            Some(observed) => observed < generation,
            None => always_observed(),
        };
        if stale {
            return Some(Health::Progressing(format!(
                "waiting for the controller to observe generation {generation}"
            )));
        }
    }
    let conditions = rules::conditions(object);
    // Stalled before Reconciling: a controller that says both has given up on this round.
    if let Some(stalled) = conditions
        .iter()
        .find(|c| c.kind == "Stalled" && c.status == "True")
    {
        return Some(Health::Failed(stalled.describe("stalled")));
    }
    if let Some(reconciling) = conditions
        .iter()
        .find(|c| c.kind == "Reconciling" && c.status == "True")
    {
        return Some(Health::Progressing(reconciling.describe("reconciling")));
    }
    None
}

/// How long to wait, and how often to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// How long to wait for every object to become healthy.
    pub timeout: Duration,
    /// Time between two rounds of LISTs.
    pub poll_interval: Duration,
}

/// Helm's `--wait` default of five minutes, polled every second.
impl Default for WaitOptions {
    fn default() -> WaitOptions {
        WaitOptions {
            timeout: Duration::from_secs(5 * 60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// The shortest pause between rounds, so a zero poll interval cannot hammer the server.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot read the health of {count} object(s): {source}")]
    Fetch {
        count: usize,
        #[source]
        source: LiveError,
    },
}

/// Waits until every object in `keys` is healthy, any has failed, or the timeout passes,
/// and returns the last health of every key. A timeout is not an error: the objects still
/// progressing are in the map with what they are missing, for the caller to report.
///
/// Each round is one LIST per kind and namespace of the objects not yet healthy; an object
/// that was healthy once is not looked at again (it already got where it was going, and a
/// finished Job may be cleaned away by its TTL). `on_change` hears every new verdict,
/// the first one included, for a progress display. One round always runs, even with a zero
/// timeout; the deadline is checked between rounds.
///
/// An object the LIST does not return is `Failed("not found")`: it was applied just before,
/// so it was deleted since. A kind the server does not serve fails the same way, with its
/// name: the [`LiveCluster`] discovered kinds when it connected, so a caller that created
/// a CRD in the same sync connects again (re-discovers) before waiting on its objects.
pub async fn wait_healthy(
    cluster: &LiveCluster,
    keys: &[ObjectKey],
    options: &WaitOptions,
    on_change: &mut (dyn FnMut(&ObjectKey, &Health) + Send),
) -> Result<BTreeMap<ObjectKey, Health>, HealthError> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut pending: BTreeSet<ObjectKey> = keys.iter().cloned().collect();
    let mut healths: BTreeMap<ObjectKey, Health> = BTreeMap::new();
    loop {
        let live = cluster
            .fetch(&pending)
            .await
            .map_err(|source| HealthError::Fetch {
                count: pending.len(),
                source,
            })?;
        for key in &pending {
            let health = match live.get(key) {
                Some(object) => assess(object),
                None if cluster.resolve_kind(&key.group, &key.kind).is_none() => Health::Failed(
                    format!("{} is not served by the API server", key.group_kind()),
                ),
                None => Health::Failed("not found".into()),
            };
            if healths.get(key) != Some(&health) {
                on_change(key, &health);
                healths.insert(key.clone(), health);
            }
        }
        pending.retain(|key| !healths.get(key).is_some_and(Health::is_healthy));
        let failed = pending
            .iter()
            .any(|key| healths.get(key).is_some_and(Health::is_failed));
        let now = tokio::time::Instant::now();
        if pending.is_empty() || failed || now >= deadline {
            return Ok(healths);
        }
        let pause = options
            .poll_interval
            .max(MIN_POLL_INTERVAL)
            .min(deadline - now);
        tokio::time::sleep(pause).await;
    }
}
