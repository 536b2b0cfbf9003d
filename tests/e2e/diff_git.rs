//! `kubectl diff-git`, run by the real kubectl through its plugin discovery.

use std::process::Output;

use crate::requests::{Request, counted, lists_of, requests_about};
use kubectl_gitops_tests::{GitFixture, TestCluster, TestNamespace, describe};

/// The fixture app: a Namespace of its own, a CRD and a custom resource, a Deployment, a
/// Service, a ConfigMap and a Secret. Everything unique per test, so tests run in parallel.
struct App {
    /// The namespace the app's objects live in (created by the app itself).
    ns: String,
    /// The CRD's group, unique per test since CRDs are cluster-scoped.
    group: String,
}

impl App {
    fn new(test_ns: &TestNamespace) -> App {
        App {
            ns: format!("{}-app", test_ns.name),
            group: format!("{}.example.com", test_ns.name),
        }
    }

    fn write(&self, repo: &GitFixture, image: &str, secret: &str) {
        let ns = &self.ns;
        let group = &self.group;
        repo.write(
            "deploy/namespace.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        );
        repo.write(
            "deploy/crd.yaml",
            &format!(
                "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  names: {{kind: Widget, plural: widgets, singular: widget}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer, default: 3}}
              color: {{type: string}}
"
            ),
        );
        repo.write(
            "deploy/widget.yaml",
            &format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: gadget\n  namespace: {ns}\nspec:\n  color: blue\n"),
        );
        repo.write(
            "deploy/app.yaml",
            &format!(
                "# The web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {ns}
stringData:
  password: {secret}
"
            ),
        );
        repo.write("README.md", "not a manifest\n");
        repo.write("deploy/values.yaml", "replicas: 3\nimage: not-a-manifest\n");
    }
}

/// Runs `kubectl diff-git ARGS` in `repo` as admin.
fn diff_git(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .arg("diff-git")
        .args(args)
        .current_dir(repo.path())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
}

/// Applies the repository's deploy/ directory with the real kubectl, CRD first.
fn kubectl_apply(cluster: &TestCluster, repo: &GitFixture, app: &App) {
    let dir = repo.path().join("deploy");
    let path = |f: &str| dir.join(f).display().to_string();
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=someone",
        "-f",
        &path("namespace.yaml"),
        "-f",
        &path("crd.yaml"),
    ]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/widgets.{}", app.group),
        "--timeout=60s",
    ]);
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=someone",
        "-f",
        &path("app.yaml"),
        "-f",
        &path("widget.yaml"),
    ]);
}

fn delete_crd(cluster: &TestCluster, app: &App) {
    let _ = cluster
        .kubectl()
        .args([
            "delete",
            "crd",
            &format!("widgets.{}", app.group),
            "--wait=false",
        ])
        .output();
    let _ = cluster
        .kubectl()
        .args(["delete", "namespace", &app.ns, "--wait=false"])
        .output();
}

#[test]
fn new_namespace_crd_and_custom_resource_show_as_added_then_no_diff_once_applied() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-added");
    let app = App::new(&test_ns);
    let repo = GitFixture::new();
    app.write(&repo, "nginx:1.26", "canary-s3cr3t-1");
    repo.commit("first version");

    let out = diff_git(cluster, &repo, &["-n", &test_ns.name, "--color=never"]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "+++ {}/{}/Widget/{}/gadget",
            short(&repo),
            app.group,
            app.ns
        )),
        "{text}"
    );
    assert!(text.contains("+  name: gadget"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("0 changed, 7 added, 0 removed, 0 unchanged"),
        "{text}"
    );
    assert!(!text.contains("canary-s3cr3t-1") && !stderr(&out).contains("canary-s3cr3t-1"));

    kubectl_apply(cluster, &repo, &app);
    // Everything live now; server defaults (strategy, ports' protocol, the CRD's default
    // size, the Service's clusterIP...) must not show as differences.
    let out = diff_git(cluster, &repo, &["-n", &test_ns.name]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out).trim(),
        "0 changed, 0 added, 0 removed, 7 unchanged"
    );
    delete_crd(cluster, &app);
}

fn short(repo: &GitFixture) -> String {
    repo.git(&["rev-parse", "--short=7", "HEAD"])
}

