//! The health rules of the kinds Kubernetes itself serves, after kstatus's
//! "legacy conditions" functions, and the `Ready` condition for everything else.
//!
//! Each rule reads the status the controller wrote and says what is still missing, in the
//! user's words ("1/2 replicas ready"), checking the cause a user can act on first.

use serde_json::Value;

use super::Health;

/// The rule for `group`/`kind`, or `None` if the kind has none (the caller falls back to
/// the `Ready` condition).
pub(super) fn for_kind(group: &str, kind: &str, object: &Value) -> Option<Health> {
    let health = match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => replica_set(object),
        ("batch", "Job") => job(object),
        ("", "Pod") => pod(object),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(object),
        ("", "Namespace") => namespace(object),
        // kstatus only waits for a LoadBalancer's cluster IP, which the API server assigns
        // on create; an ingress address may never come (bare metal, our test cluster).
        ("", "Service") => Health::Healthy,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => custom_resource_definition(object),
        ("policy", "PodDisruptionBudget") => pod_disruption_budget(object),
        _ => return None,
    };
    Some(health)
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Condition<'a> {
    /// The condition's `type`.
    pub kind: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub observed_generation: Option<i64>,
}

impl Condition<'_> {
    /// `what: Reason: message`, leaving out the parts the controller left empty.
    pub fn describe(&self, what: &str) -> String {
        join(&[what, self.reason, self.message])
    }
}

/// The non-empty parts, joined with `: `.
pub(super) fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(": ")
}

/// `status.conditions`, skipping entries without a type; empty when there are none or the
/// field is not a list (some custom resources keep a map there).
pub(super) fn conditions(object: &Value) -> Vec<Condition<'_>> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    let kind = str_of(c.get("type"))?;
                    Some(Condition {
                        kind,
                        status: text(c, "status"),
                        reason: text(c, "reason"),
                        message: text(c, "message"),
                        observed_generation: c.get("observedGeneration").and_then(as_int),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(condition: &'a Value, field: &str) -> &'a str {
    str_of(condition.get(field)).unwrap_or_default()
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<Condition<'a>> {
    conditions(object).into_iter().find(|c| c.kind == kind)
}

fn condition_true<'a>(object: &'a Value, kind: &str) -> Option<Condition<'a>> {
    condition(object, kind).filter(|c| c.status == "True")
}

fn str_of(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

/// Integers as JSON numbers; status fields are never strings, but be lenient with floats
/// a client may have produced (`2.0`).
fn as_int(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            // Checked just above: a whole number well inside i64's range.
            .map(|f| f as i64)
    })
}

pub(super) fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(as_int)
}

/// A count from the status; controllers omit zero counts.
fn count(object: &Value, pointer: &str) -> i64 {
    int(object, pointer).unwrap_or(0)
}

/// `spec.replicas`, which the API server defaults to 1.
fn wanted_replicas(object: &Value) -> i64 {
    int(object, "/spec/replicas").unwrap_or(1)
}

fn string<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    str_of(object.pointer(pointer))
}

fn progressing(message: impl Into<String>) -> Health {
    Health::Progressing(message.into())
}

/// Deployments: all replicas updated, ready and available, no old ones left, and the
/// controller's own verdict (conditions) agreeing. A passed progress deadline fails.
fn deployment(object: &Value) -> Health {
    let progressing_condition = condition(object, "Progressing");
    if let Some(c) = progressing_condition.filter(|c| c.reason == "ProgressDeadlineExceeded") {
        return Health::Failed(join(&["progress deadline exceeded", c.message]));
    }
    // Pods the ReplicaSet cannot create (quota, admission): the counts below would only
    // say "0/2", this says why. Still progress: a freed quota lets it continue, and the
    // progress deadline turns it into a failure.
    if let Some(c) = condition_true(object, "ReplicaFailure") {
        return progressing(c.describe("replica failure"));
    }
    let paused = object
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let waiting = |message: String| {
        if paused {
            progressing(format!("paused: {message}"))
        } else {
            progressing(message)
        }
    };
    let want = wanted_replicas(object);
    let replicas = count(object, "/status/replicas");
    let updated = count(object, "/status/updatedReplicas");
    let ready = count(object, "/status/readyReplicas");
    let available = count(object, "/status/availableReplicas");
    if updated < want {
        return waiting(format!("{updated}/{want} replicas updated"));
    }
    if ready < want {
        return waiting(format!("{ready}/{want} replicas ready"));
    }
    if available < want {
        return waiting(format!("{available}/{want} replicas available"));
    }
    if replicas > updated {
        return waiting(format!(
            "{} old replicas pending termination",
            replicas - updated
        ));
    }
    // kstatus: without a progress deadline (unset, or the "never" value i32::MAX) the
    // controller never reports NewReplicaSetAvailable, so only the counts can tell; a
    // paused Deployment reports DeploymentPaused instead.
    let has_deadline = int(object, "/spec/progressDeadlineSeconds")
        .is_some_and(|seconds| seconds != i64::from(i32::MAX));
    if has_deadline && !paused {
        match progressing_condition {
            Some(c) if c.status == "True" && c.reason == "NewReplicaSetAvailable" => {}
            Some(c) => return progressing(c.describe("rollout in progress")),
            None => return progressing("rollout in progress"),
        }
    }
    match condition(object, "Available") {
        Some(c) if c.status == "True" => Health::Healthy,
        Some(c) => progressing(c.describe("not available")),
        None => progressing("not available"),
    }
}

