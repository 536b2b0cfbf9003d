//! Helm charts, rendered by the real helm that build.sh builds, through every plugin:
//! diff-git (against the cluster and between revisions), sync, release-history and drift.

use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::{Value, json};

/// A value in a values file that must never be printed unless asked for.
const TOKEN: &str = "tok-3f9a1c-not-for-logs";

/// A repository with a chart under `chart/`: a Deployment and a custom resource of the
/// chart's own CRD (in `crds/`), a vendored subchart under `charts/`, a test hook, and
/// values files inside the chart and outside it (`env/prod.yaml`). The CRD's group is
/// unique per test, since CRDs are cluster-scoped.
fn chart_repo(group: &str) -> GitFixture {
    let repo = GitFixture::new();
    repo.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: web-chart\nversion: 1.4.0\nappVersion: \"2.1\"\n\
         dependencies:\n- name: cache\n  version: 0.1.0\n",
    );
    repo.write(
        "chart/values.yaml",
        "replicas: 1\nimage: {tag: \"1.25\"}\ncolor: red\n",
    );
    repo.write(
        "chart/templates/deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  labels: {chart: {{ .Chart.Name }}}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: \"nginx:{{ .Values.image.tag }}\"
",
    );
    repo.write(
        "chart/templates/widget.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {{{{ .Release.Name }}}}-gadget\n\
             spec:\n  color: {{{{ .Values.color }}}}\n"
        ),
    );
    repo.write(
        "chart/templates/tests/connection.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  \
         annotations: {helm.sh/hook: test}\nspec:\n  containers: [{name: t, image: busybox}]\n",
    );
    repo.write(
        "chart/crds/widget.yaml",
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
              color: {{type: string}}
"
        ),
    );
    repo.write(
        "chart/charts/cache/Chart.yaml",
        "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    );
    repo.write("chart/charts/cache/values.yaml", "size: 10\n");
    repo.write(
        "chart/charts/cache/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cache\ndata:\n  \
         size: {{ .Values.size | quote }}\n",
    );
    repo.write("chart/values-prod.yaml", "color: blue\n");
    repo.write(
        "env/prod.yaml",
        &format!("replicas: 2\ncache: {{size: 20}}\ntoken: {TOKEN}\n"),
    );
    repo.commit("chart");
    repo
}

/// The values flags of the app.
const VALUES: [&str; 6] = [
    "--values",
    "env/prod.yaml",
    "--values",
    "chart/values-prod.yaml",
    "--set",
    "image.tag=1.26",
];

fn run(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn with_values<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(VALUES);
    all
}

fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", describe(out));
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn get(cluster: &TestCluster, ns: &str, what: &str, jsonpath: &str) -> String {
    cluster.kubectl_ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={jsonpath}")])
}

