//! `kubectl drift`, run by the real kubectl through its plugin discovery, after real
//! `kubectl sync`s and real changes made with `kubectl edit`, `scale`, `patch`, `delete`.

use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::{Value, json};

use crate::requests::{counted, requests_about};

mod fingerprints;
mod git;
mod watch;

/// A Deployment: its controller writes its status (and moves its resourceVersion) after
/// every sync that creates it.
pub(crate) const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.26
";
const SETTINGS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {tier: front}\ndata:\n  greeting: hello\n";
const CREDS: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2\n";

/// A repository with the app under `app/`, committed.
fn repo_with(files: &[(&str, &str)]) -> GitFixture {
    let repo = GitFixture::new();
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit("first");
    repo
}

fn sync(cluster: &TestCluster, repo: &GitFixture, app: &str, ns: &str) {
    let out = sync_with(cluster, repo, app, ns, &["--timeout", "90s"]);
    assert_eq!(out.status.code(), Some(0), "sync: {}", describe(&out));
}

/// `kubectl sync HEAD app` of `repo` as app `app` in `ns`, with `extra` flags.
fn sync_with(
    cluster: &TestCluster,
    repo: &GitFixture,
    app: &str,
    ns: &str,
    extra: &[&str],
) -> Output {
    cluster
        .kubectl()
        .args(["sync", "HEAD", "app", "--app", app, "-n", ns])
        .args(extra)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn drift_cmd(cluster: &TestCluster, args: &[&str]) -> Command {
    let mut cmd = cluster.kubectl();
    cmd.arg("drift").args(args).stdin(Stdio::null());
    cmd
}

fn drift(cluster: &TestCluster, args: &[&str]) -> Output {
    drift_cmd(cluster, args).output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", describe(out));
}

fn get(cluster: &TestCluster, ns: &str, what: &str, jsonpath: &str) -> String {
    cluster.kubectl_ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={jsonpath}")])
}

/// The object entry of `key_name` (kind/name) in a drift document.
fn object<'a>(doc: &'a Value, kind: &str, name: &str) -> &'a Value {
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"]["kind"] == kind && o["key"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {doc:#}"))
}

/// The field entry at `path` of an object entry.
fn field<'a>(object: &'a Value, path: &str) -> &'a Value {
    object["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no field {path} in {object:#}"))
}

/// A ConfigMap manifest named `name`.
fn config_map(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  greeting: hello\n"
    )
}

/// Labels an object as a member of the app's ApplySet, as a stray would be.
fn make_stray(cluster: &TestCluster, ns: &str, app: &str, what: &str) {
    let id = get(
        cluster,
        ns,
        &format!("secret/{app}.applyset"),
        "{.metadata.labels.applyset\\.kubernetes\\.io/id}",
    );
    cluster.kubectl_ok(&[
        "label",
        "-n",
        ns,
        what,
        &format!("applyset.kubernetes.io/part-of={id}"),
    ]);
}

