//! Least privilege: each plugin works as a user bound to exactly the Role documented for
//! it in docs/rbac/, and a Role missing one rule gets an error naming the verb and the
//! resource it lacks.

use std::process::{Output, Stdio};

use kubectl_gitops_tests::record::canary_secret_yaml;
use kubectl_gitops_tests::{GitFixture, ServiceAccountUser, TestCluster, describe, workspace_root};
use serde::Deserialize as _;
use serde_yaml_ng::Value;

const APP: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.26}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
";

/// The Role documented for `plugin` (docs/rbac/<plugin>.yaml), as YAML.
pub(crate) fn documented_role(plugin: &str) -> Value {
    let path = workspace_root().join(format!("docs/rbac/{plugin}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "Role")
        .unwrap_or_else(|| panic!("{} has no Role", path.display()))
}

/// A ServiceAccount bound to `role` (created in the namespace) and nothing else.
pub(crate) fn user_with_role(
    cluster: &TestCluster,
    ns: &str,
    name: &str,
    mut role: Value,
) -> ServiceAccountUser {
    role["metadata"]["name"] = Value::from(format!("{name}-role"));
    cluster.apply_yaml(ns, &serde_yaml_ng::to_string(&role).unwrap());
    let user = cluster.service_account_user(ns, name);
    cluster.kubectl_ok(&[
        "create",
        "rolebinding",
        &format!("{name}-binding"),
        &format!("--role={name}-role"),
        &format!("--serviceaccount={ns}:{name}"),
        "-n",
        ns,
    ]);
    user
}

/// Removes `verb` from the rules of `role` that grant it on `resource`.
fn without(mut role: Value, verb: &str, resource: &str) -> Value {
    for rule in role["rules"].as_sequence_mut().unwrap() {
        let has = rule["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|r| r == resource);
        if has {
            rule["verbs"]
                .as_sequence_mut()
                .unwrap()
                .retain(|v| v != verb);
        }
    }
    role
}

fn run(
    cluster: &TestCluster,
    user: &ServiceAccountUser,
    repo: &GitFixture,
    args: &[&str],
) -> Output {
    cluster
        .kubectl()
        .args(args)
        .env("KUBECONFIG", &user.kubeconfig)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn assert_code(out: &Output, codes: &[i32]) {
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "expected exit {codes:?}: {}",
        describe(out)
    );
}

#[test]
fn each_plugin_works_with_exactly_its_documented_role() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rb-least");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "app.yaml",
        &format!("{APP}---\n{}", canary_secret_yaml("creds")),
    );
    repo.commit("app");

    let differ = user_with_role(cluster, n, "differ", documented_role("diff-git"));
    let syncer = user_with_role(cluster, n, "syncer", documented_role("sync"));
    let drifter = user_with_role(cluster, n, "drifter", documented_role("drift"));
    let historian = user_with_role(cluster, n, "historian", documented_role("release-history"));

    // Before anything is deployed: everything would be added.
    let out = run(cluster, &differ, &repo, &["diff-git", "HEAD"]);
    assert_code(&out, &[1]);

    let out = run(
        cluster,
        &syncer,
        &repo,
        &[
            "sync",
            "HEAD",
            "--app",
            "web",
            "--prune",
            "--timeout",
            "90s",
        ],
    );
    assert_code(&out, &[0]);

    let out = run(
        cluster,
        &differ,
        &repo,
        &["diff-git", "HEAD", "--app", "web"],
    );
    assert_code(&out, &[0]);
    let out = run(cluster, &drifter, &repo, &["drift", "web"]);
    assert_code(&out, &[0]);
    let out = run(
        cluster,
        &historian,
        &repo,
        &["release-history", "web", "-o", "json"],
    );
    assert_code(&out, &[0]);
    let out = run(cluster, &historian, &repo, &["release-history"]);
    assert_code(&out, &[0]);

    // Someone edits the app: drift sees it, drift --heal (the sync Role) puts it back.
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        n,
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"hi"}}"#,
    ]);
    let out = run(cluster, &drifter, &repo, &["drift", "web"]);
    assert_code(&out, &[1]);
    let out = run(
        cluster,
        &syncer,
        &repo,
        &["drift", "web", "--heal", "--timeout", "90s"],
    );
    assert_code(&out, &[0]);

    // A revision without the Service: sync prunes it with its Role.
    repo.write(
        "app.yaml",
        &format!(
            "{}---\n{}",
            APP.split("---\napiVersion: v1\nkind: Service")
                .next()
                .unwrap(),
            canary_secret_yaml("creds")
        ),
    );
    repo.commit("no service");
    let out = run(
        cluster,
        &syncer,
        &repo,
        &[
            "sync",
            "HEAD",
            "--app",
            "web",
            "--prune",
            "--timeout",
            "90s",
        ],
    );
    assert_code(&out, &[0]);
    let gone = cluster
        .kubectl()
        .args(["get", "service/web", "-n", n])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the Service is pruned");
    let out = run(
        cluster,
        &historian,
        &repo,
        &["release-history", "web", "-o", "json"],
    );
    assert_code(&out, &[0]);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(history.to_string().contains("deployed"), "{history}");
}

#[test]
fn a_role_missing_one_rule_gets_an_error_naming_the_verb_and_resource() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rb-missing");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("app.yaml", APP);
    repo.commit("app");

    // diff-git without patch on Deployments cannot dry-run them.
    let differ = user_with_role(
        cluster,
        n,
        "differ",
        without(documented_role("diff-git"), "patch", "deployments"),
    );
    let out = run(cluster, &differ, &repo, &["diff-git", "HEAD"]);
    assert_code(&out, &[2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"patch\"") && err.contains("deployments"),
        "{err}"
    );

    // sync without create on Leases cannot take the app's lock.
    let syncer = user_with_role(
        cluster,
        n,
        "syncer",
        without(documented_role("sync"), "create", "leases"),
    );
    let out = run(cluster, &syncer, &repo, &["sync", "HEAD", "--app", "web"]);
    assert_code(&out, &[2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("create") && err.contains("leases"), "{err}");
    assert_eq!(cluster.count(n, "configmaps"), 1, "nothing applied");

    // release-history without list on Secrets cannot read the records.
    let historian = user_with_role(
        cluster,
        n,
        "historian",
        without(documented_role("release-history"), "list", "secrets"),
    );
    let out = run(cluster, &historian, &repo, &["release-history"]);
    assert_code(&out, &[2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("list") && err.contains("secrets"), "{err}");
}