#[test]
fn changed_image_and_secret_exit_1_show_the_line_and_never_the_secret() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-change");
    let app = App::new(&test_ns);
    let repo = GitFixture::new();
    app.write(&repo, "nginx:1.26", "canary-before-9f2");
    repo.commit("first");
    kubectl_apply(cluster, &repo, &app);
    app.write(&repo, "nginx:1.27", "canary-after-9f2");
    repo.commit("bump");

    let out = diff_git(
        cluster,
        &repo,
        &["deploy", "--color=never", "-n", &test_ns.name],
    );
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("--- live/apps/Deployment/{}/web", app.ns)),
        "{text}"
    );
    assert!(
        text.contains("-        image: nginx:1.26\n+        image: nginx:1.27"),
        "{text}"
    );
    assert!(
        text.contains("-  password: '*** (before)'\n+  password: '*** (after)'"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("2 changed, 0 added, 0 removed, 5 unchanged"),
        "{text}"
    );

    let json = diff_git(cluster, &repo, &["-o", "json", "-n", &test_ns.name]);
    assert_exit(&json, 1);
    let all = format!("{text}{}{}{}", stderr(&out), stdout(&json), stderr(&json));
    for canary in [
        "canary-before-9f2",
        "canary-after-9f2",
        "Y2FuYXJ5LWJlZm9yZS05ZjI",
        "Y2FuYXJ5LWFmdGVyLTlmMg",
    ] {
        assert!(
            !all.contains(canary),
            "secret value {canary} leaked:\n{all}"
        );
    }
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        doc["summary"],
        serde_json::json!({"added": 0, "changed": 2, "removed": 0, "unchanged": 5})
    );
    assert_eq!(doc["before"], "live");
    let names: Vec<String> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}/{}/{}",
                c["action"].as_str().unwrap(),
                c["key"]["kind"].as_str().unwrap(),
                c["key"]["name"].as_str().unwrap()
            )
        })
        .collect();
    // Stable order: by group, kind, namespace, name (the core group first).
    assert_eq!(names, ["changed/Secret/creds", "changed/Deployment/web"]);
    let image = &doc["changes"][1]["after"]["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, "nginx:1.27");

    // --show-secrets is the one way to see them.
    let shown = diff_git(
        cluster,
        &repo,
        &["--show-secrets", "-n", &test_ns.name, "--color=never"],
    );
    assert!(
        stdout(&shown).contains("Y2FuYXJ5LWFmdGVyLTlmMg=="),
        "{}",
        describe(&shown)
    );

    // -o name lists what differs, kubectl style.
    let names = diff_git(cluster, &repo, &["-o", "name", "-n", &test_ns.name]);
    assert_eq!(stdout(&names), "secret/creds\ndeployment.apps/web\n");
    delete_crd(cluster, &app);
}

#[test]
fn revision_range_needs_no_cluster() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-range");
    let app = App::new(&test_ns);
    let repo = GitFixture::new();
    app.write(&repo, "nginx:1.26", "x");
    repo.commit("one");
    repo.git(&["tag", "v1"]);
    app.write(&repo, "nginx:1.27", "x");
    repo.remove("deploy/widget.yaml");
    repo.commit("two");
    let out = cluster
        .kubectl()
        .args(["diff-git", "v1..main", "deploy", "--color=never"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("+        image: nginx:1.27"), "{text}");
    assert!(text.contains("-kind: Widget"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("1 changed, 0 added, 1 removed, 5 unchanged"),
        "{text}"
    );

    let md = cluster
        .kubectl()
        .args(["diff-git", "v1..main", "-o", "markdown"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .current_dir(repo.path())
        .output()
        .unwrap();
    let md = stdout(&md);
    assert!(md.contains("<details>") && md.contains("```diff"), "{md}");
}

#[test]
fn kustomize_overlay_is_rendered() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-kust");
    let repo = GitFixture::new();
    repo.write(
        "base/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: example/api:1.0\n",
    );
    repo.write("base/kustomization.yaml", "resources:\n- deploy.yaml\n");
    repo.write(
        "overlays/prod/kustomization.yaml",
        &format!("namespace: {}\nnamePrefix: prod-\nresources:\n- ../../base\nimages:\n- name: example/api\n  newTag: \"2.0\"\n", test_ns.name),
    );
    repo.commit("kustomize");
    let out = diff_git(cluster, &repo, &["HEAD", "overlays/prod", "--color=never"]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "+++ {}/apps/Deployment/{}/prod-api",
            short(&repo),
            test_ns.name
        )),
        "{text}"
    );
    assert!(text.contains("+        image: example/api:2.0"), "{text}");
}

