//! Unit tests of the health rules: one fixture per rule, messages included. The fixtures
//! are trimmed live objects, with the fields the controllers really write.

use serde_json::{Value, json};

use super::{Health, WaitOptions, assess, completion};

fn progressing(message: &str) -> Health {
    Health::Progressing(message.into())
}

fn failed(message: &str) -> Health {
    Health::Failed(message.into())
}

/// An object of `api_version`/`kind` with `extra` merged into it (metadata, spec, status).
fn object(api_version: &str, kind: &str, extra: Value) -> Value {
    let mut object = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "app"},
    });
    if let (Some(target), Value::Object(fields)) = (object.as_object_mut(), extra) {
        for (key, value) in fields {
            match (target.get_mut(&key), value) {
                (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
                (_, value) => {
                    target.insert(key, value);
                }
            }
        }
    }
    object
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}

// ---- Health itself

#[test]
fn display_names_the_state_and_the_message() {
    assert_eq!(Health::Healthy.to_string(), "healthy");
    assert_eq!(
        progressing("1/2 replicas ready").to_string(),
        "progressing: 1/2 replicas ready"
    );
    assert_eq!(
        failed("progress deadline exceeded").to_string(),
        "failed: progress deadline exceeded"
    );
}

#[test]
fn only_progressing_is_not_final() {
    assert!(Health::Healthy.is_final());
    assert!(failed("x").is_final());
    assert!(!progressing("x").is_final());
    assert_eq!(progressing("x").message(), Some("x"));
    assert_eq!(Health::Healthy.message(), None);
}

#[test]
fn serializes_as_status_and_message() {
    assert_eq!(
        serde_json::to_value(Health::Healthy).unwrap(),
        json!({"status": "healthy"})
    );
    assert_eq!(
        serde_json::to_value(progressing("1/2 replicas ready")).unwrap(),
        json!({"status": "progressing", "message": "1/2 replicas ready"})
    );
    assert_eq!(
        serde_json::to_value(failed("not found")).unwrap(),
        json!({"status": "failed", "message": "not found"})
    );
}

#[test]
fn default_wait_is_five_minutes_polled_every_second() {
    let options = WaitOptions::default();
    assert_eq!(options.timeout, std::time::Duration::from_secs(300));
    assert_eq!(options.poll_interval, std::time::Duration::from_secs(1));
}

// ---- generic rules

#[test]
fn plain_objects_without_status_are_healthy() {
    assert_eq!(
        assess(&object("v1", "ConfigMap", json!({"data": {"a": "b"}}))),
        Health::Healthy
    );
    assert_eq!(
        assess(&object("v1", "Secret", json!({"type": "Opaque"}))),
        Health::Healthy
    );
    assert_eq!(
        assess(&object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            json!({"rules": []})
        )),
        Health::Healthy
    );
    assert_eq!(assess(&json!("not an object")), Health::Healthy);
}

#[test]
fn an_object_being_deleted_is_progressing() {
    let cm = object(
        "v1",
        "ConfigMap",
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}}),
    );
    assert_eq!(assess(&cm), progressing("being deleted"));
}

#[test]
fn an_unobserved_generation_is_progressing() {
    let cr = object(
        "example.com/v1",
        "Widget",
        json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2,
            "conditions": [condition("Ready", "True", "Ok", "")]}}),
    );
    assert_eq!(
        assess(&cr),
        progressing("waiting for the controller to observe generation 3")
    );
}

#[test]
fn a_custom_resource_without_observed_generation_is_judged_by_its_conditions() {
    let cr = object(
        "example.com/v1",
        "Widget",
        json!({"metadata": {"generation": 3}}),
    );
    assert_eq!(assess(&cr), Health::Healthy);
}

#[test]
fn workloads_without_observed_generation_wait_for_their_controller() {
    // Zero replicas: every count already matches, only the missing observation tells.
    let deployment = object(
        "apps/v1",
        "Deployment",
        json!({"metadata": {"generation": 1}, "spec": {"replicas": 0}}),
    );
    assert_eq!(
        assess(&deployment),
        progressing("waiting for the controller to observe generation 1")
    );
}

