//! A resync of the very files the deployed release was rendered from: proven unchanged
//! from the release and the member LISTs, without rendering them, and never when anything
//! changed in the cluster.

use std::process::Output;

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

use crate::drift::WEB;
use crate::requests::{lists_of, requests_about};

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: \"{value}\"\n")
}

fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// The head of release `revision` of app `same`, as its record Secret carries it.
fn head(cluster: &TestCluster, namespace: &str, revision: u32) -> Value {
    let text = cluster.kubectl_ok(&[
        "get",
        &format!("secret/same.r{revision}"),
        "-n",
        namespace,
        "-o",
        "jsonpath={.metadata.annotations.kubectl-gitops\\.io/release-head}",
    ]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("no head ({e}): {text}"))
}

#[test]
fn a_resync_of_the_same_files_is_proven_from_the_release_and_misses_no_change() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("same-files");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("app/a.yaml", &config_map("a", "1"))
        .write("app/b.yaml", &config_map("b", "1"))
        .write("app/web.yaml", WEB)
        .write("app/README.md", "what the app is\n");
    repo.commit("two config maps and a Deployment");
    let sync = |more: &[&str]| {
        let args = [&["HEAD", "app", "--app", "same", "-n", n][..], more].concat();
        cluster.plugin_in(&repo, "sync", &args)
    };
    ok(sync(&[]));
    let digest = head(cluster, n, 1)["source_digest"].clone();
    assert!(
        digest.as_str().is_some_and(|d| d.len() == 64),
        "the release names the files it came from: {digest}"
    );
    let id = cluster.kubectl_ok(&[
        "get",
        "secret/same.applyset",
        "-n",
        n,
        "-o",
        "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/id}",
    ]);
    // Proven from the release: each kind read once, by its member LIST, health included
    // (a planned no-op that waits reads the objects again for their health); nothing
    // applied, no release recorded. The Deployment's controller has written its status
    // since the release: what the release applied to it is read from its manifest.
    let proven = |what: &str| {
        let offset = cluster.audit_offset();
        let out = ok(sync(&["-o", "json"]));
        let doc = json(&out);
        assert_eq!(doc["recorded"], false, "{what}: {doc}");
        assert_eq!(doc["counts"]["unchanged"], 3, "{what}: {doc}");
        for object in doc["objects"].as_array().unwrap() {
            assert_eq!(
                (&object["action"], &object["health"]),
                (&Value::from("unchanged"), &Value::from("healthy")),
                "{what}: {doc}"
            );
        }
        let requests = requests_about(cluster, offset, &[n], Some(&id));
        for kind in ["configmaps", "deployments"] {
            assert_eq!(
                lists_of(&requests, kind),
                [(format!("{kind} *"), 1)],
                "{what}: {requests:#?}"
            );
        }
        assert!(
            !requests
                .iter()
                .any(|r| r.verb.starts_with("patch") && r.resource == "configmaps"),
            "{what}: {requests:#?}"
        );
        doc
    };
    proven("the same commit");
    // Shown as any no-op sync is.
    let out = ok(sync(&["--color=never"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("0 changed, 0 added, 0 removed, 3 unchanged\n")
            && text.contains(" ConfigMap ")
            && text.contains("no new release recorded"),
        "{}",
        describe(&out)
    );
    // A commit that changes no manifest: proven too, and the release says it covers it.
    repo.write("app/README.md", "what the app is, and why\n");
    let commit = repo.commit("docs only");
    let doc = proven("a commit of another file");
    assert_eq!(doc["commit"]["id"], commit.as_str(), "{doc}");

    // Edited by another manager: the conflict refuses the sync, and forcing it puts the
    // field back, as a release of its own.
    cluster.kubectl_ok(&[
        "patch",
        "configmap/a",
        "-n",
        n,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"k":"edited"}}"#,
    ]);
    let refused = sync(&["--wait=false"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let offset = cluster.audit_offset();
    let doc = json(&ok(sync(&[
        "--wait=false",
        "--force-conflicts",
        "-o",
        "json",
    ])));
    assert_eq!(
        (&doc["recorded"], &doc["counts"]["configured"]),
        (&Value::from(true), &Value::from(1)),
        "{doc}"
    );
    // The records read for the proof serve the plan: listed twice (the deployed release,
    // every record's metadata), as by any sync, not again.
    let requests = requests_about(cluster, offset, &[n], Some(&id));
    assert_eq!(
        lists_of(&requests, "secrets"),
        [(format!("secrets {n}"), 2)],
        "{requests:#?}"
    );
    let value =
        |name: &str| cluster.kubectl_ok(&["get", name, "-n", n, "-o", "jsonpath={.data.k}"]);
    assert_eq!(value("configmap/a"), "1");

    // Deleted: created again.
    cluster.kubectl_ok(&["delete", "configmap/b", "-n", n]);
    let doc = json(&ok(sync(&["--wait=false", "-o", "json"])));
    assert_eq!(doc["counts"]["created"], 1, "{doc}");
    assert_eq!(value("configmap/b"), "1");

    // A member the files do not hold (labelled as the app's by hand): found, and pruned.
    let stray = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stray\n  labels:\n    applyset.kubernetes.io/part-of: {id}\ndata:\n  k: x\n"
    );
    cluster.apply_yaml(n, &stray);
    let out = ok(sync(&["--wait=false"]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stay (--prune deletes them): ConfigMap"),
        "{}",
        describe(&out)
    );
    let doc = json(&ok(sync(&["--wait=false", "--prune", "-o", "json"])));
    assert_eq!(doc["counts"]["pruned"], 1, "{doc}");
    let revision = doc["release"].as_u64().unwrap() as u32;
    proven("after the prune");

    // Other files, the same objects: no release, and the release names the new files.
    repo.write("app/a.yaml", &config_map("a", "1").replace("\"1\"", "'1'"));
    repo.commit("single quotes");
    let doc = json(&ok(sync(&["-o", "json"])));
    assert_eq!(
        (&doc["release"], &doc["recorded"]),
        (&Value::from(revision), &Value::from(false)),
        "{doc}"
    );
    let now = head(cluster, n, revision)["source_digest"].clone();
    assert!(now.is_string() && now != digest, "{now} after {digest}");
    proven("the reformatted files again");
}
