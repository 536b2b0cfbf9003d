//! `kubectl sync`, run by the real kubectl through its plugin discovery.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubectl_gitops_tests::record::{CANARY_SECRET_VALUE, base64, canary_secret_yaml};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

fn web(image: &str, node_selector: Option<&str>) -> String {
    let selector = node_selector
        .map(|s| format!("      nodeSelector: {{{s}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
{selector}      containers:
      - name: web
        image: {image}
"
    )
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n";
const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n";

fn sync_cmd(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Command {
    let mut cmd = cluster.kubectl();
    cmd.arg("sync").args(args).current_dir(repo.path());
    cmd
}

fn sync(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    sync_cmd(cluster, repo, args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn assert_ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
}

fn get(cluster: &TestCluster, ns: &str, what: &str, jsonpath: &str) -> String {
    cluster.kubectl_ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={jsonpath}")])
}

#[test]
fn sync_creates_waits_updates_prunes_and_rolls_back() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-main");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("app/web.yaml", &web("nginx:1.26", None));
    repo.write("app/service.yaml", SERVICE);
    repo.write("app/settings.yaml", SETTINGS);
    let first = repo.commit("first");

    // First sync: everything created, and the Deployment Available before it returns.
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "app",
            "--app",
            "shop",
            "-n",
            n,
            "-o",
            "json",
            "--timeout",
            "90s",
        ],
    );
    assert_ok(&out);
    let doc = json(&out);
    assert_eq!(doc["release"], 1);
    assert_eq!(doc["status"], "deployed");
    assert_eq!(doc["commit"]["id"], first.as_str());
    assert_eq!(doc["commit"]["short_id"], &first[..7]);
    assert_eq!(doc["commit"]["subject"], "first");
    assert_eq!(doc["counts"]["created"], 3, "{doc}");
    let ready = get(cluster, n, "deployment/web", "{.status.readyReplicas}");
    assert_eq!(
        ready, "2",
        "sync returned before the Deployment was Available"
    );
    assert_eq!(
        get(cluster, n, "secret/shop.r1", "{.type}"),
        "kubectl-gitops.io/release.v1"
    );

    // ApplySet membership, as kubectl understands it.
    let id = get(
        cluster,
        n,
        "secret/shop.applyset",
        "{.metadata.labels.applyset\\.kubernetes\\.io/id}",
    );
    assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
    let kinds = get(
        cluster,
        n,
        "secret/shop.applyset",
        "{.metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}",
    );
    assert_eq!(kinds, "ConfigMap,Deployment.apps,Service");
    assert_eq!(
        get(
            cluster,
            n,
            "configmap/settings",
            "{.metadata.labels.applyset\\.kubernetes\\.io/part-of}"
        ),
        id
    );

    // A no-op resync applies nothing (the Deployment keeps its resourceVersion) and
    // records no release: release 1 is marked current instead.
    let before = get(cluster, n, "deployment/web", "{.metadata.resourceVersion}");
    let out = sync(
        cluster,
        &repo,
        &["HEAD", "app", "--app", "shop", "-n", n, "-o", "json"],
    );
    assert_ok(&out);
    let doc = json(&out);
    assert_eq!(doc["release"], 1);
    assert_eq!(doc["recorded"], false);
    assert!(doc["last_synced"].is_string(), "{doc}");
    assert_eq!(
        doc["counts"],
        serde_json::json!({"created": 0, "configured": 0, "unchanged": 3, "pruned": 0, "failed": 0})
    );
    assert_eq!(
        get(cluster, n, "deployment/web", "{.metadata.resourceVersion}"),
        before
    );
    assert_eq!(
        cluster.release_statuses(n, "shop"),
        vec![(1, "deployed".to_string())]
    );

    // New image, ConfigMap removed: kept without --prune, deleted with it.
    repo.write("app/web.yaml", &web("nginx:1.27", None));
    repo.remove("app/settings.yaml");
    repo.commit("bump, drop settings");
    let out = sync(
        cluster,
        &repo,
        &["HEAD", "app", "--app", "shop", "-n", n, "--color=never"],
    );
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("+        image: nginx:1.27"),
        "the diff is shown first: {text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stay (--prune deletes them): ConfigMap"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.data.greeting}"),
        "hello"
    );
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD", "app", "--app", "shop", "-n", n, "--prune", "-o", "json",
        ],
    );
    assert_ok(&out);
    assert_eq!(json(&out)["counts"]["pruned"], 1);
    let gone = cluster
        .kubectl()
        .args(["get", "configmap/settings", "-n", n])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "pruned ConfigMap still exists");
    assert_eq!(
        get(
            cluster,
            n,
            "deployment/web",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.27"
    );
    let kinds = get(
        cluster,
        n,
        "secret/shop.applyset",
        "{.metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}",
    );
    assert_eq!(kinds, "Deployment.apps,Service");

    let history = cluster.release_statuses(n, "shop");
    assert_eq!(
        history,
        vec![
            (1, "superseded".to_string()),
            (2, "superseded".to_string()),
            (3, "deployed".to_string())
        ]
    );

    // Roll back to release 1 (image 1.26, with the ConfigMap), without git.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = cluster
        .kubectl()
        .args([
            "sync",
            "--rollback",
            "1",
            "--app",
            "shop",
            "-n",
            n,
            "-o",
            "json",
            "--timeout",
            "90s",
        ])
        .current_dir(elsewhere.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let doc = json(&out);
    assert_eq!(doc["release"], 4);
    assert_eq!(doc["operation"], "rollback");
    assert_eq!(doc["rollback_of"], 1);
    assert_eq!(
        get(
            cluster,
            n,
            "deployment/web",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.26"
    );
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.data.greeting}"),
        "hello"
    );
}