#[test]
fn stalled_fails_and_wins_over_reconciling() {
    let cr = object(
        "example.com/v1",
        "Widget",
        json!({"status": {"conditions": [
            condition("Reconciling", "True", "Progressing", "working"),
            condition("Stalled", "True", "InvalidSpec", "spec.size must be positive"),
        ]}}),
    );
    assert_eq!(
        assess(&cr),
        failed("stalled: InvalidSpec: spec.size must be positive")
    );
}

#[test]
fn reconciling_is_progressing() {
    let cr = object(
        "example.com/v1",
        "Widget",
        json!({"status": {"conditions": [
            condition("Reconciling", "True", "Progressing", "creating the bucket"),
            condition("Stalled", "False", "", ""),
        ]}}),
    );
    assert_eq!(
        assess(&cr),
        progressing("reconciling: Progressing: creating the bucket")
    );
}

#[test]
fn ready_condition_decides_for_other_kinds() {
    let with_ready = |status: &str| {
        object(
            "example.com/v1",
            "Widget",
            json!({"status": {"conditions": [condition("Ready", status, "Waiting", "bucket pending")]}}),
        )
    };
    assert_eq!(assess(&with_ready("True")), Health::Healthy);
    // kstatus: Ready=False is work in progress, not a failure.
    assert_eq!(
        assess(&with_ready("False")),
        progressing("not ready: Waiting: bucket pending")
    );
    assert_eq!(
        assess(&with_ready("Unknown")),
        progressing("not ready: Waiting: bucket pending")
    );
}

#[test]
fn a_ready_condition_for_an_older_generation_is_stale() {
    let cr = object(
        "example.com/v1",
        "Widget",
        json!({"metadata": {"generation": 2}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Ok", "observedGeneration": 1}
        ]}}),
    );
    assert_eq!(
        assess(&cr),
        progressing("waiting for the controller to observe generation 2")
    );
}

#[test]
fn conditions_that_are_not_a_list_are_ignored() {
    let cr = object(
        "example.com/v1",
        "Widget",
        json!({"status": {"conditions": {"Ready": "False"}}}),
    );
    assert_eq!(assess(&cr), Health::Healthy);
}

// ---- Deployment

fn deployment(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    if let Some(spec) = spec.as_object_mut() {
        spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    }
    object(
        "apps/v1",
        "Deployment",
        json!({"metadata": {"generation": 1}, "spec": spec, "status": status}),
    )
}

fn deployment_status(replicas: i64, updated: i64, ready: i64, available: i64) -> Value {
    json!({
        "observedGeneration": 1,
        "replicas": replicas, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": available,
        "conditions": [
            condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
            condition("Progressing", "True", "NewReplicaSetAvailable", "ReplicaSet \"web-1\" has successfully progressed."),
        ],
    })
}

#[test]
fn deployment_with_every_replica_updated_ready_and_available_is_healthy() {
    let d = deployment(json!({"replicas": 2}), deployment_status(2, 2, 2, 2));
    assert_eq!(assess(&d), Health::Healthy);
}

#[test]
fn deployment_replicas_default_to_one() {
    assert_eq!(
        assess(&deployment(json!({}), deployment_status(1, 1, 1, 1))),
        Health::Healthy
    );
    assert_eq!(
        assess(&deployment(json!({}), deployment_status(1, 1, 0, 0))),
        progressing("0/1 replicas ready")
    );
}

#[test]
fn deployment_with_zero_replicas_is_healthy_once_observed() {
    let d = deployment(json!({"replicas": 0}), deployment_status(0, 0, 0, 0));
    assert_eq!(assess(&d), Health::Healthy);
}

