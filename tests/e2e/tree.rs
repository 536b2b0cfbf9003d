//! `-o tree` of `kubectl release-history APP` and `kubectl drift APP`: an app synced for
//! real, whose Deployment's ReplicaSet the controller-manager creates and whose Pods kwok
//! runs, shown with what each member owns, its health and its drift mark.

use std::process::{Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

use crate::release_history::support::{helm_release, write_helm_secret};
use crate::requests::{counted, requests_about};

/// A Deployment of two replicas on the fake nodes (the dashboard tests use it too).
pub const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {type: kwok}
      containers:
      - name: web
        image: nginx:1.27
";
const MIGRATE: &str = "apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {type: kwok}
      containers:
      - name: migrate
        image: busybox:1.36
";
const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n";

/// The fixture app synced as `app` into `ns`, waiting until it is healthy (the Deployment's
/// Pods ready, the Job complete).
fn synced_app(cluster: &TestCluster, app: &str, ns: &str) -> GitFixture {
    let repo = GitFixture::new();
    repo.write("app/web.yaml", WEB);
    repo.write("app/migrate.yaml", MIGRATE);
    repo.write("app/settings.yaml", SETTINGS);
    repo.commit("web, migrate and settings");
    let out = cluster
        .kubectl()
        .args([
            "sync",
            "HEAD",
            "app",
            "--app",
            app,
            "-n",
            ns,
            "--timeout",
            "120s",
        ])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "sync: {}", describe(&out));
    repo
}

fn plugin(cluster: &TestCluster, plugin: &str, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .arg(plugin)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// stdout, after checking the exit code.
fn stdout(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of `text` for the object `kind` `name` (the kind after the tree's drawing).
fn line<'a>(text: &'a str, kind: &str, name: &str) -> &'a str {
    text.lines()
        .find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == kind);
            at.is_some_and(|i| words.get(i + 2).is_some_and(|n| n.starts_with(name)))
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in:\n{text}"))
}

/// Names of generated objects, the namespace and column widths made stable.
macro_rules! tree_snapshot {
    ($name:expr, $text:expr, $ns:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&regex_escape($ns), "[ns]");
        settings.add_filter(
            r"\bweb-[a-z0-9]{6,10}-[a-z0-9]{5}\b",
            "web-[replicaset]-[pod]",
        );
        settings.add_filter(r"\bweb-[a-z0-9]{6,10}\b", "web-[replicaset]");
        settings.add_filter(r"\bmigrate-[a-z0-9]{5}\b", "migrate-[pod]");
        settings.add_filter(r"(\S) {2,}", "$1   ");
        settings.bind(|| insta::assert_snapshot!($name, $text));
    }};
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

#[test]
fn release_history_tree_shows_what_members_own_with_health_in_one_list_per_kind() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("tree-rh");
    let n = ns.name.as_str();
    synced_app(cluster, "shop", n);
    // The Deployment's second Pod may become ready a moment after the sync saw it
    // available; the tree is read once both are.
    cluster.kubectl_ok(&[
        "wait",
        "-n",
        n,
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);

    let offset = cluster.audit_offset();
    let text = stdout(
        &plugin(cluster, "release-history", &["shop", "-n", n, "-o", "tree"]),
        0,
    );
    assert!(
        line(&text, "Deployment.apps", "web").contains("healthy"),
        "{text}"
    );
    assert!(
        line(&text, "ReplicaSet.apps", "web-").contains("└─ ReplicaSet.apps"),
        "{text}"
    );
    let pods: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("─ Pod") && l.contains(" web-"))
        .collect();
    assert_eq!(pods.len(), 2, "{text}");
    assert!(pods.iter().all(|l| l.contains("healthy")), "{text}");
    assert!(
        line(&text, "Job.batch", "migrate").contains("healthy"),
        "{text}"
    );
    assert!(line(&text, "Pod", "migrate-").contains("└─ Pod"), "{text}");
    assert!(
        line(&text, "ConfigMap", "settings").contains("healthy"),
        "{text}"
    );
    // One LIST per kind in the namespace, whatever number of objects: no GET per object.
    let requests = requests_about(cluster, offset, &[n], None);
    let lists = counted(&requests, "list");
    for resource in ["configmaps", "deployments", "jobs", "replicasets", "pods"] {
        let count = lists
            .iter()
            .find(|(r, _)| *r == format!("{resource} {n}"))
            .map(|(_, c)| *c);
        assert_eq!(count, Some(1), "{resource}: {lists:?}");
    }
    let gets: Vec<_> = requests
        .iter()
        .filter(|r| r.verb == "get" && r.resource != "secrets")
        .collect();
    assert!(gets.is_empty(), "{gets:?}");
    tree_snapshot!("release_history_tree", text, n);

    // A member that is gone is shown missing, never left out. Its owned objects go with
    // it (the garbage collector deletes the ReplicaSet and Pods of a deleted Deployment).
    cluster.kubectl_ok(&["delete", "configmap", "settings", "-n", n]);
    let text = stdout(
        &plugin(cluster, "release-history", &["shop", "-n", n, "-o", "tree"]),
        0,
    );
    assert!(
        line(&text, "ConfigMap", "settings").contains("missing"),
        "{text}"
    );
    assert!(text.contains("3 members (1 missing)"), "{text}");
    // Release 1 by number, the same tree.
    let one = stdout(
        &plugin(
            cluster,
            "release-history",
            &["shop", "1", "-n", n, "-o", "tree"],
        ),
        0,
    );
    assert!(
        line(&one, "ConfigMap", "settings").contains("missing"),
        "{one}"
    );
}