#[test]
fn working_tree_shows_uncommitted_edits_and_color_follows_the_flags() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-wt");
    let repo = GitFixture::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: one\n",
    );
    repo.commit("cm");
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        &test_ns.name,
        "-f",
        &repo.path().join("cm.yaml").display().to_string(),
    ]);
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: two\n",
    );

    assert_exit(&diff_git(cluster, &repo, &["-n", &test_ns.name]), 0);
    let out = diff_git(
        cluster,
        &repo,
        &["--working-tree", "-n", &test_ns.name, "--color=always"],
    );
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("\x1b[31m-  a: one\x1b[0m"), "{text:?}");
    // kubectl applied the field, so taking it over is a conflict a sync must force.
    assert!(
        stderr(&out).contains("warning: ConfigMap")
            && stderr(&out).contains("conflict with \"kubectl\": .data.a"),
        "{}",
        describe(&out)
    );
    assert!(text.contains("+++ working-tree/core/ConfigMap/"), "{text}");

    // NO_COLOR and a pipe both mean no colour in auto mode.
    let plain = cluster
        .kubectl()
        .args(["diff-git", "--working-tree", "-n", &test_ns.name])
        .env("NO_COLOR", "1")
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(!stdout(&plain).contains('\x1b'), "{}", describe(&plain));

    // A closed pipe ends quietly.
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "kubectl diff-git --working-tree -n {} -U 0 | head -n 1",
            test_ns.name
        ))
        .env("PATH", kubectl_gitops_tests::plugin_path())
        .env("KUBECONFIG", &cluster.admin_kubeconfig)
        .current_dir(repo.path())
        .output()
        .unwrap();
    let err = stderr(&piped).to_lowercase();
    assert!(
        piped.status.success() && !err.contains("error") && !err.contains("pipe"),
        "{}",
        describe(&piped)
    );
}

#[test]
fn external_diff_program_gets_two_directories() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-ext");
    let repo = GitFixture::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: one\n",
    );
    repo.commit("cm");
    let out = cluster
        .kubectl()
        .args(["diff-git", "-n", &test_ns.name])
        .env("KUBECTL_EXTERNAL_DIFF", "diff -r")
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("Only in ") && text.contains(&format!("core.ConfigMap.{}.cfg", test_ns.name)),
        "{text}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-bad");
    let ns = test_ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "good/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n",
    );
    repo.write(
        "broken/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: [unclosed\n",
    );
    repo.write(
        "dup/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\n",
    );
    repo.write(
        "dup/b.yaml",
        "---\n# again\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\n",
    );
    repo.write(
        "unknown/w.yaml",
        "apiVersion: nothing.example.com/v1\nkind: Gizmo\nmetadata:\n  name: g\n",
    );
    repo.commit("inputs");

    let check = |args: &[&str], expect: &[&str]| {
        let out = diff_git(cluster, &repo, args);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{err}");
        for e in expect {
            assert!(err.contains(e), "expected {e:?} in:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    // The parser notices at the end of the input, and names where the sequence opened.
    check(
        &["HEAD", "broken", "-n", ns],
        &["broken/a.yaml:7:1:", "line 6 column 6"],
    );
    check(
        &["HEAD", "dup", "-n", ns],
        &["dup/a.yaml:1", "dup/b.yaml:3"],
    );
    check(&["no-such-rev", "good", "-n", ns], &["no-such-rev"]);
    check(&["HEAD", "missing/dir", "-n", ns], &["missing/dir"]);
    check(
        &["HEAD", "unknown", "-n", ns],
        &["nothing.example.com/v1", "Gizmo", "unknown/w.yaml:1"],
    );

    // The read-only user may read but not dry-run a write: say which verb on which resource.
    let out = cluster
        .kubectl()
        .args(["diff-git", "HEAD", "good", "-n", ns])
        .env("KUBECONFIG", &cluster.viewer_kubeconfig)
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("User \"viewer\" cannot patch resource \"configmaps\""),
        "{err}"
    );

    // Nothing listens on port 1: fail fast, naming the server.
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: dead\n  context: {cluster: dead, user: u}\ncurrent-context: dead\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = cluster
        .kubectl()
        .args(["diff-git", "HEAD", "good", "--request-timeout=3s"])
        .env("KUBECONFIG", &dead)
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("https://127.0.0.1:1"),
        "{}",
        describe(&out)
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );

    // A context that does not exist lists the ones that do.
    let out = diff_git(cluster, &repo, &["HEAD", "good", "--context", "prod"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("available contexts: admin@test"),
        "{}",
        describe(&out)
    );
}

#[test]
fn namespace_that_does_not_exist_shows_objects_as_added_with_a_warning() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-nons");
    let missing = format!("{}-absent", test_ns.name);
    let repo = GitFixture::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: one\n",
    );
    repo.commit("cm");
    let out = diff_git(cluster, &repo, &["-n", &missing, "--color=never"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!(
            "+++ {}/core/ConfigMap/{missing}/cfg",
            short(&repo)
        )),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains(&format!("warning: namespace \"{missing}\" does not exist")),
        "{}",
        describe(&out)
    );
}