/// StatefulSets, as kstatus judges them: all replicas created and ready, none extra, then
/// the rollout. A partition (the API server defaults it to 0 for RollingUpdate, so live
/// objects have one) means the ordinals at or above it must be updated; without one, every
/// replica must be current and the revisions equal. The controller moves currentRevision
/// in the same status write that counts the last replica updated and ready, so the two
/// roads agree.
fn stateful_set(object: &Value) -> Health {
    let want = wanted_replicas(object);
    let replicas = count(object, "/status/replicas");
    let ready = count(object, "/status/readyReplicas");
    if replicas < want {
        return progressing(format!("{replicas}/{want} replicas created"));
    }
    if ready < want {
        return progressing(format!("{ready}/{want} replicas ready"));
    }
    if replicas > want {
        return progressing(format!(
            "{} extra replicas pending termination",
            replicas - want
        ));
    }
    // OnDelete: the user replaces pods, the controller never rolls them, so the revision
    // says nothing about progress. kstatus stops here without even the ready check; a
    // sync still wants the replicas it asked for to be ready.
    if string(object, "/spec/updateStrategy/type") == Some("OnDelete") {
        return Health::Healthy;
    }
    if let Some(partition) = int(object, "/spec/updateStrategy/rollingUpdate/partition") {
        let target = (want - partition).max(0);
        let updated = count(object, "/status/updatedReplicas");
        if updated < target {
            return progressing(if partition > 0 {
                format!("{updated}/{target} replicas updated (partition {partition})")
            } else {
                format!("{updated}/{target} replicas updated")
            });
        }
        return Health::Healthy;
    }
    let current = count(object, "/status/currentReplicas");
    let updated = count(object, "/status/updatedReplicas");
    let current_revision = string(object, "/status/currentRevision");
    let update_revision = string(object, "/status/updateRevision");
    if current_revision != update_revision {
        // Mid-rollout the updated count says how far it got; kstatus only says "waiting".
        if updated < want {
            return progressing(format!("{updated}/{want} replicas updated"));
        }
        return progressing(format!(
            "waiting for revision {} to replace {}",
            update_revision.unwrap_or("(none)"),
            current_revision.unwrap_or("(none)")
        ));
    }
    if current < want {
        return progressing(format!("{current}/{want} replicas on the current revision"));
    }
    Health::Healthy
}

/// DaemonSets: a pod scheduled, updated, ready and available on every node that should
/// run one.
fn daemon_set(object: &Value) -> Health {
    let Some(desired) = int(object, "/status/desiredNumberScheduled") else {
        return progressing("waiting for the controller to count the nodes to run on");
    };
    let scheduled = count(object, "/status/currentNumberScheduled");
    let updated = count(object, "/status/updatedNumberScheduled");
    let ready = count(object, "/status/numberReady");
    let available = count(object, "/status/numberAvailable");
    if scheduled < desired {
        return progressing(format!("{scheduled}/{desired} pods scheduled"));
    }
    // OnDelete: pods are only replaced when the user deletes them, so "updated" never
    // catches up on its own (kstatus waits anyway, and would time out).
    if string(object, "/spec/updateStrategy/type") != Some("OnDelete") && updated < desired {
        return progressing(format!("{updated}/{desired} pods updated"));
    }
    if ready < desired {
        return progressing(format!("{ready}/{desired} pods ready"));
    }
    if available < desired {
        return progressing(format!("{available}/{desired} pods available"));
    }
    Health::Healthy
}