#[test]
fn a_chart_diffs_syncs_records_and_drifts_like_plain_manifests() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("helm");
    let n = ns.name.as_str();
    let group = format!("{n}.example.com");
    let repo = chart_repo(&group);

    // Never synced: everything is new, the custom resource of the chart's CRD included.
    let out = run(
        cluster,
        &repo,
        &with_values(&[
            "diff-git",
            "HEAD",
            "chart",
            "--app",
            "shop",
            "-n",
            n,
            "--color=never",
        ]),
    );
    code(&out, 1);
    let text = stdout(&out);
    for want in [
        "+  name: shop-web",
        "+  replicas: 2",
        "+  name: shop-gadget",
        "+  color: blue",
        "+  size: '20'",
        &format!("+  name: widgets.{group}"),
        "image: nginx:1.26",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("name: shop-test"),
        "a test hook is no object to apply:\n{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("not run: Pod {n}/shop-test (a helm test hook)")),
        "the test hook is listed as not run:\n{err}"
    );

    let out = run(
        cluster,
        &repo,
        &with_values(&[
            "sync",
            "HEAD",
            "chart",
            "--app",
            "shop",
            "-n",
            n,
            "--timeout",
            "90s",
        ]),
    );
    code(&out, 0);
    assert_eq!(
        get(cluster, n, "deployment/shop-web", "{.spec.replicas}"),
        "2"
    );
    assert_eq!(
        get(
            cluster,
            n,
            "deployment/shop-web",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.26"
    );
    assert_eq!(get(cluster, n, "configmap/cache", "{.data.size}"), "20");
    assert_eq!(
        get(
            cluster,
            n,
            &format!("widgets.{group}/shop-gadget"),
            "{.spec.color}"
        ),
        "blue"
    );
    let pods = cluster.kubectl_ok(&["get", "pods", "-n", n, "-o", "name"]);
    assert!(!pods.contains("shop-test"), "{pods}");

    // The record: chart, values files and --set keys; the values only when asked.
    let out = run(
        cluster,
        &repo,
        &["release-history", "shop", "1", "-n", n, "-o", "json"],
    );
    code(&out, 0);
    assert!(!stdout(&out).contains(TOKEN), "{}", describe(&out));
    let doc = json(&out);
    assert_eq!(doc["renderer"], "helm");
    assert_eq!(
        doc["chart"],
        json!({"name": "web-chart", "version": "1.4.0", "repository": null, "digest": null})
    );
    assert_eq!(doc["app_version"], "2.1");
    assert_eq!(
        doc["values_files"],
        json!(["env/prod.yaml", "chart/values-prod.yaml"])
    );
    assert_eq!(doc["set_keys"], json!(["image.tag"]));
    assert_eq!(doc["values"], Value::Null);
    let out = run(
        cluster,
        &repo,
        &[
            "release-history",
            "shop",
            "1",
            "-n",
            n,
            "-o",
            "json",
            "--show-secrets",
        ],
    );
    code(&out, 0);
    assert_eq!(
        json(&out)["values"],
        json!({"replicas": 2, "cache": {"size": 20}, "token": TOKEN, "color": "blue",
               "image": {"tag": "1.26"}})
    );
    let out = run(cluster, &repo, &["release-history", "shop", "1", "-n", n]);
    code(&out, 0);
    let text = stdout(&out);
    for want in [
        "Chart:",
        "web-chart-1.4.0",
        "Renderer:",
        "helm",
        "Values files:",
        "env/prod.yaml, chart/values-prod.yaml",
        "image.tag (values hidden)",
        "--show-secrets shows them",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains(TOKEN), "{text}");
    let out = run(cluster, &repo, &["release-history", "shop", "-n", n]);
    code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.lines().next().unwrap().contains("CHART") && text.contains("web-chart-1.4.0"),
        "{text}"
    );

    // A values change in a commit: against the cluster, and between the revisions.
    repo.write(
        "env/prod.yaml",
        &format!("replicas: 3\ncache: {{size: 20}}\ntoken: {TOKEN}\n"),
    );
    repo.commit("three replicas");
    let out = run(
        cluster,
        &repo,
        &with_values(&[
            "diff-git",
            "HEAD",
            "chart",
            "--app",
            "shop",
            "-n",
            n,
            "--color=never",
        ]),
    );
    code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("-  replicas: 2\n+  replicas: 3"), "{text}");
    assert!(text.contains("Deployment"), "{text}");
    assert!(
        !text.contains("Widget"),
        "only the deployment changed:\n{text}"
    );
    let out = run(
        cluster,
        &repo,
        &with_values(&[
            "diff-git",
            "HEAD~1..HEAD",
            "chart",
            "--app",
            "shop",
            "-n",
            n,
            "--color=never",
        ]),
    );
    code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("-  replicas: 2\n+  replicas: 3"), "{text}");
    // The same values between the same revisions: nothing changed.
    let out = run(
        cluster,
        &repo,
        &with_values(&[
            "diff-git",
            "HEAD~1..HEAD~1",
            "chart",
            "--app",
            "shop",
            "-n",
            n,
        ]),
    );
    code(&out, 0);

    // drift --git renders HEAD with the values the release was synced with.
    let out = run(
        cluster,
        &repo,
        &["drift", "shop", "-n", n, "--git", "-o", "json"],
    );
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(doc["git"]["behind"], true, "{doc:#}");
    let changes: Vec<(&str, &str)> = doc["git"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"]["name"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(changes, [("shop-web", "changed")]);

    // An out-of-band scale of the chart's Deployment is drift.
    cluster.kubectl_ok(&["scale", "-n", n, "deployment/shop-web", "--replicas=5"]);
    let out = run(cluster, &repo, &["drift", "shop", "-n", n, "-o", "json"]);
    code(&out, 1);
    let doc = json(&out);
    let web = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"]["name"] == "shop-web")
        .unwrap_or_else(|| panic!("no shop-web in {doc:#}"));
    assert_eq!(web["state"], "modified");
    let replicas = web["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/spec/replicas")
        .unwrap_or_else(|| panic!("no /spec/replicas in {web:#}"));
    assert_eq!(
        (&replicas["desired"], &replicas["live"]),
        (&json!(2), &json!(5))
    );

    // The new values deployed, then rolled back: the rollback's record keeps the chart
    // and the values of the release it restored.
    let out = run(
        cluster,
        &repo,
        &with_values(&[
            "sync",
            "HEAD",
            "chart",
            "--app",
            "shop",
            "-n",
            n,
            "--timeout",
            "90s",
            "--force-conflicts",
        ]),
    );
    code(&out, 0);
    assert_eq!(
        get(cluster, n, "deployment/shop-web", "{.spec.replicas}"),
        "3"
    );
    let out = run(
        cluster,
        &repo,
        &[
            "sync",
            "--rollback",
            "1",
            "--app",
            "shop",
            "-n",
            n,
            "--timeout",
            "90s",
        ],
    );
    code(&out, 0);
    assert_eq!(
        get(cluster, n, "deployment/shop-web", "{.spec.replicas}"),
        "2"
    );
    let out = run(
        cluster,
        &repo,
        &["release-history", "shop", "3", "-n", n, "-o", "json"],
    );
    code(&out, 0);
    let doc = json(&out);
    assert_eq!(doc["operation"], "rollback");
    assert_eq!(
        doc["chart"],
        json!({"name": "web-chart", "version": "1.4.0", "repository": null, "digest": null})
    );
    assert_eq!(
        doc["values_files"],
        json!(["env/prod.yaml", "chart/values-prod.yaml"])
    );
}

