//! Every plugin's `-o json` against its JSON Schema in docs/schemas/, on a real app: a
//! ConfigMap, a Secret and a Deployment synced from git, and a Helm release installed by
//! the real helm. A renamed field must fail, so the schemas are checked to be strict.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, TestNamespace, describe, workspace_root};
use serde_json::Value;

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
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
const CREDS: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2\n";

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// Every schema in docs/schemas/, by file name.
fn schemas() -> BTreeMap<String, Value> {
    let dir = workspace_root().join("docs/schemas");
    let mut schemas = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let schema: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            schemas.insert(name, schema);
        }
    }
    schemas
}

/// A validator for `name`, the other schemas registered so its `$ref`s resolve offline.
fn validator(name: &str) -> jsonschema::Validator {
    let schemas = schemas();
    let mut options = jsonschema::options().with_draft(jsonschema::Draft::Draft202012);
    for schema in schemas.values() {
        let id = schema["$id"].as_str().unwrap().to_string();
        let resource = jsonschema::Resource::from_contents(schema.clone()).unwrap();
        options = options.with_resource(id, resource);
    }
    let schema = schemas
        .get(name)
        .unwrap_or_else(|| panic!("no docs/schemas/{name}"));
    options
        .build(schema)
        .unwrap_or_else(|e| panic!("docs/schemas/{name}: {e}"))
}

/// The reasons `document` does not match `name`, empty when it does.
fn violations(name: &str, document: &Value) -> Vec<String> {
    let validator = validator(name);
    validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

pub(crate) fn assert_matches(name: &str, document: &Value) {
    let errors = violations(name, document);
    assert!(
        errors.is_empty(),
        "does not match docs/schemas/{name}:\n{}\n{document:#}",
        errors.join("\n")
    );
}

/// `kubectl ARGS` in `dir`; the exit code must be one of `codes`; stdout as JSON.
fn json_of(cluster: &TestCluster, dir: &Path, args: &[&str], codes: &[i32]) -> Value {
    let out: Output = cluster
        .kubectl()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        codes.contains(&code),
        "kubectl {}: {}",
        args.join(" "),
        describe(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kubectl {} is not JSON ({e}): {}",
            args.join(" "),
            describe(&out)
        )
    })
}

fn exists(cluster: &TestCluster, ns: &str, what: &str) -> bool {
    let out = cluster
        .kubectl()
        .args(["get", what, "-n", ns, "-o", "name"])
        .output()
        .unwrap();
    out.status.success()
}

/// Two apps in an app list, `shop` (a ConfigMap, a Secret, a Deployment) and `extra`.
fn two_apps(ns: &TestNamespace) -> (GitFixture, String) {
    let repo = GitFixture::new();
    repo.write("app/settings.yaml", &config_map("settings", "one"));
    repo.write("app/creds.yaml", CREDS);
    repo.write("app/web.yaml", WEB);
    repo.write("extra/cm.yaml", &config_map("extra", "one"));
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n\
             - name: shop\n  path: app\n  namespace: {ns}\n\
             - name: extra\n  path: extra\n  namespace: {ns}\n  wait: false\n",
            ns = ns.name
        ),
    );
    let head = repo.commit("two apps");
    (repo, head)
}

#[test]
fn the_schemas_are_2020_12_and_a_renamed_field_fails() {
    for (name, schema) in schemas() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("docs/schemas/{name} is not a valid schema: {e}");
        }
    }
    let key = serde_json::json!({"group": "", "kind": "ConfigMap", "namespace": "a", "name": "b"});
    let commit = serde_json::json!({
        "id": "0123456789abcdef0123456789abcdef01234567", "short_id": "0123456",
        "subject": "first", "author_name": "A", "author_email": "a@example.com", "time": 1
    });
    let release = serde_json::json!({
        "app": "shop", "namespace": "a", "release": 1, "status": "deployed",
        "operation": "sync", "rollback_of": null, "commit": commit,
        "counts": {"created": 1, "configured": 0, "unchanged": 0, "pruned": 0, "failed": 0},
        "objects": [{"key": key, "action": "created", "health": null, "message": null}],
        "error": null
    });
    assert_matches("sync.json", &release);
    let mut with_commits = release.clone();
    with_commits["commits"] = serde_json::json!([commit]);
    assert_matches("sync.json", &with_commits);

    // Each of these must fail, or the schema would let a renamed field through.
    let renamed = |document: &Value, path: &[&str], from: &str, to: &str| {
        let mut document = document.clone();
        let mut at = &mut document;
        for step in path {
            at = &mut at[*step];
        }
        let object = at.as_object_mut().unwrap();
        let value = object.remove(from).unwrap();
        object.insert(to.into(), value);
        document
    };
    let bare_id = {
        let mut document = release.clone();
        document["commit"] = commit["id"].clone();
        document
    };
    let wrong = [
        renamed(&release, &[], "release", "revision"),
        renamed(&release, &["commit"], "short_id", "short"),
        renamed(&release, &["counts"], "pruned", "deleted"),
        bare_id,
    ];
    for document in &wrong {
        assert!(
            !violations("sync.json", document).is_empty(),
            "sync.json lets this through:\n{document:#}"
        );
    }
    let diff = serde_json::json!({
        "before": "live", "after": "HEAD", "conflicts": [], "changes": [],
        "summary": {"added": 0, "changed": 0, "removed": 0, "unchanged": 1}
    });
    assert_matches("diff-git.json", &diff);
    assert!(!violations("diff-git.json", &renamed(&diff, &[], "changes", "objects")).is_empty());
    let items = serde_json::json!({"items": [renamed(&release, &[], "app", "name")]});
    assert!(!violations("items.json", &items).is_empty());
}