#[test]
fn deployment_messages_say_what_is_missing() {
    let spec = json!({"replicas": 2});
    assert_eq!(
        assess(&deployment(spec.clone(), deployment_status(2, 1, 2, 2))),
        progressing("1/2 replicas updated")
    );
    assert_eq!(
        assess(&deployment(spec.clone(), deployment_status(2, 2, 1, 1))),
        progressing("1/2 replicas ready")
    );
    assert_eq!(
        assess(&deployment(spec.clone(), deployment_status(2, 2, 2, 1))),
        progressing("1/2 replicas available")
    );
    assert_eq!(
        assess(&deployment(spec, deployment_status(3, 2, 2, 2))),
        progressing("1 old replicas pending termination")
    );
}

#[test]
fn deployment_past_its_progress_deadline_has_failed() {
    let mut status = deployment_status(2, 2, 0, 0);
    status["conditions"] = json!([
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability."
        ),
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            "ReplicaSet \"web-1\" has timed out progressing."
        ),
    ]);
    assert_eq!(
        assess(&deployment(json!({"replicas": 2}), status)),
        failed("progress deadline exceeded: ReplicaSet \"web-1\" has timed out progressing.")
    );
}

#[test]
fn deployment_that_cannot_create_pods_says_why() {
    let mut status = deployment_status(0, 0, 0, 0);
    status["conditions"] = json!([condition(
        "ReplicaFailure",
        "True",
        "FailedCreate",
        "pods \"web-1-x\" is forbidden: exceeded quota"
    ),]);
    assert_eq!(
        assess(&deployment(json!({"replicas": 2}), status)),
        progressing("replica failure: FailedCreate: pods \"web-1-x\" is forbidden: exceeded quota")
    );
}

#[test]
fn deployment_waits_for_the_controller_to_call_the_rollout_complete() {
    let mut status = deployment_status(2, 2, 2, 2);
    status["conditions"][1] = condition(
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        "ReplicaSet \"web-2\" is progressing.",
    );
    assert_eq!(
        assess(&deployment(json!({"replicas": 2}), status.clone())),
        progressing("rollout in progress: ReplicaSetUpdated: ReplicaSet \"web-2\" is progressing.")
    );
    // Without a progress deadline the controller never says so: the counts decide.
    let mut no_deadline = deployment(json!({"replicas": 2}), status);
    no_deadline["spec"]["progressDeadlineSeconds"] = json!(i32::MAX);
    assert_eq!(assess(&no_deadline), Health::Healthy);
}

#[test]
fn deployment_must_be_available() {
    let mut status = deployment_status(2, 2, 2, 2);
    status["conditions"][0] = condition(
        "Available",
        "False",
        "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.",
    );
    assert_eq!(
        assess(&deployment(json!({"replicas": 2}), status.clone())),
        progressing(
            "not available: MinimumReplicasUnavailable: Deployment does not have minimum availability."
        )
    );
    status["conditions"] = json!([status["conditions"][1].clone()]);
    assert_eq!(
        assess(&deployment(json!({"replicas": 2}), status)),
        progressing("not available")
    );
}

#[test]
fn paused_deployment_says_it_is_paused_and_is_healthy_when_complete() {
    let mut status = deployment_status(2, 1, 2, 2);
    status["conditions"][1] = condition(
        "Progressing",
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    );
    assert_eq!(
        assess(&deployment(
            json!({"replicas": 2, "paused": true}),
            status.clone()
        )),
        progressing("paused: 1/2 replicas updated")
    );
    status["updatedReplicas"] = json!(2);
    assert_eq!(
        assess(&deployment(json!({"replicas": 2, "paused": true}), status)),
        Health::Healthy
    );
}

// ---- StatefulSet

fn stateful_set(spec: Value, status: Value) -> Value {
    let mut status = status;
    status["observedGeneration"] = json!(1);
    object(
        "apps/v1",
        "StatefulSet",
        json!({"metadata": {"generation": 1}, "spec": spec, "status": status}),
    )
}

fn sts_status(replicas: i64, ready: i64, updated: i64, current: &str, update: &str) -> Value {
    json!({
        "replicas": replicas, "readyReplicas": ready, "updatedReplicas": updated,
        "currentReplicas": updated, "currentRevision": current, "updateRevision": update,
    })
}

