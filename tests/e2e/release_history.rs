//! `kubectl release-history`, run by the real kubectl through its plugin discovery, on
//! releases made by real syncs and on Helm release Secrets written in Helm's own format.

use std::process::{Command, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::{Value, json};

#[macro_use]
pub(crate) mod support;

use support::*;

#[test]
fn synced_releases_and_helm_releases_side_by_side() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rh-main");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("app/settings.yaml", SETTINGS);
    repo.write("app/creds.yaml", CREDS);
    let first = repo.commit("first");
    let app = ["HEAD", "app", "--app", "shop", "-n", n, "--timeout", "60s"];
    ok(&sync(cluster, &repo, &app));
    repo.write("app/settings.yaml", &SETTINGS.replace("hello", "bonjour"));
    let second = repo.commit("second");
    ok(&sync(cluster, &repo, &app));
    // Release 3 fails: another manager owns the field it changes.
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
    repo.write("app/settings.yaml", &SETTINGS.replace("hello", "hola"));
    let third = repo.commit("third");
    fails(&sync(cluster, &repo, &app));
    // Release 4 rolls back to release 1, without git.
    ok(&sync(
        cluster,
        &repo,
        &[
            "--rollback",
            "1",
            "--app",
            "shop",
            "-n",
            n,
            "--force-conflicts",
        ],
    ));
    for (version, status, compress) in [
        (1, "superseded", true),
        (2, "superseded", false),
        (3, "deployed", true),
    ] {
        let release = helm_release(n, version, status, &format!("v{version}"));
        write_helm_secret(cluster, n, &release, compress);
    }

    // The app's releases, newest first, field by field.
    let doc = json_of(cluster, &["shop", "-n", n, "-o", "json"]);
    assert_eq!(doc["app"], "shop");
    assert_eq!(doc["namespace"], n);
    assert_eq!(doc["source"], "kubectl-gitops");
    assert_eq!(doc["unreadable"], json!([]));
    let releases = doc["releases"].as_array().unwrap();
    let column =
        |field: &str| -> Vec<Value> { releases.iter().map(|r| r[field].clone()).collect() };
    assert_eq!(column("revision"), [json!(4), json!(3), json!(2), json!(1)]);
    assert_eq!(
        column("status"),
        [
            json!("deployed"),
            json!("failed"),
            json!("superseded"),
            json!("superseded")
        ]
    );
    assert_eq!(
        column("operation"),
        [
            json!("rollback"),
            json!("sync"),
            json!("sync"),
            json!("sync")
        ]
    );
    let (r4, r3, r2, r1) = (&releases[0], &releases[1], &releases[2], &releases[3]);
    assert_eq!(r4["rollback_of"], 1);
    assert_eq!(
        r4["commit"]["id"],
        first.as_str(),
        "a rollback keeps the release's commit"
    );
    assert_eq!(r3["commit"]["id"], third.as_str());
    assert_eq!(r3["commit"]["subject"], "third");
    assert!(r3["error"].as_str().unwrap().contains("intruder"), "{r3}");
    assert_eq!(r2["commit"]["id"], second.as_str());
    assert_eq!(r2["commit"]["short_id"], &second[..7]);
    assert_eq!(r2["commit"]["author_name"], "Ada Author");
    assert_eq!(
        r2["counts"],
        json!({"created": 0, "configured": 1, "unchanged": 1, "pruned": 0, "failed": 0})
    );
    assert_eq!(r1["counts"]["created"], 2);
    for release in releases {
        assert_eq!(release["source"], "kubectl-gitops");
        assert_eq!(release["app"], "shop");
        assert_eq!(release["namespace"], n);
        assert_eq!(release["who"], "admin");
        assert_eq!(release["path"], "app");
        assert_eq!(release["chart"], Value::Null);
        assert!(
            release["updated"].as_str().unwrap().ends_with('Z'),
            "{release}"
        );
        assert!(
            release["duration_seconds"].as_f64().unwrap() >= 0.0,
            "{release}"
        );
        assert!(
            release.get("manifest").is_none(),
            "lists leave manifests out"
        );
    }
    let newest = json_of(cluster, &["shop", "-n", n, "--max", "2", "-o", "json"]);
    let revisions: Vec<&Value> = newest["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["revision"])
        .collect();
    assert_eq!(revisions, [&json!(4), &json!(3)]);

    // Helm's releases, decoded from gzip and plain JSON alike.
    let helm = json_of(cluster, &["web", "-n", n, "-o", "json"]);
    assert_eq!(helm["source"], "helm");
    let releases = helm["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 3, "{helm}");
    let r2 = &releases[1];
    assert_eq!(r2["revision"], 2);
    assert_eq!(r2["status"], "superseded");
    assert_eq!(
        r2["chart"],
        json!({"name": "web", "version": "1.2.0", "repository": null, "digest": null})
    );
    assert_eq!(r2["app_version"], "2.2");
    assert_eq!(r2["description"], "Upgrade complete");
    assert_eq!(r2["updated"], "2024-05-02T08:00:00.5Z");
    assert_eq!(r2["first_deployed"], "2024-05-01T08:00:00.123456789Z");
    assert_eq!(r2["who"], Value::Null);
    assert!(!helm.to_string().contains("values-are-never-shown"));

    // The overview: both apps, each with its newest release.
    let overview = json_of(cluster, &["-n", n, "-o", "json"]);
    let apps = overview["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{overview}");
    assert_eq!(
        (&apps[0]["app"], &apps[0]["source"], &apps[0]["releases"]),
        (&json!("shop"), &json!("kubectl-gitops"), &json!(4))
    );
    assert_eq!(apps[0]["latest"]["revision"], 4);
    assert_eq!(apps[0]["latest"]["commit"]["subject"], "first");
    assert_eq!(apps[0]["unreadable"], Value::Null);
    assert_eq!(
        (&apps[1]["app"], &apps[1]["source"], &apps[1]["releases"]),
        (&json!("web"), &json!("helm"), &json!(3))
    );
    assert_eq!(apps[1]["latest"]["status"], "deployed");
    assert_eq!(apps[1]["latest"]["chart"]["version"], "1.3.0");

    // People's tables.
    snapshot!("overview", ok(&history(cluster, &["-n", n])), n);
    snapshot!("our_history", ok(&history(cluster, &["shop", "-n", n])), n);
    snapshot!("helm_history", ok(&history(cluster, &["web", "-n", n])), n);
    snapshot!(
        "our_release",
        ok(&history(cluster, &["shop", "4", "-n", n])),
        n
    );
    snapshot!(
        "helm_release",
        ok(&history(cluster, &["web", "2", "-n", n])),
        n
    );

    // Helm's values (its `config`) only when asked for.
    let helm_one = json_of(cluster, &["web", "2", "-n", n, "-o", "json"]);
    assert_eq!(helm_one["values"], Value::Null);
    let helm_one = json_of(
        cluster,
        &["web", "2", "-n", n, "-o", "json", "--show-secrets"],
    );
    assert_eq!(helm_one["values"]["password"], "values-are-never-shown");
    let page = ok(&history(cluster, &["web", "2", "-n", n, "--show-secrets"]));
    assert!(
        page.contains("Values:         password: values-are-never-shown\n"),
        "{page}"
    );

    // One release: its objects, and its manifest with Secrets masked.
    let one = json_of(cluster, &["shop", "2", "-n", n, "-o", "json"]);
    assert_eq!(one["revision"], 2);
    assert_eq!(one["manifest"], Value::Null);
    let objects: Vec<(String, String)> = one["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"]["name"].as_str().unwrap().to_string(),
                o["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        objects,
        [
            ("settings".into(), "configured".into()),
            ("creds".into(), "unchanged".into())
        ]
    );
    let manifest = ok(&history(cluster, &["shop", "2", "-n", n, "--manifest"]));
    assert!(manifest.contains("greeting: bonjour"), "{manifest}");
    assert!(manifest.contains("password: '***'"), "{manifest}");
    assert!(
        !manifest.contains("aHVudGVyMg==") && !manifest.contains("hunter2"),
        "{manifest}"
    );
    let shown = ok(&history(
        cluster,
        &["shop", "2", "-n", n, "--manifest", "--show-secrets"],
    ));
    assert!(
        shown.contains("aHVudGVyMg==") || shown.contains("hunter2"),
        "{shown}"
    );
    let helm_manifest = json_of(cluster, &["web", "1", "-n", n, "--manifest", "-o", "json"]);
    let text = helm_manifest["manifest"].as_str().unwrap();
    assert!(
        text.contains("# Source: web/templates/configmap.yaml"),
        "{text}"
    );
    assert!(
        !text.contains("b2xk") && text.contains("token: '***'"),
        "{text}"
    );
    assert_eq!(helm_manifest["objects"].as_array().unwrap().len(), 2);

    // Two releases compared, as diff-git compares two revisions.
    let diff = ok(&history(
        cluster,
        &["shop", "1..2", "-n", n, "--color=never"],
    ));
    assert!(
        diff.contains(&format!("--- release-1/core/ConfigMap/{n}/settings\n")),
        "{diff}"
    );
    assert!(
        diff.contains("-  greeting: hello\n+  greeting: bonjour\n"),
        "{diff}"
    );
    assert!(
        diff.ends_with("1 changed, 0 added, 0 removed, 1 unchanged\n"),
        "{diff}"
    );
    assert_eq!(
        ok(&history(
            cluster,
            &["shop", "1", "2", "-n", n, "--color=never"]
        )),
        diff
    );
    let helm_diff = json_of(cluster, &["web", "1", "3", "-n", n, "-o", "json"]);
    assert_eq!(
        (&helm_diff["before"], &helm_diff["after"]),
        (&json!("release-1"), &json!("release-3"))
    );
    assert_eq!(helm_diff["source"], "helm");
    assert_eq!(
        helm_diff["summary"],
        json!({"added": 0, "changed": 2, "removed": 0, "unchanged": 0})
    );
    let changed = &helm_diff["changes"][1];
    assert_eq!(
        changed["key"],
        json!({"group": "", "kind": "Secret", "namespace": n, "name": "web-auth"})
    );
    assert_eq!(changed["before"]["data"]["token"], "*** (before)");
    assert_eq!(changed["after"]["data"]["token"], "*** (after)");
    assert_eq!(helm_diff["changes"][0]["after"]["data"]["value"], "v3");
}

#[test]
fn all_namespaces_lists_apps_everywhere() {
    let cluster = TestCluster::get();
    let ours = cluster.namespace("rh-all-a");
    let helms = cluster.namespace("rh-all-b");
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("settings");
    ok(&sync(
        cluster,
        &repo,
        &["--app", "cfg", "-n", &ours.name, "--wait=false"],
    ));
    write_helm_secret(
        cluster,
        &helms.name,
        &helm_release(&helms.name, 1, "deployed", "a"),
        true,
    );

    let doc = json_of(cluster, &["-A", "-o", "json"]);
    // Other tests run at the same time: look at this test's namespaces only.
    let mine: Vec<(String, String, String)> = doc["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["namespace"] == ours.name.as_str() || a["namespace"] == helms.name.as_str())
        .map(|a| {
            let text = |v: &Value| v.as_str().unwrap().to_string();
            (text(&a["namespace"]), text(&a["app"]), text(&a["source"]))
        })
        .collect();
    assert_eq!(
        mine,
        [
            (ours.name.clone(), "cfg".into(), "kubectl-gitops".into()),
            (helms.name.clone(), "web".into(), "helm".into()),
        ]
    );
    // The list reads each record's head from the Secrets' metadata; a record without one
    // (as written before heads) is read whole and listed the same.
    let listed = |doc: &Value| -> Value {
        doc["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["namespace"] == ours.name.as_str() && a["app"] == "cfg")
            .cloned()
            .unwrap()
    };
    let from_head = listed(&doc);
    assert_eq!(from_head["latest"]["status"], "deployed", "{from_head}");
    assert_eq!(from_head["latest"]["commit"]["subject"], "settings");
    cluster.kubectl_ok(&[
        "annotate",
        "secret",
        "cfg.r1",
        "-n",
        &ours.name,
        "kubectl-gitops.io/release-head-",
    ]);
    assert_eq!(listed(&json_of(cluster, &["-A", "-o", "json"])), from_head);

    // A second release rewrites the first record, its head too.
    repo.write("settings.yaml", &SETTINGS.replace("hello", "hi"));
    repo.commit("debug");
    ok(&sync(
        cluster,
        &repo,
        &["--app", "cfg", "-n", &ours.name, "--wait=false"],
    ));
    let head_of = |secret: &str| -> Value {
        let text = cluster.kubectl_ok(&[
            "get",
            "secret",
            secret,
            "-n",
            &ours.name,
            "-o",
            r"jsonpath={.metadata.annotations.kubectl-gitops\.io/release-head}",
        ]);
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(head_of("cfg.r1")["status"], "superseded");
    assert_eq!(head_of("cfg.r2")["status"], "deployed");
    let latest = listed(&json_of(cluster, &["-A", "-o", "json"]));
    assert_eq!(
        (
            &latest["latest"]["revision"],
            &latest["latest"]["commit"]["subject"]
        ),
        (&json!(2), &json!("debug"))
    );

    let table = ok(&history(cluster, &["--all-namespaces"]));
    assert!(table.starts_with("APP "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("cfg ") && l.contains(&ours.name)),
        "{table}"
    );
    fails(&history(cluster, &["cfg", "-A"]));
}

#[test]
fn unreadable_records_are_listed_with_the_reason() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rh-corrupt");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("settings");
    let app = ["--app", "cfg", "-n", n, "--wait=false"];
    ok(&sync(cluster, &repo, &app));
    // A change, so the second sync records a release (a no-op sync records none).
    repo.write("settings.yaml", &SETTINGS.replace("hello", "hola"));
    repo.commit("greet in Spanish");
    ok(&sync(cluster, &repo, &app));
    write_our_secret(cluster, n, "cfg", 3, "printf 'not a record' > release");
    write_our_secret(cluster, n, "cfg", 4, "printf '{\"format\": 2}' > release");
    write_helm_secret(cluster, n, &helm_release(n, 1, "deployed", "a"), true);
    // A gzip bomb: 80 MiB of zeros, about 80 KiB stored.
    let dir = tempfile::tempdir().unwrap();
    run_pipeline(
        dir.path(),
        "head -c 83886080 /dev/zero | gzip -c | base64 -w0 > release",
    );
    create_secret(
        cluster,
        n,
        "sh.helm.release.v1.web.v2",
        "helm.sh/release.v1",
        dir.path(),
    );
    cluster.kubectl_ok(&[
        "label",
        "secret",
        "sh.helm.release.v1.web.v2",
        "-n",
        n,
        "owner=helm",
        "name=web",
        "version=2",
    ]);

    let doc = json_of(cluster, &["cfg", "-n", n, "-o", "json"]);
    let revisions: Vec<&Value> = doc["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["revision"])
        .collect();
    assert_eq!(revisions, [&json!(2), &json!(1)]);
    let unreadable = doc["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 2, "{doc}");
    assert_eq!(unreadable[0]["secret"], "cfg.r4");
    assert_eq!(unreadable[0]["revision"], 4);
    assert_eq!(unreadable[0]["source"], "kubectl-gitops");
    assert!(
        unreadable[0]["reason"]
            .as_str()
            .unwrap()
            .contains("newer kubectl-gitops (format 2)"),
        "{doc}"
    );
    assert_eq!(unreadable[1]["secret"], "cfg.r3");
    assert!(
        unreadable[1]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{doc}"
    );

    let helm = json_of(cluster, &["web", "-n", n, "-o", "json"]);
    assert_eq!(helm["releases"].as_array().unwrap().len(), 1);
    assert!(
        helm["unreadable"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("expands to more than 64 MiB"),
        "{helm}"
    );

    let overview = json_of(cluster, &["-n", n, "-o", "json"]);
    assert_eq!(overview["apps"][0]["latest"], Value::Null);
    assert_eq!(overview["apps"][0]["unreadable"]["secret"], "cfg.r4");
    assert_eq!(
        overview["apps"][1]["unreadable"]["secret"],
        "sh.helm.release.v1.web.v2"
    );
    let table = ok(&history(cluster, &["cfg", "-n", n]));
    assert!(
        table.lines().nth(1).unwrap().contains("unreadable"),
        "{table}"
    );
    snapshot!("unreadable_history", table, n);

    let err = fails(&history(cluster, &["cfg", "4", "-n", n]));
    assert!(
        err.starts_with(&format!(
            "error: release record {n}/cfg.r4 cannot be read: "
        )),
        "{err}"
    );
}

#[test]
fn errors_are_one_clear_sentence() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rh-errors");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("settings");
    ok(&sync(
        cluster,
        &repo,
        &["--app", "cfg", "-n", n, "--wait=false"],
    ));

    let err = fails(&history(cluster, &["nope", "-n", n]));
    assert_eq!(
        err,
        format!(
            "error: no releases of app nope in namespace {n} (apps with releases there: cfg)\n"
        )
    );
    let err = fails(&history(cluster, &["cfg", "7", "-n", n]));
    assert_eq!(
        err,
        format!("error: app cfg has no release 7 in namespace {n} (its releases: 1)\n")
    );
    let err = fails(&history(cluster, &["cfg", "x", "-n", n]));
    assert!(
        err.starts_with("error: \"x\" is not a release number"),
        "{err}"
    );

    // A read-only user who may not read Secrets is told so, naming the namespace.
    let viewer = cluster
        .kubectl()
        .env("KUBECONFIG", &cluster.viewer_kubeconfig)
        .args(["release-history", "-n", n])
        .output()
        .unwrap();
    let err = fails(&viewer);
    assert!(
        err.starts_with(&format!("error: cannot list Secrets in namespace {n}: "))
            && err.contains("User \"viewer\" cannot list")
            && err.contains(&format!("needs get and list on secrets in namespace {n}")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // An empty namespace lists nothing, says so on stderr, and succeeds.
    let empty = cluster.namespace("rh-empty");
    let out = history(cluster, &["-n", &empty.name]);
    assert_eq!(ok(&out), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("No releases found in namespace {}.\n", empty.name)
    );
    assert_eq!(
        json_of(cluster, &["-n", &empty.name, "-o", "json"]),
        json!({"apps": []})
    );

    // An app looked for in the wrong namespace (no -n: the context's): release-history and
    // drift say where its releases are. The app is named after this test's namespace, so
    // no other test has one.
    let app = n;
    repo.write(
        "other/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {k: v}\n",
    );
    repo.commit("another app");
    ok(&sync(
        cluster,
        &repo,
        &["HEAD", "other", "--app", app, "-n", n, "--wait=false"],
    ));
    let hint = format!("app {app} has releases in namespace {n}: add -n {n}");
    let err = fails(&history(cluster, &[app, "-n", &empty.name]));
    assert!(err.contains(&hint), "{err}");
    let drift = cluster
        .kubectl()
        .args(["drift", app, "-n", &empty.name])
        .output()
        .unwrap();
    let err = fails(&drift);
    assert!(
        err.contains(&format!(
            "app {app} has no releases in namespace {}",
            empty.name
        )) && err.contains(&hint),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly_and_no_color_is_honoured() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rh-pipe");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", SETTINGS);
    repo.commit("settings");
    ok(&sync(
        cluster,
        &repo,
        &["--app", "cfg", "-n", n, "--wait=false"],
    ));

    // The reader is gone before the plugin writes (it first asks the API server).
    let mut child = cluster
        .kubectl()
        .args(["release-history", "cfg", "-n", n])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    let coloured = ok(&history(cluster, &["cfg", "-n", n, "--color=always"]));
    assert!(coloured.contains("\x1b["), "{coloured}");
    // On a terminal (script(1) gives one, of width 0), colour unless NO_COLOR is set.
    let on_terminal = |no_color: bool| -> String {
        let kubectl = cluster.kubectl();
        let mut cmd = Command::new("script");
        for (key, value) in kubectl.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let line = format!(
            "{} release-history cfg -n {n}",
            kubectl.get_program().to_string_lossy()
        );
        ok(&cmd
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap())
    };
    let tty = on_terminal(false);
    assert!(tty.contains("\x1b["), "{tty}");
    assert!(
        tty.starts_with("REVISION   UPDATED"),
        "not wrapped to a width of 0: {tty}"
    );
    assert!(!on_terminal(true).contains('\x1b'));
}