#[test]
fn diff_git_and_sync_json_match_their_schemas() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("schema-sync");
    let n = ns.name.as_str();
    let (repo, head) = two_apps(&ns);
    let dir = repo.path();
    let one = ["HEAD", "app", "--app", "shop", "-n", n, "-o", "json"];

    let diff = json_of(cluster, dir, &[&["diff-git"][..], &one].concat(), &[1]);
    assert_matches("diff-git.json", &diff);
    assert_eq!(diff["summary"]["added"], 3, "{diff:#}");

    let dry = json_of(
        cluster,
        dir,
        &[&["sync", "--dry-run"][..], &one].concat(),
        &[1],
    );
    assert_matches("sync-dry-run.json", &dry);
    assert_eq!(dry["dry_run_changes"], 3, "{dry:#}");
    assert!(
        !exists(cluster, n, "configmap/settings"),
        "a dry run applied"
    );

    let synced = json_of(
        cluster,
        dir,
        &[&["sync"][..], &one, &["--timeout", "90s"]].concat(),
        &[0],
    );
    assert_matches("sync.json", &synced);
    assert_eq!(synced["commit"]["id"], head.as_str(), "{synced:#}");
    assert_eq!(synced["commit"]["subject"], "two apps");
    assert_eq!(
        cluster.release_statuses(n, "shop"),
        [(1, "deployed".to_string())]
    );

    // A change: diff-git lists it with both sides.
    repo.write("app/settings.yaml", &config_map("settings", "two"));
    repo.commit("two");
    let diff = json_of(cluster, dir, &[&["diff-git"][..], &one].concat(), &[1]);
    assert_matches("diff-git.json", &diff);
    assert_eq!(diff["changes"][0]["action"], "changed", "{diff:#}");

    // Several destinations: one item each.
    let all = ["HEAD", "--all", "-o", "json"];
    let items = json_of(cluster, dir, &[&["diff-git"][..], &all].concat(), &[1]);
    assert_matches("items.json", &items);
    assert_eq!(items["items"].as_array().unwrap().len(), 2, "{items:#}");
    let items = json_of(
        cluster,
        dir,
        &[&["sync", "--dry-run"][..], &all].concat(),
        &[1],
    );
    assert_matches("items.json", &items);
    assert!(!exists(cluster, n, "configmap/extra"), "a dry run applied");
    let items = json_of(
        cluster,
        dir,
        &[&["sync"][..], &all, &["--timeout", "90s"]].concat(),
        &[0],
    );
    assert_matches("items.json", &items);
    for item in items["items"].as_array().unwrap() {
        assert!(item["commit"]["id"].is_string(), "{item:#}");
    }
    assert!(exists(cluster, n, "configmap/extra"));
    let value = cluster.kubectl_ok(&[
        "get",
        "configmap/settings",
        "-n",
        n,
        "-o",
        "jsonpath={.data.value}",
    ]);
    assert_eq!(value, "two");
}

/// A one-ConfigMap chart installed by the real helm as release `hello`.
fn helm_install(cluster: &TestCluster, ns: &str) {
    let chart = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = chart.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "Chart.yaml",
        "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    );
    write("values.yaml", "greeting: hi\n");
    write(
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  greeting: {{ .Values.greeting }}\n",
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(cluster.helm_path())
        .args([
            "install",
            "hello",
            &chart.path().to_string_lossy(),
            "-n",
            ns,
        ])
        .env("KUBECONFIG", &cluster.admin_kubeconfig)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "helm install: {}", describe(&out));
}