#[test]
fn stateful_set_with_all_replicas_ready_on_the_new_revision_is_healthy() {
    let s = stateful_set(json!({"replicas": 3}), sts_status(3, 3, 3, "db-1", "db-1"));
    assert_eq!(assess(&s), Health::Healthy);
}

#[test]
fn stateful_set_messages_say_what_is_missing() {
    let spec = json!({"replicas": 3});
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(1, 0, 1, "db-1", "db-1")
        )),
        progressing("1/3 replicas created")
    );
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(3, 2, 3, "db-1", "db-1")
        )),
        progressing("2/3 replicas ready")
    );
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(4, 4, 3, "db-1", "db-1")
        )),
        progressing("1 extra replicas pending termination")
    );
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(3, 3, 1, "db-1", "db-2")
        )),
        progressing("1/3 replicas updated")
    );
    // Every pod updated, but the controller has not yet moved currentRevision.
    assert_eq!(
        assess(&stateful_set(spec, sts_status(3, 3, 3, "db-1", "db-2"))),
        progressing("waiting for revision db-2 to replace db-1")
    );
}

#[test]
fn stateful_set_partition_only_counts_the_ordinals_it_updates() {
    let spec = json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}});
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(3, 3, 0, "db-1", "db-2")
        )),
        progressing("0/1 replicas updated (partition 2)")
    );
    // Ordinal 2 updated; 0 and 1 stay on the old revision by design.
    assert_eq!(
        assess(&stateful_set(spec, sts_status(3, 3, 1, "db-1", "db-2"))),
        Health::Healthy
    );
    // The API server's default partition 0 means "update everything".
    let spec = json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}});
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(3, 3, 1, "db-1", "db-2")
        )),
        progressing("1/3 replicas updated")
    );
    // kstatus: with a partition, every ordinal it lets through updated and ready is done;
    // the revisions are not compared.
    assert_eq!(
        assess(&stateful_set(spec, sts_status(3, 3, 3, "db-1", "db-2"))),
        Health::Healthy
    );
}

#[test]
fn stateful_set_without_a_partition_needs_every_replica_current() {
    // kstatus's road for an object without the defaulted partition: currentReplicas and
    // the revisions, not updatedReplicas.
    let spec = json!({"replicas": 3});
    let mut status = sts_status(3, 3, 3, "db-2", "db-2");
    status["currentReplicas"] = json!(2);
    assert_eq!(
        assess(&stateful_set(spec.clone(), status)),
        progressing("2/3 replicas on the current revision")
    );
    let mut status = sts_status(3, 3, 3, "db-2", "db-2");
    status["currentReplicas"] = json!(3);
    assert_eq!(assess(&stateful_set(spec, status)), Health::Healthy);
}

#[test]
fn stateful_set_on_delete_waits_only_for_ready_replicas() {
    let spec = json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}});
    assert_eq!(
        assess(&stateful_set(
            spec.clone(),
            sts_status(2, 2, 0, "db-1", "db-2")
        )),
        Health::Healthy
    );
    assert_eq!(
        assess(&stateful_set(spec, sts_status(2, 1, 0, "db-1", "db-2"))),
        progressing("1/2 replicas ready")
    );
}

// ---- DaemonSet

fn daemon_set(spec: Value, status: Value) -> Value {
    let mut status = status;
    status["observedGeneration"] = json!(1);
    object(
        "apps/v1",
        "DaemonSet",
        json!({"metadata": {"generation": 1}, "spec": spec, "status": status}),
    )
}

fn ds_status(desired: i64, scheduled: i64, updated: i64, ready: i64, available: i64) -> Value {
    json!({
        "desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
        "updatedNumberScheduled": updated, "numberReady": ready, "numberAvailable": available,
    })
}

