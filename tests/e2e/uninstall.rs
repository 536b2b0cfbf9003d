//! `kubectl sync --uninstall`: hooks around the deletions, the deletions in reverse order,
//! what must stay kept, a last `uninstalled` release; asserted from the cluster and the
//! API server's audit log.

use std::process::Output;

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

use crate::faults::sync_cmd;

const APP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {argocd.argoproj.io/sync-wave: \"1\"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {type: kwok}
      containers: [{name: web, image: nginx:1.27}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: audit-trail
  annotations: {argocd.argoproj.io/sync-options: Delete=false}
data: {kept: \"yes\"}
---
apiVersion: v1
kind: Secret
metadata:
  name: database
  annotations: {helm.sh/resource-policy: keep}
stringData: {password: canary-uninstall-kept-secret}
---
apiVersion: batch/v1
kind: Job
metadata:
  generateName: backup-
  annotations: {argocd.argoproj.io/hook: PreDelete}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {type: kwok}
      containers: [{name: backup, image: busybox:1.36}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: goodbye
  annotations: {helm.sh/hook: post-delete, helm.sh/hook-delete-policy: before-hook-creation}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {type: kwok}
      containers: [{name: goodbye, image: busybox:1.36}]
";

fn kubectl_sync(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    sync_cmd(cluster, repo, args).output().unwrap()
}

fn exists(cluster: &TestCluster, ns: &str, what: &str) -> bool {
    cluster
        .kubectl()
        .args(["get", what, "-n", ns])
        .output()
        .unwrap()
        .status
        .success()
}

/// Our writes in `ns` since `offset` as `verb resource name`, in the order received.
fn writes(cluster: &TestCluster, offset: u64, ns: &str) -> Vec<String> {
    let mut events: Vec<(String, String)> = cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| e["objectRef"]["namespace"] == ns)
        .filter(|e| matches!(e["verb"].as_str(), Some("create" | "delete")))
        .filter(|e| {
            matches!(
                e["objectRef"]["resource"].as_str(),
                Some("configmaps" | "deployments" | "jobs")
            )
        })
        .map(|e| {
            (
                e["requestReceivedTimestamp"].as_str().unwrap().to_string(),
                format!(
                    "{} {} {}",
                    e["verb"].as_str().unwrap(),
                    e["objectRef"]["resource"].as_str().unwrap(),
                    e["objectRef"]["name"].as_str().unwrap_or("")
                )
                .trim_end()
                .to_string(),
            )
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, what)| what).collect()
}

fn position(writes: &[String], what: &str) -> usize {
    writes
        .iter()
        .position(|w| w == what)
        .unwrap_or_else(|| panic!("no {what:?} in {writes:#?}"))
}

#[test]
fn uninstall_runs_its_hooks_deletes_in_reverse_order_and_keeps_what_it_must() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("un");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("app/web.yaml", APP);
    repo.commit("web");
    let out = kubectl_sync(cluster, &repo, &["HEAD", "app", "--app", "web", "-n", n]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // The dry run says what would go and what stays, and deletes nothing.
    let out = kubectl_sync(
        cluster,
        &repo,
        &["--uninstall", "--app", "web", "-n", n, "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        format!("delete Deployment.apps {n}/web"),
        format!("delete ConfigMap {n}/settings"),
        format!("keep ConfigMap {n}/audit-trail: Delete=false"),
        format!("keep Secret {n}/database: helm.sh/resource-policy: keep"),
        format!("PreDelete: Job.batch {n}/backup-* (PreDelete, wave 0)"),
        format!("PostDelete: Job.batch {n}/goodbye (post-delete, weight 0)"),
    ] {
        assert!(err.contains(&line), "missing {line:?}: {}", describe(&out));
    }
    assert!(exists(cluster, n, "deployment/web"));

    let offset = cluster.audit_offset();
    let out = kubectl_sync(cluster, &repo, &["--uninstall", "--app", "web", "-n", n]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let done = writes(cluster, offset, n);
    // PreDelete hook, then wave 1 (the Deployment) before wave 0, then the PostDelete hook.
    let backup = position(&done, "create jobs");
    let web = position(&done, "delete deployments web");
    let settings = position(&done, "delete configmaps settings");
    let goodbye = position(&done, "create jobs goodbye");
    assert!(
        backup < web && web < settings && settings < goodbye,
        "{done:#?}"
    );
    assert!(!exists(cluster, n, "deployment/web"));
    assert!(!exists(cluster, n, "configmap/settings"));
    assert!(
        exists(cluster, n, "configmap/audit-trail"),
        "Delete=false stays"
    );
    assert!(
        exists(cluster, n, "secret/database"),
        "resource-policy keep stays"
    );
    // The parent is gone; the records stay, the last one uninstalled.
    let parents = cluster.kubectl_ok(&[
        "get",
        "secrets",
        "-n",
        n,
        "-l",
        "applyset.kubernetes.io/id",
        "-o",
        "name",
    ]);
    assert!(parents.trim().is_empty(), "{parents}");
    assert_eq!(
        cluster.release_statuses(n, "web"),
        [
            (1, "superseded".to_string()),
            (2, "uninstalled".to_string())
        ]
    );
    let release: serde_json::Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "release-history",
        "web",
        "2",
        "-n",
        n,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(release["operation"], "uninstall", "{release}");
    let stages: Vec<&str> = release["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["PreDelete", "PostDelete"], "{release}");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(!out.contains("canary-uninstall"), "{out}");

    // Installed again and uninstalled with --purge: no record is left.
    let out = kubectl_sync(cluster, &repo, &["HEAD", "app", "--app", "web", "-n", n]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = kubectl_sync(
        cluster,
        &repo,
        &[
            "--uninstall",
            "--app",
            "web",
            "-n",
            n,
            "--purge",
            "--no-hooks",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(cluster.release_statuses(n, "web").is_empty());
    // Nothing left to uninstall is an error saying so.
    let out = kubectl_sync(cluster, &repo, &["--uninstall", "--app", "web", "-n", n]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to uninstall"),
        "{}",
        describe(&out)
    );
}

#[test]
fn uninstall_keeps_a_namespace_that_holds_what_is_not_the_apps() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("un-ns");
    let n = ns.name.as_str();
    let extra = format!("{n}-extra");
    let repo = GitFixture::new();
    repo.write(
        "app/all.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {extra}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: member\n  namespace: {extra}\ndata: {{k: v}}\n"
        ),
    );
    repo.commit("a namespace of its own");
    let out = kubectl_sync(cluster, &repo, &["HEAD", "app", "--app", "nsapp", "-n", n]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    cluster.kubectl_ok(&["create", "configmap", "by-hand", "-n", &extra]);

    let out = kubectl_sync(cluster, &repo, &["--uninstall", "--app", "nsapp", "-n", n]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "keep Namespace {extra}: deleting it would delete 1 object(s) that are not the app's: ConfigMap {extra}/by-hand"
        )),
        "{}",
        describe(&out)
    );
    // The app's ConfigMap went; the Namespace and the hand-made object stay.
    assert!(!exists(cluster, &extra, "configmap/member"));
    assert!(exists(cluster, &extra, "configmap/by-hand"));
    cluster.kubectl_ok(&["get", "namespace", &extra]);
    cluster.kubectl_ok(&["delete", "namespace", &extra, "--wait=false"]);
}
