//! Jobs and Pods that run to an end on the test control plane, as hooks do: kwok's nodes
//! complete a Job's Pod and a bare `restartPolicy: Never` Pod, and fail a Pod annotated
//! `kubectl-gitops.test/fail` (tests/cluster/kwok-stages/). Each verdict is checked from
//! the cluster (the Pod's status, the job controller's conditions) as well as through
//! `assess`/`wait_healthy` and `completion`.

use std::time::Duration;

use gitops::apply::health::{Health, completion};
use kubectl_gitops_tests::{TestCluster, block_on};
use serde_json::Value;

use crate::health::{key, live, wait, wait_for};

const FAIL: &str = "kubectl-gitops.test/fail";

fn get_json(cluster: &TestCluster, namespace: &str, what: &str) -> Value {
    let out = cluster.kubectl_ok(&["get", "-n", namespace, what, "-o", "json"]);
    serde_json::from_str(&out).unwrap()
}

/// A bare Pod; `fail` adds the annotation that makes kwok fail it with that message.
fn pod_yaml(name: &str, restart_policy: &str, fail: Option<&str>) -> String {
    let annotations = fail
        .map(|message| format!("  annotations: {{{FAIL}: {message:?}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotations}spec:\n  restartPolicy: {restart_policy}\n  nodeSelector: {{type: kwok}}\n  containers:\n  - name: hook\n    image: busybox:1.36\n"
    )
}

/// `state.terminated` of the Pod's only container, once it has one.
fn terminated(pod: &Value) -> &Value {
    pod.pointer("/status/containerStatuses/0/state/terminated")
        .unwrap_or_else(|| panic!("no terminated container: {pod:#}"))
}

#[test]
fn failing_job_ends_with_backoff_limit_exceeded() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("completion-job");
    cluster.apply_yaml(
        &ns.name,
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      annotations: {{{FAIL}: \"migration 42 failed\"}}\n    spec:\n      restartPolicy: Never\n      nodeSelector: {{type: kwok}}\n      containers:\n      - name: migrate\n        image: busybox:1.36\n"
        ),
    );
    let job = key("batch", "Job", Some(&ns.name), "migrate");
    let (healths, seen) = block_on(async {
        let live = live(cluster).await;
        wait(
            &live,
            std::slice::from_ref(&job),
            &wait_for(Duration::from_secs(120)),
        )
        .await
    });
    match healths.get(&job) {
        Some(Health::Failed(message)) => assert!(
            message.starts_with("job failed: BackoffLimitExceeded"),
            "{message} {seen:?}"
        ),
        other => panic!("expected a failed Job, got {other:?} {seen:?}"),
    }
    // The job controller's own verdict: the Failed condition (our wait may have ended on
    // FailureTarget, just before it).
    cluster.kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Failed",
        "job/migrate",
        "--timeout=60s",
    ]);
    let live_job = get_json(cluster, &ns.name, "job/migrate");
    assert_eq!(
        completion(&live_job),
        Some(Err(
            "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        )),
        "{live_job:#}"
    );
    assert_eq!(live_job.pointer("/status/failed"), Some(&Value::from(1)));
    assert_eq!(live_job.pointer("/status/succeeded"), None, "{live_job:#}");
    // Its one Pod failed as the annotation asked, and no other was started.
    let pods = get_json(cluster, &ns.name, "pods");
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 1, "{pods:#?}");
    assert_eq!(pods[0]["status"]["phase"], "Failed");
    assert_eq!(terminated(&pods[0])["exitCode"], 1);
    assert_eq!(terminated(&pods[0])["message"], "migration 42 failed");
}

#[test]
fn bare_pod_with_restart_policy_never_completes() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("completion-never");
    cluster.apply_yaml(&ns.name, &pod_yaml("hook", "Never", None));
    cluster.apply_yaml(&ns.name, &pod_yaml("server", "Always", None));
    let hook = key("", "Pod", Some(&ns.name), "hook");
    let server = key("", "Pod", Some(&ns.name), "server");
    let (healths, seen) = block_on(async {
        let live = live(cluster).await;
        wait(
            &live,
            &[hook.clone(), server.clone()],
            &wait_for(Duration::from_secs(120)),
        )
        .await
    });
    assert_eq!(healths.get(&hook), Some(&Health::Healthy), "{seen:?}");
    assert_eq!(healths.get(&server), Some(&Health::Healthy), "{seen:?}");
    cluster.kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/hook",
        "--timeout=60s",
    ]);
    let live_hook = get_json(cluster, &ns.name, "pod/hook");
    assert_eq!(terminated(&live_hook)["exitCode"], 0, "{live_hook:#}");
    assert_eq!(terminated(&live_hook)["reason"], "Completed");
    assert_eq!(completion(&live_hook), Some(Ok(())));
    // The stage needs no delay, so had it matched the Always Pod it would be done by now.
    std::thread::sleep(Duration::from_secs(3));
    let live_server = get_json(cluster, &ns.name, "pod/server");
    assert_eq!(live_server["status"]["phase"], "Running", "{live_server:#}");
    assert_eq!(completion(&live_server), None);
}

#[test]
fn failing_bare_pods_fail_with_their_termination_message() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("completion-fail");
    // Several, each with a Never policy that the complete stage would also take if the
    // selectors overlapped: kwok picks at random among matching stages.
    let names: Vec<String> = (0..4).map(|i| format!("hook-{i}")).collect();
    for name in &names {
        cluster.apply_yaml(
            &ns.name,
            &pod_yaml(name, "Never", Some("schema is newer than the app")),
        );
    }
    let keys: Vec<_> = names
        .iter()
        .map(|name| key("", "Pod", Some(&ns.name), name))
        .collect();
    let (healths, seen) = block_on(async {
        let live = live(cluster).await;
        let options = wait_for(Duration::from_secs(120));
        // wait_healthy stops at the first failure; wait again for the rest.
        let mut healths = std::collections::BTreeMap::new();
        let mut seen = Vec::new();
        for key in &keys {
            let (h, s) = wait(&live, std::slice::from_ref(key), &options).await;
            healths.extend(h);
            seen.extend(s);
        }
        (healths, seen)
    });
    for key in &keys {
        assert_eq!(
            healths.get(key),
            Some(&Health::Failed(
                "pod failed: container hook: schema is newer than the app".into()
            )),
            "{seen:?}"
        );
        let live_pod = get_json(cluster, &ns.name, &format!("pod/{}", key.name));
        assert_eq!(live_pod["status"]["phase"], "Failed", "{live_pod:#}");
        assert_eq!(terminated(&live_pod)["exitCode"], 1);
        assert_eq!(terminated(&live_pod)["reason"], "Error");
        assert_eq!(
            terminated(&live_pod)["message"],
            "schema is newer than the app"
        );
        assert_eq!(
            completion(&live_pod),
            Some(Err("container hook: schema is newer than the app".into()))
        );
    }
}
