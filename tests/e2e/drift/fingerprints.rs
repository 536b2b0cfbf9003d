//! Drift of objects nobody has written since the sync is known from the deployed release,
//! without a dry run, the app read with one LIST per kind; writes by others since are
//! still found, dry-running only the objects they touched.

use kubectl_gitops_tests::{GitFixture, TestCluster};
use serde_json::Value;

use super::{code, config_map, drift, field, json, object, repo_with, sync, sync_with};
use crate::requests::{Request, counted, requests_about};

/// The dry runs among `requests`, as `resource namespace/name`.
fn dry_runs(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.verb.ends_with("(dry-run)"))
        .map(|r| format!("{} {}/{}", r.resource, r.namespace, r.name))
        .collect()
}

/// `kubectl drift APP -n NS -o json`, and the requests it made about `ns` (and the app's
/// members across all namespaces).
fn checked(cluster: &TestCluster, app: &str, ns: &str) -> (std::process::Output, Vec<Request>) {
    let id = gitops::apply::applyset::ApplySetId::for_app(app, ns).to_string();
    let offset = cluster.audit_offset();
    let out = drift(cluster, &[app, "-n", ns, "-o", "json"]);
    let requests = requests_about(cluster, offset, &[ns], Some(id.as_str()));
    (out, requests)
}

#[test]
fn an_untouched_app_is_checked_with_one_list_per_kind_and_no_dry_run() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-fp-many");
    let n = ns.name.as_str();
    // 50 objects of five kinds, Secrets applied both as data and as stringData.
    let repo = GitFixture::new();
    for i in 0..20 {
        repo.write(&format!("app/cm{i}.yaml"), &config_map(&format!("cm{i}")));
    }
    for i in 0..5 {
        repo.write(
            &format!("app/data{i}.yaml"),
            &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: data{i}\ndata:\n  token: dG9rZW4=\n"),
        );
        repo.write(
            &format!("app/string{i}.yaml"),
            &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: string{i}\nstringData:\n  token: token{i}\n"),
        );
    }
    for i in 0..8 {
        repo.write(
            &format!("app/svc{i}.yaml"),
            &format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{i}\nspec:\n  selector: {{app: web{i}}}\n  ports:\n  - port: 80\n"),
        );
    }
    for i in 0..7 {
        repo.write(
            &format!("app/sa{i}.yaml"),
            &format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa{i}\n"),
        );
    }
    for i in 0..5 {
        repo.write(
            &format!("app/web{i}.yaml"),
            &super::WEB.replace("name: web\n", &format!("name: web{i}\n")),
        );
    }
    repo.commit("50 objects of five kinds");
    // The Deployments' controller writes their status and a revision annotation after
    // the sync: their resourceVersions move, what the app owns of them does not.
    let out = sync_with(cluster, &repo, "many", n, &["--wait=false"]);
    code(&out, 0);
    cluster.kubectl_ok(&["annotate", "-n", n, "configmap/cm3", "example.com/note=hi"]);

    let (out, requests) = checked(cluster, "many", n);
    code(&out, 0);
    let doc = json(&out);
    assert_eq!(doc["status"], "in-sync", "{doc:#}");
    assert_eq!(
        doc["summary"],
        json!({"modified": 0, "deleted": 0, "stray": 0, "in_sync": 50, "ignored_fields": 0})
    );
    assert_eq!(dry_runs(&requests), Vec::<String>::new(), "{requests:#?}");
    // One LIST per kind across all namespaces (the app's members, label-selected), which
    // serves the comparison and the stray lookup; one of the release records.
    assert_eq!(
        counted(&requests, "list"),
        [
            ("configmaps *".to_string(), 1),
            ("deployments *".to_string(), 1),
            ("secrets *".to_string(), 1),
            (format!("secrets {n}"), 1),
            ("serviceaccounts *".to_string(), 1),
            ("services *".to_string(), 1),
        ],
        "{requests:#?}"
    );
    // No object read one by one: the ApplySet parent, and the records after the deployed
    // one looked for by name.
    let gets: Vec<String> = requests
        .iter()
        .filter(|r| r.verb == "get" && !r.name.starts_with("many.r"))
        .map(|r| format!("{} {}/{}", r.resource, r.namespace, r.name))
        .collect();
    assert_eq!(
        gets,
        [format!("secrets {n}/many.applyset")],
        "{requests:#?}"
    );
    assert!(
        requests.iter().all(|r| r.verb == "get" || r.verb == "list"),
        "{requests:#?}"
    );

    // An edit: that object alone is dry-run, and its change found.
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "configmap/cm7",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"edited"}}"#,
    ]);
    let (out, requests) = checked(cluster, "many", n);
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(doc["summary"]["in_sync"], 49);
    let greeting = field(object(&doc, "ConfigMap", "cm7"), "/data/greeting");
    assert_eq!(
        (
            &greeting["desired"],
            &greeting["live"],
            &greeting["manager"]
        ),
        (&json!("hello"), &json!("edited"), &json!("kubectl-patch"))
    );
    assert_eq!(
        dry_runs(&requests),
        [format!("configmaps {n}/cm7")],
        "{requests:#?}"
    );
    assert!(
        counted(&requests, "list").iter().all(|(_, c)| *c == 1),
        "{requests:#?}"
    );
}