#[test]
fn daemon_set_with_a_ready_pod_on_every_node_is_healthy() {
    assert_eq!(
        assess(&daemon_set(json!({}), ds_status(2, 2, 2, 2, 2))),
        Health::Healthy
    );
    // No node matches: nothing to wait for.
    assert_eq!(
        assess(&daemon_set(json!({}), ds_status(0, 0, 0, 0, 0))),
        Health::Healthy
    );
}

#[test]
fn daemon_set_messages_say_what_is_missing() {
    assert_eq!(
        assess(&daemon_set(json!({}), json!({}))),
        progressing("waiting for the controller to count the nodes to run on")
    );
    assert_eq!(
        assess(&daemon_set(json!({}), ds_status(2, 1, 1, 1, 1))),
        progressing("1/2 pods scheduled")
    );
    assert_eq!(
        assess(&daemon_set(json!({}), ds_status(2, 2, 1, 2, 2))),
        progressing("1/2 pods updated")
    );
    assert_eq!(
        assess(&daemon_set(json!({}), ds_status(2, 2, 2, 0, 0))),
        progressing("0/2 pods ready")
    );
    assert_eq!(
        assess(&daemon_set(json!({}), ds_status(2, 2, 2, 2, 1))),
        progressing("1/2 pods available")
    );
}

#[test]
fn daemon_set_on_delete_does_not_wait_for_updates() {
    let spec = json!({"updateStrategy": {"type": "OnDelete"}});
    assert_eq!(
        assess(&daemon_set(spec, ds_status(2, 2, 0, 2, 2))),
        Health::Healthy
    );
}

// ---- ReplicaSet, ReplicationController

fn replica_set(kind: &str, status: Value) -> Value {
    let mut status = status;
    status["observedGeneration"] = json!(1);
    let api_version = if kind == "ReplicaSet" {
        "apps/v1"
    } else {
        "v1"
    };
    object(
        api_version,
        kind,
        json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": status}),
    )
}

#[test]
fn replica_sets_and_replication_controllers_need_every_replica_ready() {
    for kind in ["ReplicaSet", "ReplicationController"] {
        let status = |replicas: i64, ready: i64, available: i64| json!({"replicas": replicas, "readyReplicas": ready, "availableReplicas": available});
        assert_eq!(
            assess(&replica_set(kind, status(2, 2, 2))),
            Health::Healthy,
            "{kind}"
        );
        assert_eq!(
            assess(&replica_set(kind, status(2, 1, 1))),
            progressing("1/2 replicas ready"),
            "{kind}"
        );
        assert_eq!(
            assess(&replica_set(kind, status(2, 2, 1))),
            progressing("1/2 replicas available"),
            "{kind}"
        );
        assert_eq!(
            assess(&replica_set(kind, status(3, 2, 2))),
            progressing("1 extra replicas pending termination"),
            "{kind}"
        );
        let failure = json!({"conditions": [condition("ReplicaFailure", "True", "FailedCreate", "exceeded quota")]});
        assert_eq!(
            assess(&replica_set(kind, failure)),
            progressing("replica failure: FailedCreate: exceeded quota"),
            "{kind}"
        );
    }
}

// ---- Job

fn job(spec: Value, status: Value) -> Value {
    object(
        "batch/v1",
        "Job",
        json!({"metadata": {"generation": 1}, "spec": spec, "status": status}),
    )
}

#[test]
fn complete_job_is_healthy() {
    let status = json!({"succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "conditions": [
        condition("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
        condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
    ]});
    assert_eq!(assess(&job(json!({}), status)), Health::Healthy);
}