#[test]
fn drift_tree_marks_a_member_changed_by_another_manager_and_a_deleted_one() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("tree-drift");
    let n = ns.name.as_str();
    synced_app(cluster, "shop", n);
    cluster.kubectl_ok(&[
        "wait",
        "-n",
        n,
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);

    let text = stdout(
        &plugin(cluster, "drift", &["shop", "-n", n, "-o", "tree"]),
        0,
    );
    for (kind, name) in [
        ("Deployment.apps", "web"),
        ("Job.batch", "migrate"),
        ("ConfigMap", "settings"),
    ] {
        let row = line(&text, kind, name);
        assert!(row.contains("healthy") && row.contains("in sync"), "{text}");
    }
    assert!(
        text.contains("app shop: in sync against release 1"),
        "{text}"
    );

    // Someone else changes a field we applied, and deletes a member.
    cluster.kubectl_ok(&[
        "patch",
        "deployment/web",
        "-n",
        n,
        "--type=merge",
        "-p",
        "{\"metadata\":{\"labels\":{\"tier\":\"back\"}}}",
        "--field-manager=intruder",
    ]);
    cluster.kubectl_ok(&["delete", "configmap", "settings", "-n", n]);
    let text = stdout(
        &plugin(cluster, "drift", &["shop", "-n", n, "-o", "tree"]),
        1,
    );
    let web = line(&text, "Deployment.apps", "web");
    assert!(
        web.contains("healthy") && web.contains("modified"),
        "{text}"
    );
    let settings = line(&text, "ConfigMap", "settings");
    assert!(
        settings.contains("missing") && settings.contains("deleted"),
        "{text}"
    );
    assert!(
        line(&text, "Job.batch", "migrate").contains("in sync"),
        "{text}"
    );
    assert!(
        text.contains("app shop: drifted against release 1 (1 modified, 1 deleted"),
        "{text}"
    );
    tree_snapshot!("drift_tree", text, n);

    // Refused before anything connects: a tree is one app's, as one check found it.
    let refused = plugin(cluster, "drift", &["-n", n, "-o", "tree"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("kubectl drift APP -o tree"),
        "{}",
        describe(&refused)
    );
    let refused = plugin(cluster, "drift", &["shop", "-n", n, "-o", "tree", "--heal"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
}

#[test]
fn drift_tree_of_a_scaled_deployment_marks_it_modified() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("tree-scale");
    let n = ns.name.as_str();
    synced_app(cluster, "shop", n);
    cluster.kubectl_ok(&["scale", "deployment/web", "-n", n, "--replicas=3"]);
    let text = stdout(
        &plugin(cluster, "drift", &["shop", "-n", n, "-o", "tree"]),
        1,
    );
    assert!(
        line(&text, "Deployment.apps", "web").contains("modified"),
        "{text}"
    );
    assert!(
        line(&text, "ReplicaSet.apps", "web-").contains("healthy"),
        "{text}"
    );
}

#[test]
fn release_history_tree_of_a_helm_release_shows_its_manifests_objects() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("tree-helm");
    let n = ns.name.as_str();
    // Release 1 of Helm's `web`: a Secret web-auth and a ConfigMap web, of which only the
    // ConfigMap exists.
    write_helm_secret(cluster, n, &helm_release(n, 1, "deployed", "v1"), true);
    cluster.apply_yaml(
        n,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  value: v1\n",
    );
    let text = stdout(
        &plugin(cluster, "release-history", &["web", "-n", n, "-o", "tree"]),
        0,
    );
    assert!(
        line(&text, "ConfigMap", "web").contains("healthy"),
        "{text}"
    );
    assert!(
        line(&text, "Secret", "web-auth").contains("missing"),
        "{text}"
    );
    assert!(
        text.contains("release 1 of app web (helm, deployed): 2 members (1 missing)"),
        "{text}"
    );
    // A newer release that failed: the tree stays the deployed release's.
    write_helm_secret(cluster, n, &helm_release(n, 2, "failed", "v2"), true);
    let text = stdout(
        &plugin(cluster, "release-history", &["web", "-n", n, "-o", "tree"]),
        0,
    );
    assert!(
        text.contains("release 1 of app web (helm, deployed)"),
        "{text}"
    );
}