#[test]
fn drift_names_what_changed_and_who_then_heal_puts_it_back() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-main");
    let n = ns.name.as_str();
    let repo = repo_with(&[
        ("app/web.yaml", WEB),
        ("app/settings.yaml", SETTINGS),
        ("app/creds.yaml", CREDS),
    ]);
    sync(cluster, &repo, "shop", n);
    let out = drift(cluster, &["shop", "-n", n]);
    code(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("app shop: in sync against release 1"),
        "{}",
        describe(&out)
    );

    // kubectl edit (the real one, with a scripted editor), scale, a Secret patch, a
    // removed label, a deleted member and a stray.
    let edit = cluster
        .kubectl()
        .args(["edit", "-n", n, "deployment/web"])
        .env("KUBE_EDITOR", "sed -i s/nginx:1.26/nginx:1.27/")
        .output()
        .unwrap();
    assert!(edit.status.success(), "{}", describe(&edit));
    cluster.kubectl_ok(&["scale", "-n", n, "deployment/web", "--replicas=4"]);
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "secret/creds",
        "-p",
        "{\"data\":{\"password\":\"bGVha2Vk\"}}",
    ]);
    cluster.kubectl_ok(&["label", "-n", n, "configmap/settings", "tier-"]);
    cluster.kubectl_ok(&["create", "configmap", "extra", "-n", n]);
    make_stray(cluster, n, "shop", "configmap/extra");

    let out = drift(cluster, &["shop", "-n", n, "--color=never"]);
    code(&out, 1);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Deployment.apps ".to_string() + n + "/web: modified",
        "/spec/template/spec/containers/0/image: \"nginx:1.26\" -> \"nginx:1.27\" (by kubectl-edit, Update, ".into(),
        "/spec/replicas: 2 -> 4 (by kubectl, Update via scale)".into(),
        "/data/password: \"***\" -> \"***\" (by kubectl-patch".into(),
        "/metadata/labels/tier: \"front\" -> (none) (removed".into(),
        "ConfigMap ".to_string() + n + "/extra: stray",
        "app shop: drifted against release 1 (3 modified, 0 deleted, 1 stray, 0 in sync)".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("bGVha2Vk") && !text.contains("aHVudGVyMg") && !text.contains("hunter2"),
        "a Secret value was printed:\n{text}"
    );

    // Deleted now too; the JSON document, exactly where it matters.
    cluster.kubectl_ok(&["delete", "-n", n, "configmap/settings"]);
    let out = drift(cluster, &["shop", "-n", n, "-o", "json"]);
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(doc["app"], "shop");
    assert_eq!(doc["namespace"], n);
    assert_eq!(doc["release"], 1);
    assert_eq!(doc["status"], "drifted");
    assert_eq!(doc["against"]["kind"], "release");
    assert_eq!(doc["against"]["name"], "1");
    assert_eq!(
        doc["summary"],
        json!({"modified": 2, "deleted": 1, "stray": 1, "in_sync": 0, "ignored_fields": 0})
    );
    let web = object(&doc, "Deployment", "web");
    assert_eq!(web["state"], "modified");
    assert_eq!(web["key"]["group"], "apps");
    let image = field(web, "/spec/template/spec/containers/0/image");
    assert_eq!(image["path"], "/spec/template/spec/containers/0/image");
    assert_eq!(image["desired"], "nginx:1.26");
    assert_eq!(image["live"], "nginx:1.27");
    assert_eq!(image["manager"], "kubectl-edit");
    assert_eq!(image["operation"], "Update");
    assert!(image["time"].as_str().unwrap().ends_with('Z'), "{image}");
    let replicas = field(web, "/spec/replicas");
    assert_eq!(
        (
            &replicas["path"],
            &replicas["desired"],
            &replicas["live"],
            &replicas["manager"],
            &replicas["subresource"]
        ),
        (
            &json!("/spec/replicas"),
            &json!(2),
            &json!(4),
            &json!("kubectl"),
            &json!("scale")
        )
    );
    let creds = object(&doc, "Secret", "creds");
    assert_eq!(
        creds["fields"],
        json!([{"path": "/data/password", "desired": "***", "live": "***", "manager": "kubectl-patch",
                "operation": "Update", "subresource": null, "time": creds["fields"][0]["time"]}])
    );
    assert_eq!(object(&doc, "ConfigMap", "settings")["state"], "deleted");
    assert_eq!(object(&doc, "ConfigMap", "extra")["state"], "stray");
    assert_eq!(doc["git"], Value::Null);
    assert_eq!(doc["healed"], Value::Null);

    // --show-secrets shows the value (base64, as stored).
    let out = drift(cluster, &["shop", "-n", n, "-o", "json", "--show-secrets"]);
    let doc = json(&out);
    assert_eq!(
        object(&doc, "Secret", "creds")["fields"][0]["live"],
        "bGVha2Vk"
    );

    // --ignore-manager kubectl: the scale is not drift.
    let out = drift(
        cluster,
        &["shop", "-n", n, "-o", "json", "--ignore-manager", "kubectl"],
    );
    let doc = json(&out);
    assert_eq!(
        object(&doc, "Deployment", "web")["fields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(doc["summary"]["ignored_fields"], 1);
    assert_eq!(
        doc["ignored"],
        json!([{"key": {"group": "apps", "kind": "Deployment", "namespace": n, "name": "web"},
                "path": "/spec/replicas", "manager": "kubectl", "reason": "manager kubectl"}])
    );

    // Heal: everything back, the stray deleted, and a release saying so.
    let out = drift(
        cluster,
        &[
            "shop",
            "-n",
            n,
            "--heal",
            "--prune-strays",
            "-o",
            "json",
            "--timeout",
            "90s",
        ],
    );
    code(&out, 0);
    let doc = json(&out);
    assert_eq!(doc["healed"]["release"], 2);
    assert_eq!(doc["healed"]["status"], "deployed");
    assert_eq!(
        doc["healed"]["counts"],
        json!({"created": 1, "configured": 2, "unchanged": 0, "pruned": 1, "failed": 0})
    );
    let description = doc["healed"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("healed drift from release 1: modified "),
        "{description}"
    );
    assert_eq!(
        get(
            cluster,
            n,
            "deployment/web",
            "{.spec.replicas} {.spec.template.spec.containers[0].image}"
        ),
        "2 nginx:1.26"
    );
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.metadata.labels.tier}"),
        "front"
    );
    assert_eq!(
        get(cluster, n, "secret/creds", "{.data.password}"),
        "aHVudGVyMg=="
    );
    let gone = cluster
        .kubectl()
        .args(["get", "configmap/extra", "-n", n])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the stray was not pruned");
    assert_eq!(
        get(
            cluster,
            n,
            "secret/shop.r2",
            "{.metadata.labels.kubectl-gitops\\.io/status}"
        ),
        "deployed"
    );
    assert_eq!(
        get(
            cluster,
            n,
            "secret/shop.r1",
            "{.metadata.labels.kubectl-gitops\\.io/status}"
        ),
        "superseded"
    );

    let out = drift(cluster, &["shop", "-n", n]);
    code(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("app shop: in sync against release 2"),
        "{}",
        describe(&out)
    );
}