#[test]
fn crd_and_custom_resource_apply_in_one_sync() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-crd");
    let n = ns.name.as_str();
    let group = format!("{n}.example.com");
    let repo = GitFixture::new();
    repo.write(
        "crd.yaml",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n  names: {{kind: Gadget, plural: gadgets}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
        ),
    );
    repo.write(
        "gadget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: 3\n"),
    );
    repo.commit("crd and cr");
    let out = sync(cluster, &repo, &["--app", "gadgets", "-n", n, "-o", "json"]);
    assert_ok(&out);
    assert_eq!(json(&out)["counts"]["created"], 2);
    assert_eq!(
        get(cluster, n, &format!("gadgets.{group}/g1"), "{.spec.size}"),
        "3"
    );
    let _ = cluster
        .kubectl()
        .args(["delete", "crd", &format!("gadgets.{group}"), "--wait=false"])
        .output();
}

/// A custom resource's schema is the CRD's: a field it does not declare is refused, as
/// in a built-in kind, not dropped by the server without a word.
#[test]
fn a_misspelt_field_of_a_custom_resource_is_refused() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-crstrict");
    let n = ns.name.as_str();
    let group = format!("{n}.example.com");
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size: {{type: integer}}\n"
    );
    cluster.apply_yaml(n, &crd);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/widgets.{group}"),
    ]);

    let repo = GitFixture::new();
    repo.write(
        "widget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  sise: 3\n"),
    );
    repo.commit("a widget with a typo");
    let out = sync(
        cluster,
        &repo,
        &["--app", "widgets", "-n", n, "--yes", "--wait=false"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("widget.yaml:6: ") && err.contains("sise"),
        "the error names the file and the misspelt field's line: {err}"
    );
    // By group: other tests' CRDs share the plural, and `widgets` alone may name theirs.
    assert_eq!(
        get(
            cluster,
            n,
            &format!("widgets.{group}"),
            "{.items[*].metadata.name}"
        ),
        ""
    );
    let _ = cluster
        .kubectl()
        .args(["delete", "crd", &format!("widgets.{group}"), "--wait=false"])
        .output();
}

#[test]
fn progress_shows_each_object_as_it_is_applied() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-progress");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    let count = 300;
    let manifests: String = (0..count)
        .map(|i| {
            format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\ndata:\n  v: \"{i}\"\n")
        })
        .collect();
    repo.write("many.yaml", &manifests);
    repo.commit("many config maps");
    // One apply at a time, so that the sync lasts long enough to look at the cluster while
    // it runs.
    let mut child = sync_cmd(
        cluster,
        &repo,
        &["--app", "many", "-n", n, "--yes", "--wait=false"],
    )
    .env("KUBECTL_GITOPS_CONCURRENCY", "1")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.ends_with(" created"))
        .expect("a line for a created object");
    let applied_by_then = cluster
        .kubectl_ok(&["get", "configmaps", "-n", n, "-o", "name"])
        .lines()
        .filter(|line| line.starts_with("configmap/cm-"))
        .count();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    assert!(
        applied_by_then < count,
        "\"{first}\" was shown only once all {count} objects were applied"
    );
    let created = rest
        .iter()
        .filter(|line| line.ends_with(" created"))
        .count();
    assert_eq!(created + 1, count, "{rest:?}");
}