#[test]
fn failed_job_has_failed_with_its_reason() {
    let status = json!({"failed": 7, "startTime": "2026-01-01T00:00:00Z", "conditions": [
        condition("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        condition("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    ]});
    assert_eq!(
        assess(&job(json!({}), status)),
        failed("job failed: BackoffLimitExceeded: Job has reached the specified backoff limit")
    );
    // The controller decided, and waits for the pods to terminate before writing Failed.
    let status = json!({"failed": 1, "active": 1, "startTime": "2026-01-01T00:00:00Z", "conditions": [
        condition("FailureTarget", "True", "DeadlineExceeded", "Job was active longer than specified deadline"),
    ]});
    assert_eq!(
        assess(&job(json!({}), status)),
        failed("job failed: DeadlineExceeded: Job was active longer than specified deadline")
    );
}

#[test]
fn running_job_is_progressing_until_it_completes() {
    assert_eq!(
        assess(&job(json!({"completions": 3}), json!({}))),
        progressing("waiting for the job controller to start it")
    );
    assert_eq!(
        assess(&job(
            json!({"completions": 3}),
            json!({"startTime": "2026-01-01T00:00:00Z", "active": 2, "succeeded": 1})
        )),
        progressing("2 active, 1/3 succeeded")
    );
    assert_eq!(
        assess(&job(
            json!({}),
            json!({"startTime": "2026-01-01T00:00:00Z", "active": 1, "failed": 2})
        )),
        progressing("1 active, 0 succeeded, 2 failed")
    );
}

#[test]
fn suspended_job_is_not_waited_for() {
    let status =
        json!({"conditions": [condition("Suspended", "True", "JobSuspended", "Job suspended")]});
    assert_eq!(
        assess(&job(json!({"suspend": true}), status)),
        Health::Healthy
    );
}

// ---- Pod

fn pod(status: Value) -> Value {
    object("v1", "Pod", json!({"spec": {}, "status": status}))
}

#[test]
fn ready_or_succeeded_pod_is_healthy() {
    assert_eq!(
        assess(&pod(
            json!({"phase": "Running", "conditions": [condition("Ready", "True", "", "")]})
        )),
        Health::Healthy
    );
    assert_eq!(assess(&pod(json!({"phase": "Succeeded"}))), Health::Healthy);
}

#[test]
fn failed_pod_has_failed() {
    assert_eq!(
        assess(&pod(
            json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."})
        )),
        failed("pod failed: Evicted: The node was low on resource: memory.")
    );
    assert_eq!(
        assess(&pod(json!({"phase": "Failed"}))),
        failed("pod failed")
    );
}

fn terminated(name: &str, exit_code: i64, reason: &str, message: Option<&str>) -> Value {
    let mut state = json!({"exitCode": exit_code, "reason": reason});
    if let Some(message) = message {
        state["message"] = json!(message);
    }
    json!({"name": name, "state": {"terminated": state}})
}

#[test]
fn failed_pod_says_what_its_container_said() {
    // kstatus calls a Failed pod current; for us it has failed whatever its restart
    // policy (the phase is final), with the container's termination message.
    for restart_policy in ["Never", "OnFailure", "Always"] {
        let p = object(
            "v1",
            "Pod",
            json!({"spec": {"restartPolicy": restart_policy}, "status": {"phase": "Failed",
            "containerStatuses": [
                terminated("sidecar", 0, "Completed", None),
                terminated("migrate", 1, "Error", Some("migration 42 failed\n")),
            ]}}),
        );
        assert_eq!(
            assess(&p),
            failed("pod failed: container migrate: migration 42 failed"),
            "{restart_policy}"
        );
    }
}

#[test]
fn failed_pod_without_a_termination_message_gives_reason_and_exit_code() {
    let p = pod(json!({"phase": "Failed",
        "initContainerStatuses": [terminated("init", 137, "OOMKilled", None)],
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]}));
    assert_eq!(
        assess(&p),
        failed("pod failed: container init: OOMKilled (exit code 137)")
    );
}

#[test]
fn crash_looping_pod_has_failed() {
    let status = json!({"phase": "Running",
    "conditions": [condition("Ready", "False", "ContainersNotReady", "containers with unready status: [app]")],
    "containerStatuses": [
        {"name": "sidecar", "ready": true, "state": {"running": {}}},
        {"name": "app", "ready": false, "restartCount": 5, "state": {"waiting": {
            "reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container=app"}}},
    ]});
    assert_eq!(
        assess(&pod(status)),
        failed(
            "container app is crash-looping: CrashLoopBackOff: back-off 2m40s restarting failed container=app"
        )
    );
}

