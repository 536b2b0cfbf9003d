//! `kubectl drift --git` and `--against`: the branch against the deployed release.

use super::{SETTINGS, code, drift_cmd, json, object, repo_with, sync};
use kubectl_gitops_tests::TestCluster;

#[test]
fn git_says_whether_the_branch_is_ahead_of_the_deployed_release() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-git");
    let n = ns.name.as_str();
    let repo = repo_with(&[("app/settings.yaml", SETTINGS)]);
    sync(cluster, &repo, "gitapp", n);
    let out = drift_cmd(cluster, &["gitapp", "-n", n, "--git", "-o", "json"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    code(&out, 0);
    assert_eq!(json(&out)["git"]["behind"], false);

    repo.write("app/settings.yaml", &SETTINGS.replace("hello", "bonjour"));
    repo.write(
        "app/more.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: more\n",
    );
    let head = repo.commit("bonjour");
    // From anywhere: the release says where the repository is.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = drift_cmd(cluster, &["gitapp", "-n", n, "--git=main", "-o", "json"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(doc["status"], "behind");
    assert_eq!(doc["git"]["behind"], true);
    assert_eq!(doc["git"]["revision"], "main");
    assert_eq!(doc["git"]["commit"]["id"], head.as_str());
    assert_eq!(doc["git"]["commits"].as_array().unwrap().len(), 1);
    assert_eq!(doc["git"]["commits"][0]["subject"], "bonjour");
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
    assert_eq!(changes, [("more", "added"), ("settings", "changed")]);

    // --against compares the cluster with the revision itself.
    let out = drift_cmd(
        cluster,
        &["gitapp", "-n", n, "--against", "main", "-o", "json"],
    )
    .current_dir(repo.path())
    .output()
    .unwrap();
    code(&out, 1);
    let doc = json(&out);
    assert_eq!(doc["against"]["kind"], "revision");
    let settings = object(&doc, "ConfigMap", "settings");
    assert_eq!(settings["fields"][0]["desired"], "bonjour");
    assert_eq!(settings["fields"][0]["live"], "hello");
    assert_eq!(settings["fields"][0]["manager"], "kubectl-gitops");
    assert!(
        doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["key"]["name"] != "more"),
        "an undeployed object is not a deleted one: {doc:#}"
    );
    let out = drift_cmd(cluster, &["gitapp", "-n", n, "--against", "main", "--heal"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    code(&out, 2);
}
