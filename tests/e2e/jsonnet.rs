//! A Jsonnet directory, as Argo CD's directory source renders it: `.jsonnet` programs
//! importing a `.libsonnet` library, given a top-level argument by the app list, beside a
//! plain YAML file; synced, checked in the cluster, and clean for diff-git afterwards.

use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

fn run(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    let mut cmd: Command = cluster.kubectl();
    cmd.args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn data(cluster: &TestCluster, ns: &str, name: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "configmap",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.data.env}",
    ])
}

#[test]
fn a_jsonnet_directory_syncs_with_its_library_and_tla() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("jsonnet");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "lib/cm.libsonnet",
        "{ cm(name, env):: { apiVersion: 'v1', kind: 'ConfigMap', \
         metadata: { name: name }, data: { env: env } } }\n",
    );
    repo.write(
        "apps/web/main.jsonnet",
        "local k = import 'cm.libsonnet';\n\
         function(env) [k.cm('web-' + env, env), k.cm('api-' + env, env)]\n",
    );
    repo.write(
        "apps/web/list/more.jsonnet",
        "local k = import 'cm.libsonnet';\n\
         function(env) { apiVersion: 'v1', kind: 'List', items: [k.cm('more', env)] }\n",
    );
    repo.write(
        "apps/web/plain.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  env: yaml\n",
    );
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n- name: web\n  path: apps/web\n  namespace: {n}\n  \
             jsonnet:\n    tlas: {{env: prod}}\n    libs: [lib]\n"
        ),
    );
    repo.commit("jsonnet app");

    let out = run(cluster, &repo, &["sync", "--app", "web", "--wait=false"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(data(cluster, n, "web-prod"), "prod");
    assert_eq!(data(cluster, n, "api-prod"), "prod");
    assert_eq!(data(cluster, n, "more"), "prod");
    assert_eq!(data(cluster, n, "plain"), "yaml");
    let history = cluster.kubectl_ok(&["release-history", "web", "-n", n, "-o", "json"]);
    assert!(history.contains("\"jsonnet\""), "{history}");

    let out = run(cluster, &repo, &["diff-git", "--app", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // A flag wins over the app list: diff-git sees the renamed objects.
    let out = run(
        cluster,
        &repo,
        &["diff-git", "--app", "web", "--tla", "env=dev"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    // A broken program stops the sync with its file, line and column; nothing changes.
    repo.write(
        "apps/web/main.jsonnet",
        "local k = import 'cm.libsonnet';\nfunction(env) [k.cm('web-' + env, env),,]\n",
    );
    repo.commit("broken");
    let out = run(cluster, &repo, &["sync", "--app", "web", "--wait=false"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps/web/main.jsonnet:2:"), "{err}");
    assert_eq!(data(cluster, n, "web-prod"), "prod");
}
