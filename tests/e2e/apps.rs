//! The repository's app list (`.kubectl-gitops.yaml`'s `apps:`) and several clusters:
//! `--all`, an app by name, flags over the file, and `--context` repeated, through the
//! real kubectl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, TestNamespace, describe};
use serde_json::Value;

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// `kubectl <plugin> args...` in the repository, with `kubeconfig` if given.
fn run(cluster: &TestCluster, repo: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd: Command = cluster.kubectl();
    if let Some(kubeconfig) = kubeconfig {
        cmd.env("KUBECONFIG", kubeconfig);
    }
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

fn data(cluster: &TestCluster, ns: &str, name: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "configmap",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.data.value}",
    ])
}

/// The summary row of `app` on `context`: the words after APP CONTEXT NAMESPACE.
fn row<'a>(text: &'a str, app: &str, context: &str) -> &'a str {
    text.lines()
        .find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.len() > 3 && words[0] == app && words[1] == context
        })
        .unwrap_or_else(|| panic!("no summary row for {app} on {context} in:\n{text}"))
}

/// A repository with four apps: plain YAML, a kustomization, a second plain one, and a
/// Helm chart with values from the list, each in its own namespace.
struct ThreeApps {
    repo: GitFixture,
    plain: TestNamespace,
    kust: TestNamespace,
    other: TestNamespace,
    chart: TestNamespace,
}

fn three_apps(cluster: &TestCluster) -> ThreeApps {
    let plain = cluster.namespace("apps-plain");
    let kust = cluster.namespace("apps-kust");
    let other = cluster.namespace("apps-other");
    let chart = cluster.namespace("apps-chart");
    let repo = GitFixture::new();
    repo.write("apps/plain/cm.yaml", &config_map("plain", "one"));
    repo.write("apps/kust/base/cm.yaml", &config_map("kust", "one"));
    repo.write(
        "apps/kust/kustomization.yaml",
        "resources:\n- base/cm.yaml\nnamePrefix: k-\n",
    );
    repo.write("apps/other/cm.yaml", &config_map("other", "one"));
    // A Helm chart whose values come from the list: a file outside the chart, and --set.
    repo.write(
        "apps/chart/Chart.yaml",
        "apiVersion: v2\nname: settings\nversion: 0.3.0\n",
    );
    repo.write("apps/chart/values.yaml", "value: default\nsuffix: none\n");
    repo.write(
        "apps/chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n\
         data:\n  value: \"{{ .Values.value }}-{{ .Values.suffix }}\"\n",
    );
    repo.write("env/chart.yaml", "value: from-list\n");
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n\
             - name: plain\n  path: apps/plain\n  namespace: {}\n  prune: true\n\
             - name: kust\n  path: apps/kust\n  namespace: {}\n  timeout: 2m\n\
             - name: other\n  path: ./apps/other/\n  namespace: {}\n  wait: false\n\
             - name: chart\n  path: apps/chart\n  namespace: {}\n  values: [env/chart.yaml]\n  set: [suffix=set]\n",
            plain.name, kust.name, other.name, chart.name
        ),
    );
    repo.commit("three apps");
    ThreeApps {
        repo,
        plain,
        kust,
        other,
        chart,
    }
}