#[test]
fn for_a_synced_app_diff_shows_what_sync_would_prune() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-app");
    let n = test_ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "app/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: one\n",
    );
    repo.write(
        "app/b.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: one\n",
    );
    repo.commit("two configmaps");
    let out = cluster
        .kubectl()
        .args(["sync", "HEAD", "app", "-n", n, "--wait=false"])
        .current_dir(repo.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    // Synced (with membership labels): no difference, with the app name derived as sync derives it.
    assert_exit(&diff_git(cluster, &repo, &["HEAD", "app", "-n", n]), 0);

    repo.remove("app/b.yaml");
    repo.commit("drop b");
    let out = diff_git(cluster, &repo, &["HEAD", "app", "-n", n, "--color=never"]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("--- live/core/ConfigMap/{n}/b")) && text.contains("-  name: b"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("0 changed, 0 added, 1 removed, 1 unchanged"),
        "{text}"
    );
}

#[test]
fn objects_nobody_touched_since_the_sync_are_not_dry_run_but_an_edit_is_still_seen() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dg-fast");
    let other_ns = cluster.namespace("dg-fast-other");
    let (n, other) = (test_ns.name.as_str(), other_ns.name.as_str());
    let repo = GitFixture::new();
    // Members in the records namespace and in another one (an additional namespace of the
    // ApplySet), of two kinds.
    for i in 0..5 {
        repo.write(
            &format!("app/cm{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\ndata:\n  k: v{i}\n"
            ),
        );
    }
    for i in 0..3 {
        repo.write(
            &format!("app/other{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other{i}\n  namespace: {other}\ndata:\n  k: v{i}\n"
            ),
        );
    }
    repo.write(
        "app/service.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {other}\nspec:\n  ports:\n  - port: 80\n"
        ),
    );
    repo.commit("configmaps and a service in two namespaces");
    let sync = |args: &[&str]| {
        cluster
            .kubectl()
            .arg("sync")
            .args(args)
            .current_dir(repo.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let namespaces = [n, other];
    let id = gitops::apply::applyset::ApplySetId::for_app("fast", n).to_string();
    let offset = cluster.audit_offset();
    assert_exit(
        &sync(&["HEAD", "app", "--app", "fast", "-n", n, "--wait=false"]),
        0,
    );
    // A first sync only creates: nothing is dry-run. Without an ApplySet parent nothing is
    // a member yet, so no member LIST is made and each kind and namespace is listed; once
    // applied, every object keeps what its apply answered (nothing is listed again, not
    // even the Service a controller may write).
    let requests = requests_about(cluster, offset, &namespaces, Some(id.as_str()));
    assert!(
        !requests.iter().any(|r| r.verb == "patch(dry-run)"),
        "{requests:#?}"
    );
    assert_eq!(
        counted(&requests, "list")
            .into_iter()
            .filter(|(what, _)| what.starts_with("configmaps") || what.starts_with("services"))
            .collect::<Vec<_>>(),
        [
            (format!("configmaps {n}"), 1),
            (format!("configmaps {other}"), 1),
            (format!("services {other}"), 1),
        ],
        "{requests:#?}"
    );
    let dry_runs = |requests: &[Request]| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.verb == "patch(dry-run)")
            .map(|r| format!("{} {}/{}", r.resource, r.namespace, r.name))
            .collect()
    };
    let dry_runs_since = |offset: u64| {
        dry_runs(&requests_about(
            cluster,
            offset,
            &namespaces,
            Some(id.as_str()),
        ))
    };

    // Nothing changed: no dry-run, one LIST per kind across all namespaces (the app's
    // members, label-selected), shared by the comparison and the ApplySet member lookup;
    // no LIST per namespace, no GET of any member, nor of a namespace that holds members;
    // the ApplySet parent read once.
    let offset = cluster.audit_offset();
    let out = diff_git(cluster, &repo, &["HEAD", "app", "--app", "fast", "-n", n]);
    assert_exit(&out, 0);
    let requests = requests_about(cluster, offset, &namespaces, Some(id.as_str()));
    assert_eq!(dry_runs(&requests), Vec::<String>::new(), "{requests:#?}");
    assert_eq!(
        counted(&requests, "list"),
        [
            ("configmaps *".to_string(), 1),
            // The release records (label-selected).
            (format!("secrets {n}"), 1),
            ("services *".to_string(), 1),
        ],
        "{requests:#?}"
    );
    // (Release records are left out: tests that read every namespace's releases run
    // meanwhile, and the audit log cannot tell their reads from this command's.)
    let gets: Vec<String> = requests
        .iter()
        .filter(|r| r.verb == "get" && !r.name.starts_with("fast.r"))
        .map(|r| format!("{} {}/{}", r.resource, r.namespace, r.name))
        .collect();
    assert_eq!(
        gets,
        [format!("secrets {n}/fast.applyset")],
        "{requests:#?}"
    );
    assert!(
        requests.iter().all(|r| !r.verb.starts_with("patch")
            && !r.verb.starts_with("create")
            && !r.verb.starts_with("update")),
        "a diff writes nothing: {requests:#?}"
    );

    // Someone writes a field the app does not apply (an annotation of their own), as
    // controllers write status: the object's resourceVersion moves, but nothing the app
    // owns, so it is still known unchanged without a dry-run.
    cluster.kubectl_ok(&[
        "annotate",
        "configmap/cm1",
        "-n",
        n,
        "example.com/note=hello",
    ]);
    let offset = cluster.audit_offset();
    let out = diff_git(cluster, &repo, &["HEAD", "app", "--app", "fast", "-n", n]);
    assert_exit(&out, 0);
    assert_eq!(
        dry_runs_since(offset),
        Vec::<String>::new(),
        "a write to fields the app does not own needs no dry-run"
    );

    // Someone edits one of them: it is dry-run (and its change shown), the others are not.
    cluster.kubectl_ok(&[
        "patch",
        "configmap/other1",
        "-n",
        other,
        "--type=merge",
        "-p",
        "{\"data\":{\"k\":\"edited\"}}",
    ]);
    let offset = cluster.audit_offset();
    let out = diff_git(
        cluster,
        &repo,
        &["HEAD", "app", "--app", "fast", "-n", n, "--color=never"],
    );
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("-  k: edited\n+  k: v1"),
        "{}",
        describe(&out)
    );
    // Only the edited object: dry-run, and again with force, since kubectl-patch owns the
    // field now (the conflict warning).
    assert_eq!(
        dry_runs_since(offset),
        [
            format!("configmaps {other}/other1"),
            format!("configmaps {other}/other1")
        ],
        "only the edited object is dry-run"
    );

    // A member the revision no longer has is still found (its kind and namespace were
    // listed once, for both the comparison and the member lookup) and shown as removed.
    repo.remove("app/service.yaml");
    repo.commit("drop the service");
    let offset = cluster.audit_offset();
    let out = diff_git(
        cluster,
        &repo,
        &["HEAD", "app", "--app", "fast", "-n", n, "--color=never"],
    );
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!("--- live/core/Service/{other}/web")),
        "{}",
        describe(&out)
    );
    let requests = requests_about(cluster, offset, &namespaces, Some(id.as_str()));
    assert!(
        counted(&requests, "list").iter().all(|(_, c)| *c == 1),
        "{requests:#?}"
    );

    // Take the edited field back and prune the service, then a no-op resync patches no
    // member and reads each kind once.
    assert_exit(
        &sync(&[
            "HEAD",
            "app",
            "--app",
            "fast",
            "-n",
            n,
            "--wait=false",
            "--prune",
            "--force-conflicts",
        ]),
        0,
    );
    let offset = cluster.audit_offset();
    assert_exit(
        &sync(&["HEAD", "app", "--app", "fast", "-n", n, "--wait=false"]),
        0,
    );
    let requests = requests_about(cluster, offset, &namespaces, Some(id.as_str()));
    let member_writes: Vec<&Request> = requests
        .iter()
        .filter(|r| r.verb.starts_with("patch") && r.resource == "configmaps")
        .collect();
    assert_eq!(
        member_writes,
        Vec::<&Request>::new(),
        "a no-op resync patches no member"
    );
    // Nor the ApplySet parent, which already says what it would write; and it records no
    // release: the deployed one, release 2, is patched once to say it was found current.
    let record_writes: Vec<String> = requests
        .iter()
        .filter(|r| r.resource == "secrets" && r.namespace == n)
        .filter(|r| matches!(r.verb.as_str(), "create" | "patch" | "update"))
        .map(|r| format!("{} {}", r.verb, r.name))
        .collect();
    assert_eq!(record_writes, ["patch fast.r2"], "{requests:#?}");
    // The records are listed twice, both while the plan reads the cluster: the last
    // deployed one (for its fingerprints; superseded at the end without reading it again),
    // and only their metadata (to number, fail, supersede and trim; under the app's lock
    // nobody else writes them, so the sync does not list them again).
    assert_eq!(
        counted(&requests, "list")
            .into_iter()
            .filter(|(what, _)| what.starts_with("secrets"))
            .collect::<Vec<_>>(),
        [(format!("secrets {n}"), 2)],
        "{requests:#?}"
    );
    assert_eq!(
        cluster.release_statuses(n, "fast").last().unwrap(),
        &(2, "deployed".to_string())
    );
    // Release 2 keeps its manifest, and says when it was last found current.
    let r2 = cluster.kubectl_ok(&["release-history", "fast", "2", "-n", n, "--manifest"]);
    assert!(
        r2.contains("name: cm0") && r2.contains("name: other1"),
        "{r2}"
    );
    let r2: serde_json::Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "release-history",
        "fast",
        "2",
        "-n",
        n,
        "-o",
        "json",
    ]))
    .unwrap();
    assert!(r2["last_synced"].is_string(), "{r2}");
    assert_eq!(
        lists_of(&requests, "configmaps"),
        [("configmaps *".to_string(), 1)],
        "{requests:#?}"
    );
    // And the next diff after it is still the fast one.
    let offset = cluster.audit_offset();
    assert_exit(
        &diff_git(cluster, &repo, &["HEAD", "app", "--app", "fast", "-n", n]),
        0,
    );
    assert_eq!(dry_runs_since(offset), Vec::<String>::new());
}

#[test]
fn with_repo_the_path_is_inside_that_repository_wherever_the_command_runs() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dg-repo");
    let repo = GitFixture::new();
    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {k: v}\n",
    );
    repo.write(
        "apps/api/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: api}\ndata: {k: v}\n",
    );
    repo.commit("two apps");
    let top = repo.path().to_str().unwrap();
    // From inside another directory of the checkout, and from outside it.
    let elsewhere = tempfile::tempdir().unwrap();
    for cwd in [repo.path().join("apps/api"), elsewhere.path().to_path_buf()] {
        let out = cluster
            .kubectl()
            .args([
                "diff-git", "HEAD", "apps/web", "--repo", top, "-n", &ns.name,
            ])
            .args(["-o", "name"])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "configmap/web\n",
            "from {}: {}",
            cwd.display(),
            describe(&out)
        );
    }
}
