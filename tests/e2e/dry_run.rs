//! `kubectl sync --dry-run` writes nothing (no Lease, no record, no parent, no object), so
//! it runs with diff-git's Role alone, in a namespace that does not exist, and beside a
//! running sync; it exits as diff-git does (0 nothing to do, 1 changes), and `-o json`
//! prints the planned changes for one app.

use std::process::Output;
use std::time::Duration;

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

use crate::faults::sync_cmd;
use crate::interrupts::{config_maps, finish_within, interrupt, lease_holder, start_held};
use crate::rbac::{documented_role, user_with_role};

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n---\n"
    )
}

/// Writes done in `namespace` since `offset` by our plugins: every request but reads and
/// server-side dry runs.
fn writes_since(cluster: &TestCluster, offset: u64, namespace: &str) -> Vec<String> {
    cluster
        .our_requests_since(offset, namespace)
        .into_iter()
        .filter(|r| {
            let verb = r.split(' ').next().unwrap_or_default();
            !matches!(verb, "get" | "list" | "watch") && !verb.ends_with("(dry-run)")
        })
        .collect()
}

/// The parent's resourceVersion, or None when there is no parent.
fn parent_version(cluster: &TestCluster, namespace: &str, app: &str) -> Option<String> {
    let out = cluster
        .kubectl()
        .args([
            "get",
            "secrets",
            "-n",
            namespace,
            "-l",
            "applyset.kubernetes.io/id",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list["items"]
        .as_array()?
        .iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.contains(app))
        })
        .and_then(|s| {
            s["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
}

fn value_of(cluster: &TestCluster, namespace: &str, name: &str) -> Option<String> {
    let out = cluster
        .kubectl()
        .args([
            "get",
            "configmap",
            name,
            "-n",
            namespace,
            "-o",
            "jsonpath={.data.value}",
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(out)))
}

#[test]
fn sync_dry_run_writes_nothing_needs_only_diff_gits_role_and_exits_like_diff_git() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dry-role");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "app.yaml",
        &format!("{}{}", config_map("kept", "1"), config_map("old", "1")),
    );
    repo.commit("first");
    let app = ["--app", "web", "-n", n, "--prune"];
    let out = sync_cmd(cluster, &repo, &app).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let parent = parent_version(cluster, n, "web");
    assert!(parent.is_some(), "the first sync wrote a parent");

    // One change, one addition, one prune.
    repo.write(
        "app.yaml",
        &format!("{}{}", config_map("kept", "2"), config_map("new", "1")),
    );
    repo.commit("second");
    let differ = user_with_role(cluster, n, "differ", documented_role("diff-git"));
    let offset = cluster.audit_offset();
    let out = sync_cmd(cluster, &repo, &[&app[..], &["--dry-run"]].concat())
        .env("KUBECONFIG", &differ.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("1 changed, 1 added, 1 removed"),
        "{}",
        describe(&out)
    );

    let json_out = sync_cmd(
        cluster,
        &repo,
        &[&app[..], &["--dry-run", "-o", "json"]].concat(),
    )
    .env("KUBECONFIG", &differ.kubeconfig)
    .output()
    .unwrap();
    assert_eq!(json_out.status.code(), Some(1), "{}", describe(&json_out));
    let doc = json(&json_out);
    assert_eq!(doc["app"], "web", "{doc}");
    assert_eq!(doc["namespace"], n, "{doc}");
    assert_eq!(doc["dry_run"], true, "{doc}");
    assert_eq!(doc["dry_run_changes"], 3, "{doc}");
    let summary = &doc["summary"];
    assert_eq!(
        (&summary["added"], &summary["changed"], &summary["removed"]),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{doc}"
    );
    let mut actions: Vec<(String, String)> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"]["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("kept".to_string(), "changed".to_string()),
            ("new".to_string(), "added".to_string()),
            ("old".to_string(), "removed".to_string())
        ],
        "{doc}"
    );

    // The cluster is as it was: no write of any kind, no Lease, no record, same parent.
    assert_eq!(
        writes_since(cluster, offset, n),
        Vec::<String>::new(),
        "a dry run wrote"
    );
    assert_eq!(lease_holder(cluster, n, "web"), None);
    assert_eq!(
        cluster.release_statuses(n, "web"),
        vec![(1, "deployed".to_string())]
    );
    assert_eq!(parent_version(cluster, n, "web"), parent);
    assert_eq!(value_of(cluster, n, "kept").as_deref(), Some("1"));
    assert_eq!(value_of(cluster, n, "old").as_deref(), Some("1"));
    assert_eq!(value_of(cluster, n, "new"), None);

    // Once synced there is nothing to do: exit 0, as diff-git's.
    let out = sync_cmd(cluster, &repo, &app).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = sync_cmd(cluster, &repo, &[&app[..], &["--dry-run"]].concat())
        .env("KUBECONFIG", &differ.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn sync_dry_run_in_a_namespace_that_does_not_exist_warns_and_creates_nothing() {
    let cluster = TestCluster::get();
    // Reserved for this test, never created: only its name is used.
    let ns = cluster.namespace("dry-gone");
    let missing = format!("{}-missing", ns.name);
    let repo = GitFixture::new();
    repo.write("app.yaml", &config_map("settings", "1"));
    repo.commit("app");
    let out = sync_cmd(
        cluster,
        &repo,
        &["--app", "web", "-n", &missing, "--dry-run"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&missing) && err.contains("does not exist"),
        "{}",
        describe(&out)
    );
    let exists = cluster
        .kubectl()
        .args(["get", "namespace", &missing])
        .output()
        .unwrap();
    assert!(!exists.status.success(), "the dry run created {missing}");
}

#[test]
fn sync_dry_run_beside_a_running_sync_neither_waits_for_nor_disturbs_it() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dry-beside");
    let n = ns.name.as_str();
    // A sync of 20 ConfigMaps, one at a time, held at cm-010 by a webhook for 20 s.
    let (repo, webhook, running) = start_held(
        cluster,
        n,
        "held",
        (&config_maps(1, None), &config_maps(20, Some(10))),
        20,
    );
    let calls = webhook.calls();
    let holder = lease_holder(cluster, n, "held");
    assert!(holder.is_some(), "the running sync holds the lock");

    // Meanwhile: a dry run of the same app, which a sync would be refused for. Of the
    // revision before (the running sync's held ConfigMap would hold it up too): with
    // --prune it would delete what the running sync has applied so far (cm-001 to
    // cm-009, applied one at a time before the held cm-010).
    let out = sync_cmd(
        cluster,
        &repo,
        &["HEAD~1", "--app", "held", "-n", n, "--dry-run", "--prune"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 changed, 0 added, 9 removed"),
        "{}",
        describe(&out)
    );
    // The running sync still holds its lock, and is still held at cm-010.
    assert_eq!(lease_holder(cluster, n, "held"), holder);
    assert_eq!(webhook.calls(), calls);

    interrupt(&running);
    let (out, _) = finish_within(running, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert_eq!(lease_holder(cluster, n, "held"), None);
}
