//! Health after apply: `gitops::apply::health::wait_healthy` against real controllers
//! (kube-controller-manager, the scheduler, and kwok's fake kubelets).

use std::time::{Duration, Instant};

use gitops::apply::health::{Health, WaitOptions, wait_healthy};
use gitops::kubeconfig::{ConnectOptions, Environment, connect};
use gitops::live::LiveCluster;
use gitops::objects::ObjectKey;
use kubectl_gitops_tests::{TestCluster, block_on};

pub(crate) async fn live(cluster: &TestCluster) -> LiveCluster {
    let options = ConnectOptions {
        kubeconfig: Some(cluster.admin_kubeconfig.clone()),
        ..Default::default()
    };
    let conn = connect(&options, &Environment::default()).await.unwrap();
    LiveCluster::connect(&conn).await.unwrap()
}

pub(crate) fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.map(str::to_string),
        name: name.into(),
    }
}

pub(crate) fn wait_for(timeout: Duration) -> WaitOptions {
    WaitOptions {
        timeout,
        poll_interval: Duration::from_millis(500),
    }
}

/// Waits for `keys`, recording every change `on_change` reports.
pub(crate) async fn wait(
    live: &LiveCluster,
    keys: &[ObjectKey],
    options: &WaitOptions,
) -> (
    std::collections::BTreeMap<ObjectKey, Health>,
    Vec<(ObjectKey, Health)>,
) {
    let mut seen = Vec::new();
    let mut record = |key: &ObjectKey, health: &Health| seen.push((key.clone(), health.clone()));
    let healths = wait_healthy(live, keys, options, &mut record)
        .await
        .unwrap();
    (healths, seen)
}

fn deployment(name: &str, replicas: u32, node_selector: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      nodeSelector: {{{node_selector}}}\n      containers:\n      - name: app\n        image: nginx:1.27\n"
    )
}

#[test]
fn deployment_goes_from_progressing_to_healthy() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("health-deploy");
    cluster.apply_yaml(&ns.name, &deployment("web", 2, "type: kwok"));
    let web = key("apps", "Deployment", Some(&ns.name), "web");
    block_on(async {
        let live = live(cluster).await;
        let (healths, seen) = wait(
            &live,
            std::slice::from_ref(&web),
            &wait_for(Duration::from_secs(120)),
        )
        .await;
        assert_eq!(healths.get(&web), Some(&Health::Healthy), "{seen:?}");
        // Every change was reported, ending with healthy; before that only progress (the
        // controllers may be quick enough that the first look is already healthy).
        let (last, earlier) = seen.split_last().unwrap();
        assert_eq!(last, &(web.clone(), Health::Healthy), "{seen:?}");
        assert!(
            earlier
                .iter()
                .all(|(k, h)| k == &web && matches!(h, Health::Progressing(_))),
            "{seen:?}"
        );
    });
}

#[test]
fn unschedulable_deployment_is_still_progressing_at_the_timeout() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("health-stuck");
    cluster.apply_yaml(&ns.name, &deployment("stuck", 1, "no-such-label: x"));
    // Let the controller see it first, so the message is about replicas, not generations.
    cluster.kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=jsonpath={.status.observedGeneration}=1",
        "deployment/stuck",
        "--timeout=60s",
    ]);
    let stuck = key("apps", "Deployment", Some(&ns.name), "stuck");
    block_on(async {
        let live = live(cluster).await;
        let started = Instant::now();
        let (healths, seen) = wait(
            &live,
            std::slice::from_ref(&stuck),
            &wait_for(Duration::from_secs(5)),
        )
        .await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(30),
            "returned after {elapsed:?}"
        );
        // A timeout is no error: the map says what is still missing.
        assert_eq!(
            healths.get(&stuck),
            Some(&Health::Progressing("0/1 replicas ready".into())),
            "{seen:?}"
        );
    });
}

#[test]
fn custom_resource_definition_becomes_established() {
    let cluster = TestCluster::get();
    let group = format!("h{}.health.example.com", std::process::id());
    let name = format!("widgets.{group}");
    cluster.apply_yaml(
        "default",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
        ),
    );
    let crd = key(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        None,
        &name,
    );
    let outcome = block_on(async {
        let live = live(cluster).await;
        wait(
            &live,
            std::slice::from_ref(&crd),
            &wait_for(Duration::from_secs(60)),
        )
        .await
    });
    let _ = cluster
        .kubectl()
        .args(["delete", "crd", &name, "--wait=false"])
        .output();
    let (healths, seen) = outcome;
    assert_eq!(healths.get(&crd), Some(&Health::Healthy), "{seen:?}");
}

#[test]
fn job_is_healthy_once_its_pod_completed() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("health-job");
    // kwok's pod-complete stage finishes pods owned by Jobs as Succeeded.
    cluster.apply_yaml(
        &ns.name,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      nodeSelector: {type: kwok}\n      containers:\n      - name: migrate\n        image: busybox:1.36\n",
    );
    let job = key("batch", "Job", Some(&ns.name), "migrate");
    block_on(async {
        let live = live(cluster).await;
        let (healths, seen) = wait(
            &live,
            std::slice::from_ref(&job),
            &wait_for(Duration::from_secs(120)),
        )
        .await;
        assert_eq!(healths.get(&job), Some(&Health::Healthy), "{seen:?}");
    });
}

#[test]
fn missing_objects_and_unknown_kinds_fail_at_once() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("health-missing");
    cluster.apply_yaml(
        &ns.name,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: present\ndata: {a: b}\n",
    );
    let present = key("", "ConfigMap", Some(&ns.name), "present");
    let gone = key("", "ConfigMap", Some(&ns.name), "gone");
    let unknown = key("nope.example.com", "Widget", Some(&ns.name), "w");
    block_on(async {
        let live = live(cluster).await;
        let started = Instant::now();
        let (healths, _) = wait(
            &live,
            &[present.clone(), gone.clone(), unknown.clone()],
            &wait_for(Duration::from_secs(60)),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a failure ends the wait"
        );
        assert_eq!(healths.get(&present), Some(&Health::Healthy));
        assert_eq!(
            healths.get(&gone),
            Some(&Health::Failed("not found".into()))
        );
        assert_eq!(
            healths.get(&unknown),
            Some(&Health::Failed(
                "Widget.nope.example.com is not served by the API server".into()
            ))
        );
    });
}