#[test]
fn release_history_json_matches_its_schemas() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("schema-history");
    let n = ns.name.as_str();
    let (repo, head) = two_apps(&ns);
    let dir = repo.path();
    let sync = [
        "sync",
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
    ];
    json_of(cluster, dir, &sync, &[0]);
    repo.write("app/settings.yaml", &config_map("settings", "two"));
    repo.commit("two");
    json_of(cluster, dir, &sync, &[0]);
    helm_install(cluster, n);
    assert!(
        exists(cluster, n, "configmap/hello"),
        "helm installed nothing"
    );

    let apps = json_of(
        cluster,
        dir,
        &["release-history", "-n", n, "-o", "json"],
        &[0],
    );
    assert_matches("release-history-apps.json", &apps);
    let sources: Vec<&Value> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["source"])
        .collect();
    assert!(sources.contains(&&Value::from("helm")), "{apps:#}");
    assert!(
        sources.contains(&&Value::from("kubectl-gitops")),
        "{apps:#}"
    );

    for app in ["shop", "hello"] {
        let history = json_of(
            cluster,
            dir,
            &["release-history", app, "-n", n, "-o", "json"],
            &[0],
        );
        assert_matches("release-history-app.json", &history);
        let one = json_of(
            cluster,
            dir,
            &["release-history", app, "1", "-n", n, "-o", "json"],
            &[0],
        );
        assert_matches("release-history-release.json", &one);
        let manifest = [
            "release-history",
            app,
            "1",
            "-n",
            n,
            "--manifest",
            "-o",
            "json",
        ];
        let one = json_of(cluster, dir, &manifest, &[0]);
        assert_matches("release-history-release.json", &one);
        assert!(one["manifest"].is_string(), "{one:#}");
    }
    let history = json_of(
        cluster,
        dir,
        &["release-history", "shop", "-n", n, "-o", "json"],
        &[0],
    );
    assert_eq!(history["releases"][1]["commit"]["id"], head.as_str());
    let diff = json_of(
        cluster,
        dir,
        &["release-history", "shop", "1", "2", "-n", n, "-o", "json"],
        &[0, 1],
    );
    assert_matches("release-history-diff.json", &diff);
    assert_eq!(diff["summary"]["changed"], 1, "{diff:#}");
}

#[test]
fn drift_json_matches_its_schemas() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("schema-drift");
    let n = ns.name.as_str();
    let (repo, head) = two_apps(&ns);
    let dir = repo.path();
    let all = ["sync", "HEAD", "--all", "-o", "json", "--timeout", "90s"];
    json_of(cluster, dir, &all, &[0]);
    cluster.kubectl_ok(&[
        "patch",
        "configmap/settings",
        "-n",
        n,
        "-p",
        r#"{"data":{"value":"edited"}}"#,
    ]);
    cluster.kubectl_ok(&["delete", "secret/creds", "-n", n]);
    repo.write("app/settings.yaml", &config_map("settings", "three"));
    repo.commit("three");

    let one = json_of(
        cluster,
        dir,
        &["drift", "shop", "-n", n, "--git", "-o", "json"],
        &[1],
    );
    assert_matches("drift.json", &one);
    assert_eq!(one["status"], "drifted", "{one:#}");
    assert_eq!(one["git"]["commits"][0]["subject"], "three", "{one:#}");
    assert_ne!(one["git"]["commit"]["id"], head.as_str());

    let round = json_of(cluster, dir, &["drift", "-n", n, "-o", "json"], &[1]);
    assert_matches("drift-apps.json", &round);
    assert_eq!(round["summary"]["apps"], 2, "{round:#}");

    // The app list on one cluster: the round's document, as without it.
    let listed = json_of(cluster, dir, &["drift", "--all", "-o", "json"], &[1]);
    assert_matches("drift-apps.json", &listed);
    assert_eq!(listed["summary"]["drifted"], 1, "{listed:#}");
    // With --context repeated each context's report is an item (one context here, so
    // the item is built as drift builds it).
    let item =
        serde_json::json!({"items": [{"context": "admin@test", "error": null, "report": listed}]});
    assert_matches("items.json", &item);

    // Healed: the cluster is put back, and the document says so.
    let healed = json_of(
        cluster,
        dir,
        &[
            "drift",
            "shop",
            "-n",
            n,
            "--heal",
            "-o",
            "json",
            "--timeout",
            "90s",
        ],
        &[0],
    );
    assert_matches("drift.json", &healed);
    assert!(healed["healed"]["release"].is_u64(), "{healed:#}");
    assert!(
        exists(cluster, n, "secret/creds"),
        "the heal did not recreate the Secret"
    );
}