#[test]
fn conflict_with_another_manager_fails_and_force_conflicts_takes_over() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-conflict");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("settings");
    assert_ok(&sync(
        cluster,
        &repo,
        &["--app", "cfg", "-n", n, "--wait=false"],
    ));
    // Someone else takes the field over.
    cluster.kubectl_ok(&[
        "patch",
        "configmap/settings",
        "-n",
        n,
        "--type=merge",
        "-p",
        "{\"data\":{\"greeting\":\"hacked\"}}",
        "--field-manager=intruder",
    ]);

    let out = sync(cluster, &repo, &["--app", "cfg", "-n", n]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict with \"intruder\"") && err.contains(".data.greeting"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.data.greeting}"),
        "hacked",
        "nothing applied"
    );
    assert_eq!(
        cluster.release_statuses(n, "cfg").last().unwrap().1,
        "failed",
        "the failed sync is recorded"
    );

    assert_ok(&sync(
        cluster,
        &repo,
        &["--app", "cfg", "-n", n, "--force-conflicts"],
    ));
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.data.greeting}"),
        "hello"
    );
}

/// Waits until the app has a record with `status`, or fails after `timeout`.
fn wait_for_status(
    cluster: &TestCluster,
    ns: &str,
    app: &str,
    revision: u32,
    status: &str,
    timeout: Duration,
) {
    let started = Instant::now();
    loop {
        if cluster
            .release_statuses(ns, app)
            .iter()
            .any(|(r, s)| *r == revision && s == status)
        {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "release {revision} of {app} never became {status}: {:?}",
            cluster.release_statuses(ns, app)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn concurrent_sync_is_refused_and_a_killed_sync_leaves_a_failed_record() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-lock");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    // Pods that can never be scheduled: the first sync waits (and holds the app) until killed.
    repo.write(
        "web.yaml",
        &web("nginx:1.26", Some("no-such-node: \"true\"")),
    );
    repo.commit("unschedulable");
    let mut first = sync_cmd(
        cluster,
        &repo,
        &[
            "--app",
            "locked",
            "-n",
            n,
            "--timeout",
            "5m",
            "--lock-duration",
            "3s",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for_status(cluster, n, "locked", 1, "pending", Duration::from_secs(60));

    let out = sync(cluster, &repo, &["--app", "locked", "-n", n]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("being synced by admin@") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );

    // Killed in the middle: the record stays pending until the next sync marks it failed.
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_secs(4)); // the dead sync's lease expires
    repo.write("web.yaml", &web("nginx:1.26", None));
    repo.commit("schedulable");
    let out = sync(
        cluster,
        &repo,
        &["--app", "locked", "-n", n, "-o", "json", "--timeout", "90s"],
    );
    assert_ok(&out);
    assert_eq!(json(&out)["release"], 2);
    assert_eq!(
        cluster.release_statuses(n, "locked"),
        vec![(1, "failed".to_string()), (2, "deployed".to_string())]
    );
}

#[test]
fn read_only_user_gets_a_clear_rbac_error_and_nothing_changes() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-rbac");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("settings");
    let out = sync_cmd(cluster, &repo, &["--app", "ro", "-n", n])
        .env("KUBECONFIG", &cluster.viewer_kubeconfig)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("User \"viewer\" cannot") && err.contains(n),
        "{err}"
    );
    let found = cluster
        .kubectl()
        .args(["get", "configmap/settings", "-n", n])
        .output()
        .unwrap();
    assert!(!found.status.success(), "nothing may be applied");
}

#[test]
fn watch_syncs_a_commit_made_while_it_runs_and_stops_on_interrupt() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-watch");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("one");
    let child = sync_cmd(
        cluster,
        &repo,
        &[
            "main",
            "--app",
            "follow",
            "-n",
            n,
            "--watch",
            "--interval",
            "1s",
            "--wait=false",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_status(cluster, n, "follow", 1, "deployed", Duration::from_secs(60));
    repo.write("settings.yaml", &SETTINGS.replace("hello", "bonjour"));
    repo.commit("two");
    wait_for_status(cluster, n, "follow", 2, "deployed", Duration::from_secs(60));
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.data.greeting}"),
        "bonjour"
    );

    // Ctrl-C (SIGINT) ends it cleanly between syncs.
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("synced") && err.trim_end().ends_with("stopped"),
        "{err}"
    );
    assert_eq!(
        cluster.release_statuses(n, "follow").len(),
        2,
        "one release per sync of a new commit"
    );
}