#[test]
fn ignore_rules_from_flags_config_file_and_annotations_and_heal_leaves_them_alone() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-ignore");
    let n = ns.name.as_str();
    // The config file ignores the replicas (an HPA's); the manifest's annotation ignores a label.
    let annotated = SETTINGS.replace(
        "  labels: {tier: front}\n",
        "  labels: {tier: front}\n  annotations:\n    kubectl-gitops.io/drift-ignore: /metadata/labels/tier\n",
    );
    let repo = repo_with(&[
        ("app/web.yaml", WEB),
        ("app/settings.yaml", &annotated),
        (
            "app/.kubectl-gitops.yaml",
            "ignore:\n- kind: Deployment\n  group: apps\n  paths: [/spec/replicas]\n",
        ),
    ]);
    sync(cluster, &repo, "cfg", n);
    cluster.kubectl_ok(&["scale", "-n", n, "deployment/web", "--replicas=3"]);
    cluster.kubectl_ok(&[
        "label",
        "-n",
        n,
        "configmap/settings",
        "tier=back",
        "--overwrite",
    ]);
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "configmap/settings",
        "-p",
        "{\"data\":{\"greeting\":\"hi\"}}",
        "--field-manager=helper",
    ]);

    let out = drift(cluster, &["cfg", "-n", n, "-o", "json"]);
    code(&out, 1);
    let doc = json(&out);
    let reasons: Vec<&str> = doc["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "path /metadata/labels/tier (kubectl-gitops.io/drift-ignore)",
            "path /spec/replicas"
        ],
        "{doc:#}"
    );
    let settings = object(&doc, "ConfigMap", "settings");
    assert_eq!(settings["fields"][0]["path"], "/data/greeting");
    assert_eq!(settings["fields"][0]["manager"], "helper");
    // The flags ignore the rest.
    let out = drift(
        cluster,
        &[
            "cfg",
            "-n",
            n,
            "--ignore-path",
            "ConfigMap:/data",
            "--ignore-manager",
            "nobody",
        ],
    );
    code(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 fields ignored"),
        "{}",
        describe(&out)
    );
    let out = drift(cluster, &["cfg", "-n", n, "--ignore-path", "spec.replicas"]);
    code(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a JSON pointer"),
        "{}",
        describe(&out)
    );

    // Healing puts the greeting back and leaves the ignored fields to their owners.
    let out = drift(cluster, &["cfg", "-n", n, "--heal", "--wait=false"]);
    code(&out, 0);
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.data.greeting}"),
        "hello"
    );
    assert_eq!(
        get(cluster, n, "configmap/settings", "{.metadata.labels.tier}"),
        "back"
    );
    assert_eq!(get(cluster, n, "deployment/web", "{.spec.replicas}"), "3");
    code(&drift(cluster, &["cfg", "-n", n]), 0);
}

