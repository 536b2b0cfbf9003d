//! A revision that renders no objects (a directory of files we do not render) never
//! prunes an app that has members, unless `--allow-empty` says so; a sync without
//! `--prune` is refused too, since it would record a release of nothing.

use std::process::Output;

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

use crate::faults::sync_cmd;

fn sync(cluster: &TestCluster, repo: &GitFixture, ns: &str, extra: &[&str]) -> Output {
    let args = ["HEAD", "apps/web", "--app", "web", "-n", ns, "--wait=false"];
    sync_cmd(cluster, repo, &[&args[..], extra].concat())
        .output()
        .unwrap()
}

fn cm(name: &str) -> String {
    format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

#[test]
fn an_empty_render_prunes_nothing_unless_allowed() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("er");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "apps/web/cms.yaml",
        &(cm("one") + &cm("two") + &cm("three")),
    );
    repo.commit("three ConfigMaps");
    let out = sync(cluster, &repo, n, &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // The manifests become CUE, which is not rendered.
    repo.remove("apps/web/cms.yaml");
    for file in ["main.cue", "lib.cue", "values.cue"] {
        repo.write(&format!("apps/web/{file}"), "{}\n");
    }
    repo.commit("cue");
    let records = cluster.release_statuses(n, "web");
    for flags in [&["--prune"][..], &[][..]] {
        let out = sync(cluster, &repo, n, flags);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "path apps/web renders no objects: 3 files, none of them a manifest: *.cue"
            ),
            "{err}"
        );
        assert!(
            err.contains("--allow-empty") && err.contains("app web"),
            "{err}"
        );
        for name in ["one", "two", "three"] {
            cluster.kubectl_ok(&["get", "configmap", name, "-n", n]);
        }
        assert_eq!(
            cluster.release_statuses(n, "web"),
            records,
            "a refusal records nothing"
        );
    }

    let out = sync(
        cluster,
        &repo,
        n,
        &["--prune", "--allow-empty", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["counts"]["pruned"], 3, "{doc}");
    for name in ["one", "two", "three"] {
        let found = cluster
            .kubectl()
            .args(["get", "configmap", name, "-n", n])
            .output()
            .unwrap();
        assert!(!found.status.success(), "{name} was not pruned");
    }
}