/// [`web`] with `replicas` misspelt: the server refuses a field the schema does not declare.
fn misspelt() -> String {
    web("example/web:1", None).replace("replicas:", "replica:")
}

#[test]
fn a_first_sync_without_a_prompt_shows_every_object_it_creates_with_secrets_masked() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-first");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.write("web.yaml", &web("example/web:1", None));
    repo.write("creds.yaml", &canary_secret_yaml("creds"));
    repo.commit("an app");

    // Nothing exists, so nothing is dry-run: the preview comes from the manifests.
    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &[
            "--app",
            "first",
            "-n",
            n,
            "--yes",
            "--wait=false",
            "--color=never",
        ],
    );
    assert_ok(&out);
    let requests = cluster.our_requests_since(offset, n);
    assert!(
        !requests.iter().any(|r| r.starts_with("patch(dry-run)")),
        "{requests:?}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        &format!("core/ConfigMap/{n}/settings\n@@ -0,0 "),
        "+  greeting: hello",
        &format!("apps/Deployment/{n}/web\n@@ -0,0 "),
        "+        image: example/web:1",
        &format!("core/Secret/{n}/creds\n@@ -0,0 "),
        "+  password: '***'",
        "+  token: '***'",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        text.contains("\n0 changed, 3 added, 0 removed, 0 unchanged\n"),
        "{text}"
    );
    assert!(!text.contains(CANARY_SECRET_VALUE), "{text}");
    assert_eq!(
        get(cluster, n, "secret/creds", "{.data.token}"),
        base64(CANARY_SECRET_VALUE.as_bytes())
    );
}

#[test]
fn a_misspelt_field_is_refused_and_no_sync_leaves_half_of_its_objects() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sy-strict");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    for i in 0..5 {
        repo.write(
            &format!("cm{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\ndata:\n  k: v{i}\n"
            ),
        );
    }
    repo.write("web.yaml", &misspelt());
    repo.commit("five config maps and a misspelt deployment");
    let args = ["--app", "strict", "-n", n, "--yes", "--wait=false"];

    // A first sync only creates: its objects are not dry-run first, so the refusal comes
    // with the create, and the sync deletes what it had created.
    let offset = cluster.audit_offset();
    let out = sync(cluster, &repo, &args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web.yaml:6: ") && err.contains(".spec.replica: field not declared in schema"),
        "the error names the file and the misspelt field's line: {err}"
    );
    assert!(
        err.contains("the 5 it had created were deleted again: the cluster is as it was"),
        "{err}"
    );
    let requests = cluster.our_requests_since(offset, n);
    assert!(
        !requests.iter().any(|r| r.starts_with("patch(dry-run)")),
        "an install is not dry-run first: {requests:?}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| *r == "delete configmaps")
            .count(),
        5,
        "{requests:?}"
    );
    assert_eq!(cluster.count(n, "configmaps"), 1, "only kube-root-ca.crt");
    assert_eq!(
        cluster.release_statuses(n, "strict"),
        vec![(1, "failed".to_string())]
    );

    // Fixed, it installs.
    repo.write("web.yaml", &web("example/web:1", None));
    repo.commit("fix the typo");
    assert_ok(&sync(cluster, &repo, &args));
    assert_eq!(cluster.count(n, "configmaps"), 6);

    // A change to an existing object and a new misspelt one: everything is dry-run first,
    // the refusal comes before any write, and the existing object keeps its value.
    repo.write(
        "cm0.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm0\ndata:\n  k: changed\n",
    );
    repo.write("api.yaml", &misspelt().replace("name: web", "name: api"));
    repo.commit("change cm0, add a misspelt api");
    let out = sync(cluster, &repo, &args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api.yaml:6 (Deployment.apps ") && err.contains(".spec.replica"),
        "{err}"
    );
    assert_eq!(get(cluster, n, "configmap/cm0", "{.data.k}"), "v0");
    assert_eq!(
        get(cluster, n, "deployments", "{.items[*].metadata.name}"),
        "web"
    );

    // diff-git refuses it the same way (kubectl diff validates strictly too).
    let out = cluster
        .kubectl()
        .args(["diff-git", "HEAD", ".", "--app", "strict", "-n", n])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api.yaml:6 (Deployment.apps ")
            && String::from_utf8_lossy(&out.stderr)
                .contains(".spec.replica: field not declared in schema"),
        "{}",
        describe(&out)
    );
}