/// ReplicaSets and ReplicationControllers: all replicas ready and available, no extras.
fn replica_set(object: &Value) -> Health {
    if let Some(c) = condition_true(object, "ReplicaFailure") {
        return progressing(c.describe("replica failure"));
    }
    let want = wanted_replicas(object);
    let replicas = count(object, "/status/replicas");
    let ready = count(object, "/status/readyReplicas");
    let available = count(object, "/status/availableReplicas");
    if ready < want {
        return progressing(format!("{ready}/{want} replicas ready"));
    }
    if available < want {
        return progressing(format!("{available}/{want} replicas available"));
    }
    if replicas > want {
        return progressing(format!(
            "{} extra replicas pending termination",
            replicas - want
        ));
    }
    Health::Healthy
}

/// Jobs: healthy once complete, failed once failed. Unlike kstatus (which calls a started
/// Job current), a running Job is progressing: a sync that applies a Job, a migration
/// say, means "run this", and should report whether it ran.
fn job(object: &Value) -> Health {
    if condition_true(object, "Complete").is_some() {
        return Health::Healthy;
    }
    // FailureTarget comes first: the controller has decided, and is only waiting for the
    // pods to terminate before it writes Failed.
    for kind in ["Failed", "FailureTarget"] {
        if let Some(c) = condition_true(object, kind) {
            return Health::Failed(c.describe("job failed"));
        }
    }
    // A suspended Job runs when someone resumes it (a queue such as Kueue, or the user):
    // waiting for that is not what a sync is for.
    if object
        .pointer("/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Health::Healthy;
    }
    if object.pointer("/status/startTime").is_none() {
        return progressing("waiting for the job controller to start it");
    }
    let active = count(object, "/status/active");
    let succeeded = count(object, "/status/succeeded");
    let failed = count(object, "/status/failed");
    let mut message = match int(object, "/spec/completions") {
        Some(completions) => format!("{active} active, {succeeded}/{completions} succeeded"),
        None => format!("{active} active, {succeeded} succeeded"),
    };
    if failed > 0 {
        message.push_str(&format!(", {failed} failed"));
    }
    progressing(message)
}

/// Container waiting reasons that mean the container cannot start as specified; reported
/// as progress with the reason (an image may still be pushed, a Secret still created).
const STUCK_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Pods: Ready, or finished successfully. A Failed Pod has failed, with the reason a
/// user can act on (an eviction, a container's termination message). kstatus calls it
/// current ("completed, but not successfully"); but phase Failed is final whatever the
/// restart policy (the kubelet restarts containers, never a failed Pod), so waiting
/// cannot help, and for a hook or a one-off Pod it is the failure the sync must report.
fn pod(object: &Value) -> Health {
    match string(object, "/status/phase") {
        Some("Succeeded") => return Health::Healthy,
        Some("Failed") => return Health::Failed(join(&["pod failed", &pod_failure(object)])),
        _ => {}
    }
    if condition_true(object, "Ready").is_some() {
        return Health::Healthy;
    }
    let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|pointer| object.pointer(pointer).and_then(Value::as_array))
        .flatten();
    for status in statuses {
        let name = str_of(status.get("name")).unwrap_or("?");
        let Some(waiting) = status.pointer("/state/waiting") else {
            continue;
        };
        let reason = str_of(waiting.get("reason")).unwrap_or_default();
        let message = str_of(waiting.get("message")).unwrap_or_default();
        let describe = |what: String| join(&[&what, reason, message]);
        // kstatus: a crash-looping container has failed; it restarts forever otherwise.
        if reason == "CrashLoopBackOff" {
            return Health::Failed(describe(format!("container {name} is crash-looping")));
        }
        if STUCK_WAITING.contains(&reason) {
            return progressing(describe(format!("container {name} cannot start")));
        }
    }
    if let Some(c) = condition(object, "PodScheduled").filter(|c| c.status == "False") {
        return progressing(join(&["not scheduled", c.message]));
    }
    match string(object, "/status/phase") {
        None => progressing("waiting to be scheduled"),
        Some(phase) => progressing(format!("{} and not ready", phase.to_lowercase())),
    }
}