#[test]
fn sync_all_applies_every_app_and_diff_git_all_reports_each() {
    let cluster = TestCluster::get();
    let apps = three_apps(cluster);
    let repo = apps.repo.path();

    let out = run(cluster, repo, None, &["sync", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    for (app, ns) in [
        ("plain", &apps.plain),
        ("kust", &apps.kust),
        ("other", &apps.other),
        ("chart", &apps.chart),
    ] {
        assert!(
            text.contains(&format!("==> app {app} · context ")) && text.contains(&ns.name),
            "no section for {app}:\n{text}"
        );
        assert!(
            row(&text, app, "admin@test").contains("deployed"),
            "{app} not deployed:\n{text}"
        );
    }
    assert_eq!(data(cluster, &apps.plain.name, "plain"), "one");
    assert_eq!(data(cluster, &apps.kust.name, "k-kust"), "one");
    assert_eq!(data(cluster, &apps.other.name, "other"), "one");
    // The chart's release is the app; its values are the list's file and --set.
    assert_eq!(
        data(cluster, &apps.chart.name, "chart-settings"),
        "from-list-set"
    );
    let history = cluster.kubectl_ok(&[
        "release-history",
        "chart",
        "-n",
        &apps.chart.name,
        "-o",
        "json",
    ]);
    assert!(
        history.contains("settings") && history.contains("0.3.0"),
        "{history}"
    );
    assert!(history.contains("env/chart.yaml"), "{history}");

    // Nothing changed: every app is clean.
    let out = run(cluster, repo, None, &["diff-git", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for app in ["plain", "kust", "other", "chart"] {
        assert!(
            row(&stdout(&out), app, "admin@test").contains("no differences"),
            "{}",
            describe(&out)
        );
    }

    // A commit changes two apps: diff-git --all shows both, names the unchanged one clean.
    apps.repo
        .write("apps/plain/cm.yaml", &config_map("plain", "two"))
        .write("apps/kust/base/cm.yaml", &config_map("kust", "two"));
    apps.repo.commit("change two apps");
    let out = run(cluster, repo, None, &["diff-git", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("+  value: \"two\"") || text.contains("+  value: two"),
        "{text}"
    );
    assert!(
        !row(&text, "plain", "admin@test").contains("no differences"),
        "{text}"
    );
    assert!(
        !row(&text, "kust", "admin@test").contains("no differences"),
        "{text}"
    );
    assert!(
        row(&text, "other", "admin@test").contains("no differences"),
        "{text}"
    );

    // The same as a document for scripts: one item per destination.
    let out = run(cluster, repo, None, &["diff-git", "--all", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = doc["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["app"].as_str().unwrap()).collect();
    assert_eq!(names, ["plain", "kust", "other", "chart"]);
    assert_eq!(items[0]["namespace"], apps.plain.name.as_str());
    assert_eq!(items[0]["context"], "admin@test");
    assert!(items[0]["error"].is_null());

    // -o name lists what differs in every app, and nothing else: a list for xargs.
    let out = run(cluster, repo, None, &["diff-git", "--all", "-o", "name"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["configmap/plain", "configmap/k-kust"],
        "{}",
        describe(&out)
    );

    // One app by name takes its path and namespace from the list.
    let out = run(cluster, repo, None, &["sync", "--app", "plain"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(data(cluster, &apps.plain.name, "plain"), "two");
    assert_eq!(data(cluster, &apps.kust.name, "k-kust"), "one");

    // drift --all checks every app of the list in its namespace.
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "other",
        "-n",
        &apps.other.name,
        "--type=merge",
        "-p",
        r#"{"data":{"value":"edited"}}"#,
    ]);
    let out = run(cluster, repo, None, &["drift", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    let line = text.lines().find(|l| l.contains("other")).unwrap();
    assert!(line.contains("drifted"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("plain") && l.contains("in sync")),
        "{text}"
    );
}

#[test]
fn flags_override_the_app_list() {
    let cluster = TestCluster::get();
    let apps = three_apps(cluster);
    let repo = apps.repo.path();
    let elsewhere = cluster.namespace("apps-elsewhere");
    // -n wins over the list's namespace.
    let out = run(
        cluster,
        repo,
        None,
        &["sync", "--app", "plain", "-n", &elsewhere.name],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(data(cluster, &elsewhere.name, "plain"), "one");
    let missing = cluster
        .kubectl()
        .args(["get", "configmap", "plain", "-n", &apps.plain.name])
        .output()
        .unwrap();
    assert!(
        !missing.status.success(),
        "synced into the list's namespace too"
    );
    // A PATH on the command line wins over the list's path.
    let out = run(
        cluster,
        repo,
        None,
        &[
            "diff-git",
            "apps/other",
            "--app",
            "plain",
            "-n",
            &elsewhere.name,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stdout(&out).contains("other"), "{}", describe(&out));
}

#[test]
fn a_malformed_app_list_names_the_field() {
    let cluster = TestCluster::get();
    let repo = GitFixture::new();
    repo.write("apps/a/cm.yaml", &config_map("a", "one"));
    let cases = [
        (
            "apps:\n- name: a\n  path: apps/a\n  timout: 5m\n",
            ".kubectl-gitops.yaml:4",
            "unknown field `timout`",
        ),
        (
            "apps:\n- name: a\n  path: apps/a\n  timeout: soon\n",
            "apps[0] (a).timeout",
            "is not a duration",
        ),
        (
            "apps:\n- name: A_1\n  path: apps/a\n",
            "apps[0] (A_1).name",
            "not allowed",
        ),
        (
            "apps:\n- name: a\n  path: ../outside\n",
            "apps[0] (a).path",
            "leaves the repository",
        ),
        (
            "apps:\n- name: a\n  path: apps/a\n  set: [novalue]\n",
            "apps[0] (a).set[0]",
            "is not KEY=VALUE",
        ),
    ];
    for (text, at, what) in cases {
        repo.write(".kubectl-gitops.yaml", text);
        repo.commit("app list");
        for plugin in ["sync", "diff-git", "drift"] {
            let out = run(cluster, repo.path(), None, &[plugin, "--all"]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{plugin} {text:?}: {}",
                describe(&out)
            );
            let err = stderr(&out);
            assert!(
                err.contains(at) && err.contains(what),
                "{plugin} {text:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // --all without a list, with a PATH, and a name the list lacks.
    repo.write(".kubectl-gitops.yaml", "ignore: []\n");
    repo.commit("no list");
    let out = run(cluster, repo.path(), None, &["diff-git", "--all"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("there is no .kubectl-gitops.yaml"),
        "{}",
        describe(&out)
    );
    repo.write(".kubectl-gitops.yaml", "apps:\n- name: a\n  path: apps/a\n");
    repo.commit("list");
    let out = run(cluster, repo.path(), None, &["sync", "--all", "apps/a"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("leave out PATH"),
        "{}",
        describe(&out)
    );
    let out = run(
        cluster,
        repo.path(),
        None,
        &["sync", "--app", "b", "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("has no app named b (it has a)"),
        "{}",
        describe(&out)
    );
}

/// A kubeconfig with the test cluster under two more contexts, `east` and `west`, each
/// with its own namespace (two namespaces stand in for two clusters), and `broken`, whose
/// server does not answer.
fn two_clusters(cluster: &TestCluster, east: &str, west: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::copy(&cluster.admin_kubeconfig, &path).unwrap();
    let config = |args: &[&str]| {
        let out = cluster
            .kubectl()
            .env("KUBECONFIG", &path)
            .arg("config")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cluster_name = config(&["view", "--minify", "-o", "jsonpath={.clusters[0].name}"]);
    let user = config(&["view", "--minify", "-o", "jsonpath={.users[0].name}"]);
    for (name, ns) in [("east", east), ("west", west)] {
        config(&[
            "set-context",
            name,
            "--cluster",
            &cluster_name,
            "--user",
            &user,
            "--namespace",
            ns,
        ]);
    }
    config(&["set-cluster", "nowhere", "--server", "https://127.0.0.1:1"]);
    config(&[
        "set-context",
        "broken",
        "--cluster",
        "nowhere",
        "--user",
        &user,
        "--namespace",
        "x",
    ]);
    (dir, path)
}

#[test]
fn one_app_on_several_clusters() {
    let cluster = TestCluster::get();
    let east = cluster.namespace("apps-east");
    let west = cluster.namespace("apps-west");
    let (_dir, kubeconfig) = two_clusters(cluster, &east.name, &west.name);
    let repo = GitFixture::new();
    repo.write("apps/web/cm.yaml", &config_map("web", "one"));
    repo.write(
        ".kubectl-gitops.yaml",
        "apps:\n- name: web\n  path: apps/web\n  contexts: [east, west]\n",
    );
    repo.commit("web on two clusters");
    let kubeconfig = Some(kubeconfig.as_path());

    let out = run(cluster, repo.path(), kubeconfig, &["sync", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(row(&text, "web", "east").contains("deployed"), "{text}");
    assert!(row(&text, "web", "west").contains("deployed"), "{text}");
    assert!(row(&text, "web", "east").contains(&east.name), "{text}");
    assert_eq!(data(cluster, &east.name, "web"), "one");
    assert_eq!(data(cluster, &west.name, "web"), "one");
    // Progress lines say which destination they belong to.
    assert!(stderr(&out).contains("[web @ east]"), "{}", describe(&out));

    // Out of band, one cluster drifts: drift --all tells which.
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "web",
        "-n",
        &west.name,
        "--type=merge",
        "-p",
        r#"{"data":{"value":"edited"}}"#,
    ]);
    let out = run(cluster, repo.path(), kubeconfig, &["drift", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("==> context east <=="), "{text}");
    assert!(row(&text, "web", "east").contains("in sync"), "{text}");
    assert!(row(&text, "web", "west").contains("drifted"), "{text}");

    // diff-git on both: the edit shows on west only.
    let out = run(cluster, repo.path(), kubeconfig, &["diff-git", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        row(&text, "web", "east").contains("no differences"),
        "{text}"
    );
    assert!(
        !row(&text, "web", "west").contains("no differences"),
        "{text}"
    );

    // --context repeated overrides the list; a cluster that fails does not stop the other,
    // and the exit code says one failed.
    let out = run(
        cluster,
        repo.path(),
        kubeconfig,
        &[
            "diff-git",
            "--app",
            "web",
            "--context",
            "east",
            "--context",
            "broken",
            "--request-timeout",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        row(&text, "web", "east").contains("no differences"),
        "{text}"
    );
    assert!(row(&text, "web", "broken").contains("error"), "{text}");
    assert!(
        stderr(&out).contains("1 of 2 destinations failed"),
        "{}",
        describe(&out)
    );

    let out = run(
        cluster,
        repo.path(),
        kubeconfig,
        &[
            "drift",
            "web",
            "--context",
            "east",
            "--context",
            "broken",
            "--request-timeout",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        row(&stdout(&out), "web", "east").contains("in sync"),
        "{}",
        describe(&out)
    );

    // A preview of both as a document: one item per cluster, each with its own context,
    // and only west has something to change.
    let out = run(
        cluster,
        repo.path(),
        kubeconfig,
        &["sync", "--all", "--dry-run", "-o", "json"],
    );
    // As diff-git's: west would change.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = doc["items"].as_array().unwrap();
    let seen: Vec<(&str, u64)> = items
        .iter()
        .map(|i| {
            (
                i["context"].as_str().unwrap(),
                i["dry_run_changes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("east", 0), ("west", 1)], "{doc}");
    assert!(items.iter().all(|i| i["error"].is_null()), "{doc}");

    // Heal west through the list, then everything is in sync on both.
    let out = run(
        cluster,
        repo.path(),
        kubeconfig,
        &["drift", "--all", "--heal"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(data(cluster, &west.name, "web"), "one");
    let out = run(
        cluster,
        repo.path(),
        kubeconfig,
        &["drift", "--all", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let contexts: Vec<&str> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["context"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, ["east", "west"]);
}