/// A ConfigMap of `n` as JSON, with its managedFields.
fn live_config_map(cluster: &TestCluster, n: &str, name: &str) -> Value {
    let text = cluster.kubectl_ok(&[
        "get",
        "-n",
        n,
        &format!("configmap/{name}"),
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    serde_json::from_str(&text).unwrap()
}

/// `kubectl VERB -f` an object given as JSON.
fn kubectl_with(cluster: &TestCluster, verb: &str, object: &Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(object).unwrap()).unwrap();
    cluster.kubectl_ok(&[verb, "-f", file.path().to_str().unwrap()]);
}

/// `live` without what the server sets on a create.
fn as_created(live: &Value) -> Value {
    let mut copy = live.clone();
    let metadata = copy["metadata"].as_object_mut().unwrap();
    for server_set in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        metadata.remove(server_set);
    }
    copy
}

#[test]
fn writes_by_others_after_the_sync_are_still_found() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-fp-edits");
    let n = ns.name.as_str();
    let settings = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n  colour: blue\n";
    let repo = repo_with(&[
        ("app/web.yaml", super::WEB),
        ("app/settings.yaml", settings),
        ("app/restored.yaml", &config_map("restored")),
        ("app/recreated.yaml", &config_map("recreated")),
        ("app/calm.yaml", &config_map("calm")),
    ]);
    sync(cluster, &repo, "edits", n);
    // Checked against a release the sync wrote: nothing is dry-run.
    let (out, requests) = checked(cluster, "edits", n);
    code(&out, 0);
    assert_eq!(dry_runs(&requests), Vec::<String>::new(), "{requests:#?}");

    // An edit of a field the app applies, as `kubectl edit` makes it.
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "deployment/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    // A field the app applies, removed.
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "configmap/settings",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/colour"}]"#,
    ]);
    // Deleted, then restored from a backup by another tool: an older value, and the
    // managedFields as the sync left them (the app's entry, its fields and time, as they
    // were); only the uid says it is another object.
    let saved = live_config_map(cluster, n, "restored");
    cluster.kubectl_ok(&["delete", "-n", n, "configmap/restored"]);
    let mut older = as_created(&saved);
    older["data"]["greeting"] = json!("from the backup");
    kubectl_with(cluster, "create", &older);
    let mut restored = live_config_map(cluster, n, "restored");
    restored["metadata"]["managedFields"] = saved["metadata"]["managedFields"].clone();
    kubectl_with(cluster, "replace", &restored);
    let restored = live_config_map(cluster, n, "restored");
    assert_eq!(
        restored["metadata"]["managedFields"], saved["metadata"]["managedFields"],
        "the restore kept the app's entry as it was"
    );
    assert_ne!(restored["metadata"]["uid"], saved["metadata"]["uid"]);
    // Deleted and created again by another tool, the same content.
    let recreated = live_config_map(cluster, n, "recreated");
    cluster.kubectl_ok(&["delete", "-n", n, "configmap/recreated"]);
    kubectl_with(cluster, "create", &as_created(&recreated));
    // A write to a field the app does not apply.
    cluster.kubectl_ok(&["annotate", "-n", n, "configmap/calm", "example.com/note=hi"]);

    let (out, requests) = checked(cluster, "edits", n);
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(
        doc["summary"],
        json!({"modified": 3, "deleted": 0, "stray": 0, "in_sync": 2, "ignored_fields": 0}),
        "{doc:#}"
    );
    let replicas = field(object(&doc, "Deployment", "web"), "/spec/replicas");
    assert_eq!(
        (
            &replicas["desired"],
            &replicas["live"],
            &replicas["manager"]
        ),
        (&json!(2), &json!(3), &json!("kubectl-patch"))
    );
    let colour = field(object(&doc, "ConfigMap", "settings"), "/data/colour");
    assert_eq!(
        (&colour["desired"], &colour["live"], &colour["manager"]),
        (&json!("blue"), &Value::Null, &Value::Null)
    );
    let greeting = field(object(&doc, "ConfigMap", "restored"), "/data/greeting");
    assert_eq!(
        (&greeting["desired"], &greeting["live"]),
        (&json!("hello"), &json!("from the backup"))
    );
    // Every object written since was dry-run (the re-created one is as the release has
    // it, so in sync); the one only annotated was not.
    assert_eq!(
        dry_runs(&requests),
        [
            format!("configmaps {n}/recreated"),
            format!("configmaps {n}/restored"),
            format!("configmaps {n}/settings"),
            format!("deployments {n}/web"),
        ],
        "{requests:#?}"
    );

    // The heal's release remembers where it left every object: the next check is again
    // made without a dry run.
    let out = drift(cluster, &["edits", "-n", n, "--heal", "--wait=false"]);
    code(&out, 0);
    assert_eq!(
        super::get(cluster, n, "configmap/restored", "{.data.greeting}"),
        "hello"
    );
    let (out, requests) = checked(cluster, "edits", n);
    code(&out, 0);
    assert_eq!(json(&out)["summary"]["in_sync"], 5);
    assert_eq!(dry_runs(&requests), Vec::<String>::new(), "{requests:#?}");
}