/// PersistentVolumeClaims: bound to a volume.
fn persistent_volume_claim(object: &Value) -> Health {
    match string(object, "/status/phase") {
        Some("Bound") => Health::Healthy,
        // The volume it was bound to is gone; kstatus waits, but nothing brings it back.
        Some("Lost") => Health::Failed("its bound volume is lost".into()),
        Some(phase) => progressing(format!("waiting to be bound (phase {phase})")),
        None => progressing("waiting to be bound"),
    }
}

/// Namespaces: Active (Terminating is caught earlier by the deletion timestamp).
fn namespace(object: &Value) -> Health {
    match string(object, "/status/phase") {
        Some("Active") => Health::Healthy,
        Some(phase) => progressing(format!("phase {phase}")),
        None => progressing("waiting to become active"),
    }
}

/// CustomResourceDefinitions: Established, so their kind is served. Names another CRD
/// already uses fail, as does an Established=False for any reason but installing.
fn custom_resource_definition(object: &Value) -> Health {
    if let Some(c) = condition(object, "NamesAccepted").filter(|c| c.status == "False") {
        return Health::Failed(c.describe("names not accepted"));
    }
    match condition(object, "Established") {
        Some(c) if c.status == "True" => Health::Healthy,
        Some(c) if c.status == "False" && c.reason != "Installing" => {
            Health::Failed(c.describe("not established"))
        }
        _ => progressing("waiting to be established"),
    }
}

/// PodDisruptionBudgets: healthy once the disruption controller has observed the budget
/// (the generic observedGeneration check, before this), as kstatus has it. Too few healthy
/// pods is a statement about the pods the budget selects, which have their own health;
/// waiting on it would hold up the sync of an app whose pods are still starting, and a
/// budget for pods of another app could hold it forever.
fn pod_disruption_budget(_object: &Value) -> Health {
    Health::Healthy
}

/// Any other kind: a `Ready` condition if it has one, healthy if not. A Ready condition
/// written for an older generation describes the old spec, so it is still progress.
pub(super) fn ready_condition(object: &Value) -> Health {
    let Some(ready) = condition(object, "Ready") else {
        return Health::Healthy;
    };
    if let (Some(generation), Some(observed)) = (
        int(object, "/metadata/generation"),
        ready.observed_generation,
    ) && observed < generation
    {
        return progressing(format!(
            "waiting for the controller to observe generation {generation}"
        ));
    }
    match ready.status {
        "True" => Health::Healthy,
        // Ready=False is progress: controllers report their work this way, and the ones
        // that give up say so with Stalled (checked before this). Upstream kstatus reads
        // only Reconciling and Stalled, and would call this current.
        _ => progressing(ready.describe("not ready")),
    }
}

/// Why a Pod in phase Failed failed: its own reason and message, then its first failed
/// container's (init containers first: they run first). Empty when nothing says.
pub(super) fn pod_failure(object: &Value) -> String {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let pod_level = join(&[text("/status/reason"), text("/status/message")]);
    let container = failed_container(object);
    match container {
        Some(container) if !pod_level.is_empty() => format!("{pod_level}; {container}"),
        Some(container) => container,
        None => pod_level,
    }
}

/// `container NAME: MESSAGE`, or `container NAME: REASON (exit code N)`, for the first
/// container that terminated with a non-zero exit code, else the first that terminated.
fn failed_container(object: &Value) -> Option<String> {
    let terminated: Vec<(&str, &Value)> =
        ["/status/initContainerStatuses", "/status/containerStatuses"]
            .iter()
            .filter_map(|pointer| object.pointer(pointer).and_then(Value::as_array))
            .flatten()
            .filter_map(|status| {
                let name = status.get("name").and_then(Value::as_str).unwrap_or("?");
                Some((name, status.pointer("/state/terminated")?))
            })
            .collect();
    let exit_code = |state: &Value| state.get("exitCode").and_then(Value::as_i64);
    let (name, state) = terminated
        .iter()
        .find(|(_, state)| exit_code(state).is_some_and(|code| code != 0))
        .or_else(|| terminated.first())?;
    let field = |key: &str| {
        state
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
    };
    let detail = if !field("message").is_empty() {
        field("message").to_string()
    } else {
        let reason = match field("reason") {
            "" => "terminated",
            reason => reason,
        };
        match exit_code(state) {
            Some(code) => format!("{reason} (exit code {code})"),
            None => reason.to_string(),
        }
    };
    Some(format!("container {name}: {detail}"))
}