#[test]
fn pod_that_cannot_pull_its_image_says_so() {
    let status = json!({"phase": "Pending",
        "initContainerStatuses": [{"name": "init", "state": {"waiting": {
            "reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}}}]});
    assert_eq!(
        assess(&pod(status)),
        progressing(
            "container init cannot start: ImagePullBackOff: Back-off pulling image \"nope:1\""
        )
    );
}

#[test]
fn unscheduled_pod_is_progressing_with_the_schedulers_message() {
    let status = json!({"phase": "Pending", "conditions": [condition(
        "PodScheduled", "False", "Unschedulable",
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")]});
    assert_eq!(
        assess(&pod(status)),
        progressing(
            "not scheduled: 0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
        )
    );
}

#[test]
fn pod_without_a_verdict_yet_is_progressing() {
    assert_eq!(
        assess(&pod(json!({}))),
        progressing("waiting to be scheduled")
    );
    assert_eq!(
        assess(&pod(
            json!({"phase": "Running", "conditions": [condition("Ready", "False", "", "")]})
        )),
        progressing("running and not ready")
    );
}

// ---- PersistentVolumeClaim, Namespace, Service

#[test]
fn persistent_volume_claim_must_be_bound() {
    let pvc = |status: Value| object("v1", "PersistentVolumeClaim", json!({"status": status}));
    assert_eq!(assess(&pvc(json!({"phase": "Bound"}))), Health::Healthy);
    assert_eq!(
        assess(&pvc(json!({"phase": "Pending"}))),
        progressing("waiting to be bound (phase Pending)")
    );
    assert_eq!(assess(&pvc(json!({}))), progressing("waiting to be bound"));
    assert_eq!(
        assess(&pvc(json!({"phase": "Lost"}))),
        failed("its bound volume is lost")
    );
}

#[test]
fn namespace_must_be_active() {
    let ns = |extra: Value| object("v1", "Namespace", extra);
    assert_eq!(
        assess(&ns(json!({"status": {"phase": "Active"}}))),
        Health::Healthy
    );
    assert_eq!(
        assess(&ns(json!({}))),
        progressing("waiting to become active")
    );
    assert_eq!(
        assess(&ns(
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Terminating"}})
        )),
        progressing("being deleted")
    );
}

#[test]
fn services_are_healthy_even_without_a_load_balancer_address() {
    let lb = object(
        "v1",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.7"}, "status": {"loadBalancer": {}}}),
    );
    assert_eq!(assess(&lb), Health::Healthy);
}

// ---- CustomResourceDefinition

fn crd(conditions: Value) -> Value {
    object(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        json!({"metadata": {"namespace": null, "generation": 1}, "status": {"conditions": conditions}}),
    )
}

#[test]
fn established_crd_is_healthy() {
    let c = crd(json!([
        condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
        condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted"
        ),
    ]));
    assert_eq!(assess(&c), Health::Healthy);
}

#[test]
fn crd_is_progressing_until_established() {
    assert_eq!(
        assess(&crd(json!([]))),
        progressing("waiting to be established")
    );
    assert_eq!(
        assess(&crd(json!([condition(
            "Established",
            "False",
            "Installing",
            "the initial names have not been accepted"
        )]))),
        progressing("waiting to be established")
    );
}

#[test]
fn crd_whose_names_conflict_has_failed() {
    let c = crd(json!([
        condition(
            "NamesAccepted",
            "False",
            "PluralConflict",
            "\"widgets\" is already in use"
        ),
        condition(
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted"
        ),
    ]));
    assert_eq!(
        assess(&c),
        failed("names not accepted: PluralConflict: \"widgets\" is already in use")
    );
    let c = crd(json!([condition(
        "Established",
        "False",
        "NotAccepted",
        "not all names are accepted"
    )]));
    assert_eq!(
        assess(&c),
        failed("not established: NotAccepted: not all names are accepted")
    );
}

// ---- PodDisruptionBudget

#[test]
fn pod_disruption_budget_is_healthy_once_observed() {
    let pdb = |status: Value| {
        object(
            "policy/v1",
            "PodDisruptionBudget",
            json!({"metadata": {"generation": 1}, "status": status}),
        )
    };
    assert_eq!(
        assess(&pdb(json!({}))),
        progressing("waiting for the controller to observe generation 1")
    );
    assert_eq!(
        assess(&pdb(
            json!({"observedGeneration": 0, "currentHealthy": 2, "desiredHealthy": 2})
        )),
        progressing("waiting for the controller to observe generation 1")
    );
    // As kstatus: too few healthy pods is about the pods, which are waited on themselves.
    assert_eq!(
        assess(&pdb(
            json!({"observedGeneration": 1, "currentHealthy": 0, "desiredHealthy": 2})
        )),
        Health::Healthy
    );
}

// ---- completion

fn job_with(conditions: Value) -> Value {
    job(
        json!({}),
        json!({"startTime": "2025-01-01T00:00:00Z", "conditions": conditions}),
    )
}

#[test]
fn completion_of_a_job() {
    assert_eq!(
        completion(&job_with(json!([condition("Complete", "True", "", "")]))),
        Some(Ok(()))
    );
    assert_eq!(
        completion(&job_with(json!([
            condition(
                "FailureTarget",
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            ),
            condition(
                "Failed",
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            ),
        ]))),
        Some(Err(
            "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        ))
    );
    // The controller decided; Failed follows once the pods are gone.
    assert_eq!(
        completion(&job_with(json!([condition(
            "FailureTarget",
            "True",
            "DeadlineExceeded",
            ""
        )]))),
        Some(Err("DeadlineExceeded".into()))
    );
    assert_eq!(
        completion(&job_with(json!([condition("Failed", "True", "", "")]))),
        Some(Err("Failed without a reason".into()))
    );
    assert_eq!(completion(&job_with(json!([]))), None);
    assert_eq!(
        completion(&job_with(json!([condition("Failed", "False", "", "")]))),
        None
    );
    assert_eq!(completion(&job(json!({"suspend": true}), json!({}))), None);
}

#[test]
fn completion_of_a_pod() {
    assert_eq!(
        completion(&pod(json!({"phase": "Succeeded"}))),
        Some(Ok(()))
    );
    for phase in ["Pending", "Running", "Unknown"] {
        assert_eq!(completion(&pod(json!({"phase": phase}))), None, "{phase}");
    }
    assert_eq!(completion(&pod(json!({}))), None);
    assert_eq!(
        completion(&pod(json!({"phase": "Failed",
            "containerStatuses": [terminated("hook", 1, "Error", Some("schema is newer than the app"))]}))),
        Some(Err("container hook: schema is newer than the app".into()))
    );
    assert_eq!(
        completion(&pod(json!({"phase": "Failed",
            "containerStatuses": [terminated("hook", 2, "Error", Some("  "))]}))),
        Some(Err("container hook: Error (exit code 2)".into()))
    );
    assert_eq!(
        completion(&pod(json!({"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
            "containerStatuses": [terminated("hook", 137, "Error", None)]}))),
        Some(Err("DeadlineExceeded: Pod was active on the node longer than the specified deadline; container hook: Error (exit code 137)".into()))
    );
    assert_eq!(
        completion(&pod(json!({"phase": "Failed"}))),
        Some(Err("no reason given".into()))
    );
}

#[test]
fn completion_is_only_for_jobs_and_pods() {
    let done = json!({"phase": "Succeeded", "conditions": [condition("Complete", "True", "", "")]});
    assert_eq!(
        completion(&object(
            "apps/v1",
            "Deployment",
            json!({"status": done.clone()})
        )),
        None
    );
    // A kind named Job in another group is not a batch Job.
    assert_eq!(
        completion(&object("example.com/v1", "Job", json!({"status": done}))),
        None
    );
}