#[test]
fn chart_errors_exit_2_with_a_clear_message() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("helm-err");
    let n = ns.name.as_str();
    let repo = chart_repo(&format!("{n}.example.com"));
    repo.write(
        "unvendored/Chart.yaml",
        "apiVersion: v2\nname: unvendored\nversion: 0.1.0\ndependencies:\n\
         - name: redis\n  version: 1.0.0\n  repository: https://127.0.0.1:9/charts\n",
    );
    repo.write(
        "broken/Chart.yaml",
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    );
    repo.write(
        "broken/templates/cm.yaml",
        "{{ required \"set .Values.name\" .Values.name }}\n",
    );
    repo.commit("more charts");

    let error = |cmd: &mut Command| -> String {
        let out = cmd
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        code(&out, 2);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let diff = |args: &[&str]| {
        let mut cmd = cluster.kubectl();
        cmd.args(["diff-git", "HEAD", "-n", n]).args(args);
        cmd
    };

    let mut missing_helm = diff(&["chart"]);
    missing_helm.env("HELM", "/nonexistent/helm");
    let stderr = error(&mut missing_helm);
    assert!(
        stderr.contains("`/nonexistent/helm` was not found")
            && stderr.contains("https://helm.sh/docs/intro/install/")
            && stderr.contains("$HELM"),
        "{stderr}"
    );

    let stderr = error(&mut diff(&["chart", "--values", "env/staging.yaml"]));
    assert!(
        stderr.contains("values file `env/staging.yaml` does not exist at commit"),
        "{stderr}"
    );

    let stderr = error(&mut diff(&["unvendored"]));
    assert!(
        stderr.contains(
            "unvendored/Chart.yaml: dependency `redis`: cannot reach https://127.0.0.1:9/charts/index.yaml: "
        ) && stderr.contains("or vendor the chart in git"),
        "{stderr}"
    );

    let stderr = error(&mut diff(&["broken"]));
    assert!(
        stderr.contains("helm template failed for `broken`: ")
            && stderr.contains("set .Values.name"),
        "{stderr}"
    );

    // Values for a path that is not a chart are a mistake, not ignored.
    let stderr = error(&mut diff(&["env", "--set", "a=b"]));
    assert!(stderr.contains("`env` has no Chart.yaml"), "{stderr}");

    // sync refuses before touching the cluster.
    let mut sync = cluster.kubectl();
    sync.args(["sync", "HEAD", "broken", "--app", "broken", "-n", n]);
    let stderr = error(&mut sync);
    assert!(
        stderr.contains("helm template failed for `broken`"),
        "{stderr}"
    );
    let secrets = cluster.kubectl_ok(&["get", "secrets", "-n", n, "-o", "name"]);
    assert!(
        !secrets.contains("broken"),
        "no release was recorded: {secrets}"
    );
}