#[test]
fn an_ignore_rule_for_a_kind_the_cluster_does_not_serve_is_named_with_a_guess() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-typo");
    let n = ns.name.as_str();
    let repo = repo_with(&[("app/web.yaml", WEB)]);
    sync(cluster, &repo, "typo", n);
    cluster.kubectl_ok(&["scale", "-n", n, "deployment/web", "--replicas=3"]);
    let typo = "Deploymnet.apps:/spec/replicas";
    let out = drift(cluster, &["typo", "-n", n, "--ignore-path", typo]);
    // The rule ignores nothing, so the scale is drift; and stderr says why.
    code(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kind Deploymnet.apps matches nothing")
            && err.contains("did you mean Deployment.apps?"),
        "{}",
        describe(&out)
    );
    // Spelt right: no warning, and no drift.
    let out = drift(
        cluster,
        &[
            "typo",
            "-n",
            n,
            "--ignore-path",
            "Deployment.apps:/spec/replicas",
        ],
    );
    code(&out, 0);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("matches nothing"),
        "{}",
        describe(&out)
    );
}

#[test]
fn every_app_in_a_namespace_or_all_namespaces_one_row_each() {
    let cluster = TestCluster::get();
    let first = cluster.namespace("dr-all-a");
    let second = cluster.namespace("dr-all-b");
    let (a, b) = (first.name.as_str(), second.name.as_str());
    // Each app its own ConfigMap, so a patch drifts exactly one of them.
    for (app, namespace) in [("calm", a), ("moved", b), ("still", b)] {
        let repo = repo_with(&[("app/cm.yaml", &config_map(app))]);
        sync(cluster, &repo, app, namespace);
    }
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        b,
        "configmap/moved",
        "-p",
        "{\"data\":{\"greeting\":\"changed\"}}",
    ]);

    let out = drift(cluster, &["-n", b]);
    code(&out, 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("APP") && text.contains("STATUS"), "{text}");
    let row = |app: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(app))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(
        row("moved"),
        Some(vec!["moved", "1", "drifted", "1", "0", "0"]),
        "{text}"
    );
    assert_eq!(
        row("still"),
        Some(vec!["still", "1", "in", "sync", "0", "0", "0"]),
        "{text}"
    );
    assert!(text.contains("2 apps: 1 in sync, 1 drifted"), "{text}");

    let out = drift(cluster, &["-A", "-o", "json"]);
    let doc = json(&out);
    let ours: Vec<(String, String, String)> = doc["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespace"] == a || r["namespace"] == b)
        .map(|r| {
            (
                r["namespace"].as_str().unwrap().to_string(),
                r["app"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ours,
        [
            (a.to_string(), "calm".to_string(), "in-sync".to_string()),
            (b.to_string(), "moved".to_string(), "drifted".to_string()),
            (b.to_string(), "still".to_string(), "in-sync".to_string()),
        ]
    );
    assert!(doc["summary"]["apps"].as_u64().unwrap() >= 3, "{doc}");

    let out = drift(cluster, &["-A"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [a, "calm", "1", "in", "sync", "0", "0", "0"]),
        "{}",
        describe(&out)
    );

    let out = drift(cluster, &["nope", "-n", a]);
    code(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("app nope has no releases in namespace {a}")),
        "{}",
        describe(&out)
    );
}

/// An app in two namespaces is read with one LIST per kind (its members, label-selected,
/// across all namespaces), shared by the comparison and the stray lookup: no LIST per
/// namespace. An edit in one namespace, a deleted member and a stray in the other are
/// still seen.
#[test]
fn one_member_list_per_kind_serves_the_comparison_and_the_stray_lookup() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dr-lists");
    let other_ns = cluster.namespace("dr-lists-other");
    let (n, other) = (test_ns.name.as_str(), other_ns.name.as_str());
    let in_other = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {other}\ndata:\n  greeting: hello\n"
        )
    };
    let repo = repo_with(&[
        ("app/a.yaml", &config_map("a")),
        ("app/b.yaml", &in_other("b")),
        ("app/c.yaml", &in_other("c")),
    ]);
    sync(cluster, &repo, "lists", n);
    let id = gitops::apply::applyset::ApplySetId::for_app("lists", n).to_string();

    let offset = cluster.audit_offset();
    let out = drift(cluster, &["lists", "-n", n, "-o", "json"]);
    code(&out, 0);
    assert_eq!(json(&out)["summary"]["in_sync"], 3);
    let requests = requests_about(cluster, offset, &[n, other], Some(id.as_str()));
    assert_eq!(
        counted(&requests, "list"),
        [
            ("configmaps *".to_string(), 1),
            // The release records (label-selected).
            (format!("secrets {n}"), 1),
        ],
        "{requests:#?}"
    );
    // Of the records, only the deployed ones are read: each holds a whole manifest.
    let record_lists: Vec<String> = cluster
        .our_audit_events_since(offset)
        .iter()
        .filter(|e| {
            e["verb"] == "list"
                && e["objectRef"]["resource"] == "secrets"
                && e["objectRef"]["namespace"] == n
        })
        .filter_map(|e| e["requestURI"].as_str().map(str::to_string))
        .collect();
    assert!(
        record_lists.len() == 1 && record_lists[0].contains("status%3Ddeployed"),
        "{record_lists:?}"
    );

    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "configmap/a",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"bye"}}"#,
    ]);
    cluster.kubectl_ok(&["delete", "-n", other, "configmap/c"]);
    cluster.kubectl_ok(&["create", "configmap", "extra", "-n", other]);
    cluster.kubectl_ok(&[
        "label",
        "-n",
        other,
        "configmap/extra",
        &format!("applyset.kubernetes.io/part-of={id}"),
    ]);
    let out = drift(cluster, &["lists", "-n", n, "-o", "json"]);
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(
        doc["summary"],
        json!({"modified": 1, "deleted": 1, "stray": 1, "in_sync": 1, "ignored_fields": 0})
    );
    assert_eq!(object(&doc, "ConfigMap", "a")["state"], "modified");
    assert_eq!(object(&doc, "ConfigMap", "c")["state"], "deleted");
    assert_eq!(object(&doc, "ConfigMap", "extra")["state"], "stray");
}

/// Without a deployed release there is nothing to compare with: drift says what the app
/// has instead, and exits 2.
#[test]
fn an_app_whose_only_release_failed_is_an_error_naming_it() {
    let cluster = TestCluster::get();
    let test_ns = cluster.namespace("dr-failed");
    let n = test_ns.name.as_str();
    let repo = repo_with(&[(
        "app/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nbogus: 1\n",
    )]);
    let out = sync_with(cluster, &repo, "failing", n, &["--yes", "--wait=false"]);
    code(&out, 2);
    assert_eq!(
        cluster.release_statuses(n, "failing"),
        vec![(1, "failed".to_string())]
    );
    let out = drift(cluster, &["failing", "-n", n]);
    code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "app failing has no deployed release in namespace {n}"
        )) && err.contains("its newest, release 1, is failed"),
        "{err}"
    );
}
