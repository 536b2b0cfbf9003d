//! Order between the apps of the list (`depends_on`), `--create-namespace`, and a first
//! sync into the namespace its own revision creates, checked from the cluster: creation
//! times, the audit log, the namespaces and labels that exist.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use kubectl_gitops_tests::{GitFixture, TestCluster, TestNamespace, describe};
use serde_json::Value;

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: one\n")
}

/// A Deployment that is healthy only once its pod has been ready for 3 seconds: an app
/// that takes a while to become healthy.
fn slow_deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  \
         minReadySeconds: 3\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    \
         metadata:\n      labels: {{app: {name}}}\n    spec:\n      nodeSelector: {{type: kwok}}\n      \
         containers:\n      - name: app\n        image: nginx:1.27\n"
    )
}

fn run(cluster: &TestCluster, repo: &Path, args: &[&str]) -> Output {
    let mut cmd: Command = cluster.kubectl();
    cmd.args(args)
        .current_dir(repo)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn exists(cluster: &TestCluster, args: &[&str]) -> bool {
    cluster
        .kubectl()
        .args(["get"])
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

fn created(cluster: &TestCluster, ns: &str, what: &str) -> jiff::Timestamp {
    cluster
        .kubectl_ok(&[
            "get",
            what,
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.creationTimestamp}",
        ])
        .parse()
        .unwrap()
}

/// The Leases in `ns`: an app's lock is one, so none means no sync started there.
fn leases(cluster: &TestCluster, ns: &str) -> String {
    cluster.kubectl_ok(&["get", "leases", "-n", ns, "-o", "name"])
}

/// A namespace the test does not create (a sync does), deleted when the guard drops.
struct NewNamespace {
    name: String,
}

impl NewNamespace {
    fn new(prefix: &str) -> NewNamespace {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        NewNamespace {
            name: format!(
                "{prefix}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }
}

impl Drop for NewNamespace {
    fn drop(&mut self) {
        let _ = TestCluster::get()
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

/// Four apps: c depends on b, b on a (whose Deployment is slow to become healthy, or
/// refused with `broken`), d on nothing.
struct Chain {
    repo: GitFixture,
    a: TestNamespace,
    b: TestNamespace,
    c: TestNamespace,
    d: TestNamespace,
}

fn chain(cluster: &TestCluster, broken: bool) -> Chain {
    let [a, b, c, d] = ["dep-a", "dep-b", "dep-c", "dep-d"].map(|p| cluster.namespace(p));
    let repo = GitFixture::new();
    let mut first = slow_deployment("slow");
    if broken {
        // The API server refuses a negative replica count.
        first = first.replace("replicas: 1", "replicas: -1");
    }
    repo.write("apps/a/deploy.yaml", &first);
    repo.write("apps/a/cm.yaml", &config_map("a"));
    repo.write("apps/b/cm.yaml", &config_map("b"));
    repo.write("apps/c/cm.yaml", &config_map("c"));
    repo.write("apps/d/cm.yaml", &config_map("d"));
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n\
             - name: c\n  path: apps/c\n  namespace: {}\n  depends_on: [b]\n\
             - name: b\n  path: apps/b\n  namespace: {}\n  depends_on: [a]\n\
             - name: a\n  path: apps/a\n  namespace: {}\n  timeout: 90s\n\
             - name: d\n  path: apps/d\n  namespace: {}\n",
            c.name, b.name, a.name, d.name
        ),
    );
    repo.commit("four apps");
    Chain { repo, a, b, c, d }
}

/// When our requests in `ns` were received (first) and completed (last), from the audit log.
fn span(events: &[Value], ns: &str) -> (String, String) {
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["objectRef"]["namespace"] == ns)
        .collect();
    assert!(!mine.is_empty(), "no requests in {ns}");
    let first = mine
        .iter()
        .filter_map(|e| e["requestReceivedTimestamp"].as_str())
        .min()
        .unwrap();
    let last = mine
        .iter()
        .filter_map(|e| e["stageTimestamp"].as_str())
        .max()
        .unwrap();
    (first.to_string(), last.to_string())
}

#[test]
fn sync_all_starts_an_app_once_the_apps_it_depends_on_are_healthy() {
    let cluster = TestCluster::get();
    let apps = chain(cluster, false);
    let offset = cluster.audit_offset();
    let out = run(cluster, apps.repo.path(), &["sync", "--all", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let deployment_a = created(cluster, &apps.a.name, "deployment/slow");
    let [a, b, c, d] = [
        ("a", &apps.a),
        ("b", &apps.b),
        ("c", &apps.c),
        ("d", &apps.d),
    ]
    .map(|(app, ns)| created(cluster, &ns.name, &format!("configmap/{app}")));
    // a's Deployment is healthy 3s after its pod is ready at the earliest: b came after.
    assert!(
        b.duration_since(deployment_a).as_secs() >= 3,
        "b ({b}) was created less than 3s after a's Deployment ({deployment_a})"
    );
    assert!(a <= b && b <= c, "a {a}, b {b}, c {c}");
    // d depends on nothing: it did not wait for a.
    assert!(d < b, "d ({d}) waited for a (b {b})");
    // To the microsecond: nothing of b's before a's sync ended, nothing of c's before b's.
    let events = cluster.our_audit_events_since(offset);
    let (_, a_last) = span(&events, &apps.a.name);
    let (b_first, b_last) = span(&events, &apps.b.name);
    let (c_first, _) = span(&events, &apps.c.name);
    let (d_first, _) = span(&events, &apps.d.name);
    assert!(
        a_last < b_first,
        "b started at {b_first}, a ended at {a_last}"
    );
    assert!(
        b_last < c_first,
        "c started at {c_first}, b ended at {b_last}"
    );
    assert!(
        d_first < a_last,
        "d started at {d_first}, after a ended at {a_last}"
    );
    for (app, ns) in [
        ("a", &apps.a),
        ("b", &apps.b),
        ("c", &apps.c),
        ("d", &apps.d),
    ] {
        assert_eq!(
            cluster.release_statuses(&ns.name, app),
            [(1, "deployed".to_string())],
            "{app}"
        );
    }
    // The summary keeps the list's order.
    let text = stdout(&out);
    let rows: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["a", "b", "c", "d"].contains(w))
        .collect();
    assert_eq!(rows, ["c", "b", "a", "d"], "{text}");
}

#[test]
fn a_failed_app_skips_the_apps_that_depend_on_it_and_no_others() {
    let cluster = TestCluster::get();
    let apps = chain(cluster, true);
    let out = run(
        cluster,
        apps.repo.path(),
        &["sync", "--all", "--yes", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("1 of 4 destinations failed"),
        "{}",
        describe(&out)
    );
    let doc = json(&out);
    crate::schemas::assert_matches("items.json", &doc);
    let item = |app: &str| {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["app"] == app)
            .unwrap_or_else(|| panic!("no item for {app}: {doc:#}"))
            .clone()
    };
    assert!(item("a")["error"].is_string(), "{doc:#}");
    let context = item("a")["context"].clone();
    let a = serde_json::json!({ "app": "a", "context": context });
    let b = serde_json::json!({ "app": "b", "context": context });
    assert_eq!(
        item("b")["skipped"],
        serde_json::json!({ "dependency": a, "failed": a })
    );
    assert_eq!(
        item("c")["skipped"],
        serde_json::json!({ "dependency": b, "failed": a })
    );
    assert_eq!(item("b")["error"], Value::Null);
    assert_eq!(item("d")["status"], "deployed", "{doc:#}");
    // Skipped apps were never touched: no lock, no record, no object.
    for ns in [&apps.b, &apps.c] {
        assert_eq!(leases(cluster, &ns.name), "");
        assert_eq!(cluster.count(&ns.name, "secrets"), 0, "{}", ns.name);
    }
    assert!(!exists(cluster, &["configmap", "b", "-n", &apps.b.name]));
    assert!(exists(cluster, &["configmap", "d", "-n", &apps.d.name]));

    // For people: the summary says skipped, naming the dependency, and counts no failure.
    let out = run(cluster, apps.repo.path(), &["sync", "--all", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let text = stdout(&out);
    let row = |app: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(app))
            .unwrap_or_else(|| panic!("no row for {app}:\n{text}"))
            .to_string()
    };
    let ctx = context.as_str().unwrap();
    assert!(
        row("b").ends_with(&format!(
            "skipped: depends on app a on context {ctx}, which failed"
        )),
        "{text}"
    );
    assert!(
        row("c").ends_with(&format!(
            "skipped: depends on app b on context {ctx}, which was skipped (app a on context {ctx} failed)"
        )),
        "{text}"
    );
    assert!(row("a").contains("error:"), "{text}");
    assert!(
        stderr(&out).contains("1 of 4 destinations failed"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_dependency_cycle_or_an_unknown_app_is_refused_before_anything_is_written() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dep-cycle");
    let repo = GitFixture::new();
    for app in ["a", "b", "c"] {
        repo.write(&format!("apps/{app}/cm.yaml"), &config_map(app));
    }
    let list = |deps: [&str; 3]| {
        let mut text = "apps:\n".to_string();
        for (app, dep) in ["a", "b", "c"].iter().zip(deps) {
            text.push_str(&format!(
                "- name: {app}\n  path: apps/{app}\n  namespace: {}\n  depends_on: [{dep}]\n",
                ns.name
            ));
        }
        text
    };
    repo.write(".kubectl-gitops.yaml", &list(["b", "c", "a"]));
    repo.commit("a cycle");
    let out = run(cluster, repo.path(), &["sync", "--all", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains(
            "apps[0] (a).depends_on: the apps depend on each other in a cycle: a -> b -> c -> a"
        ),
        "{}",
        describe(&out)
    );
    assert_eq!(leases(cluster, &ns.name), "");
    assert_eq!(cluster.count(&ns.name, "secrets"), 0);
    assert!(!exists(cluster, &["configmap", "a", "-n", &ns.name]));

    repo.write(".kubectl-gitops.yaml", &list(["b", "db", "b"]));
    repo.commit("an unknown app");
    let out = run(cluster, repo.path(), &["sync", "--all", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out)
            .contains("apps[1] (b).depends_on[0]: there is no app named db (the list has a, b, c)"),
        "{}",
        describe(&out)
    );
    assert_eq!(leases(cluster, &ns.name), "");
    assert!(!exists(cluster, &["configmap", "c", "-n", &ns.name]));
}

#[test]
fn create_namespace_creates_the_app_namespace_once_and_never_prunes_it() {
    let cluster = TestCluster::get();
    let ns = NewNamespace::new("create-ns");
    let repo = GitFixture::new();
    repo.write("deploy/cm.yaml", &config_map("settings"));
    repo.commit("one ConfigMap");
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "HEAD", "deploy", "--app", "web", "-n", &ns.name];
        args.extend_from_slice(extra);
        run(cluster, repo.path(), &args)
    };

    // Without the flag: refused, saying how to go on; nothing is created.
    let out = sync(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "namespace {} does not exist, and app web keeps its lock and release records there",
            ns.name
        )) && stderr(&out).contains("--create-namespace"),
        "{}",
        describe(&out)
    );
    assert!(!exists(cluster, &["namespace", &ns.name]));

    // A dry run says it would create it, and does not.
    let out = sync(&["--create-namespace", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "namespace {} would be created (--create-namespace)",
            ns.name
        )),
        "{}",
        describe(&out)
    );
    assert!(!exists(cluster, &["namespace", &ns.name]));

    let out = sync(&["--create-namespace", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("created namespace {}", ns.name)),
        "{}",
        describe(&out)
    );
    assert_eq!(json(&out)["counts"]["created"], 1);
    let uid = cluster.kubectl_ok(&[
        "get",
        "namespace",
        &ns.name,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    // Not a member of the app: no ApplySet label.
    let labels = cluster.kubectl_ok(&[
        "get",
        "namespace",
        &ns.name,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        !labels.contains("applyset.kubernetes.io/part-of"),
        "{labels}"
    );
    assert!(exists(cluster, &["configmap", "settings", "-n", &ns.name]));
    assert_eq!(
        cluster.release_statuses(&ns.name, "web"),
        [(1, "deployed".to_string())]
    );

    // Again, with --prune: nothing to do, no new release, the namespace the same one.
    let out = sync(&["--create-namespace", "--prune", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(json(&out)["recorded"], false, "{}", describe(&out));
    assert!(
        !stderr(&out).contains("created namespace"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "namespace",
            &ns.name,
            "-o",
            "jsonpath={.metadata.uid}"
        ]),
        uid
    );
}

#[test]
fn create_namespace_from_the_app_list() {
    let cluster = TestCluster::get();
    let ns = NewNamespace::new("create-ns-list");
    let repo = GitFixture::new();
    repo.write("apps/web/cm.yaml", &config_map("web"));
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n- name: web\n  path: apps/web\n  namespace: {}\n  create_namespace: true\n",
            ns.name
        ),
    );
    repo.commit("an app in a namespace to create");
    let out = run(cluster, repo.path(), &["sync", "--app", "web", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(exists(cluster, &["configmap", "web", "-n", &ns.name]));
    assert_eq!(
        cluster.release_statuses(&ns.name, "web"),
        [(1, "deployed".to_string())]
    );
}

#[test]
fn a_first_sync_into_the_namespace_its_revision_creates() {
    let cluster = TestCluster::get();
    for prune in [false, true] {
        let ns = NewNamespace::new("own-ns");
        let repo = GitFixture::new();
        repo.write(
            "deploy/ns.yaml",
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n",
                ns.name
            ),
        );
        repo.write("deploy/cm.yaml", &config_map("settings"));
        repo.commit("a namespace and what it holds");
        let sync = |prune: bool| {
            let mut args = vec!["sync", "HEAD", "deploy", "--app", "own", "-n", &ns.name];
            args.extend(["-o", "json"]);
            if prune {
                args.push("--prune");
            }
            run(cluster, repo.path(), &args)
        };
        let out = sync(prune);
        assert_eq!(
            out.status.code(),
            Some(0),
            "--prune {prune}: {}",
            describe(&out)
        );
        assert!(
            stderr(&out).contains(&format!("applied Namespace {} first", ns.name)),
            "{}",
            describe(&out)
        );
        assert_eq!(json(&out)["status"], "deployed");
        // The Namespace is a member, and the parent lists its kind, so a prune knows it.
        let part_of = cluster.kubectl_ok(&[
            "get",
            "namespace",
            &ns.name,
            "-o",
            "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/part-of}",
        ]);
        assert!(part_of.starts_with("applyset-"), "{part_of:?}");
        let kinds = cluster.kubectl_ok(&[
            "get",
            "secrets",
            "-n",
            &ns.name,
            "-l",
            &format!("applyset.kubernetes.io/id={part_of}"),
            "-o",
            "jsonpath={.items[0].metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}",
        ]);
        assert!(
            kinds.split(',').any(|k| k == "Namespace"),
            "contains-group-kinds: {kinds:?}"
        );
        assert!(exists(cluster, &["configmap", "settings", "-n", &ns.name]));
        assert_eq!(
            cluster.release_statuses(&ns.name, "own"),
            [(1, "deployed".to_string())]
        );

        // A later --prune sync that still has the Namespace changes nothing.
        let out = sync(true);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_eq!(json(&out)["recorded"], false, "{}", describe(&out));
        assert_eq!(json(&out)["counts"]["pruned"], 0);
        assert!(exists(cluster, &["namespace", &ns.name]));
    }
}
