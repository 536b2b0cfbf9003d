//! `sync --prune` deletes exactly the members its ApplySet dropped: never a look-alike
//! with the same name elsewhere, one without the membership label, or a member of
//! another app's ApplySet.

use std::process::{Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

fn cm(name: &str) -> String {
    format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

fn sync(cluster: &TestCluster, repo: &GitFixture, app: &str, ns: &str) -> Output {
    let out = cluster
        .kubectl()
        .args([
            "sync",
            "HEAD",
            "--app",
            app,
            "-n",
            ns,
            "--prune",
            "--wait=false",
        ])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    out
}

fn exists(cluster: &TestCluster, what: &str, ns: &str) -> bool {
    cluster
        .kubectl()
        .args(["get", what, "-n", ns])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn prune_never_deletes_look_alikes_or_another_apps_members() {
    let cluster = TestCluster::get();
    let home = cluster.namespace("pr-home");
    let other = cluster.namespace("pr-other");
    let (h, o) = (home.name.as_str(), other.name.as_str());

    // App "a" owns one and two in its namespace.
    let a = GitFixture::new();
    a.write("cms.yaml", &(cm("one") + &cm("two")));
    a.commit("one and two");
    sync(cluster, &a, "a", h);
    // App "b", in the same namespace, owns three; in the other namespace app "a2" owns a
    // ConfigMap named like a's "two" (another ApplySet's label on the same name).
    let b = GitFixture::new();
    b.write("cms.yaml", &cm("three"));
    b.commit("three");
    sync(cluster, &b, "b", h);
    let a2 = GitFixture::new();
    a2.write("cms.yaml", &cm("two"));
    a2.commit("two elsewhere");
    sync(cluster, &a2, "a", o);
    // Unlabelled look-alikes: the same name in the other namespace, and a Secret named
    // like a member in the app's own namespace.
    cluster.apply_yaml(o, &cm("one"));
    cluster.apply_yaml(
        h,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: one\nstringData:\n  k: v\n",
    );

    // Git drops both of a's ConfigMaps.
    a.write("cms.yaml", &cm("four"));
    a.commit("only four");
    let out = sync(cluster, &a, "a", h);
    let err = String::from_utf8_lossy(&out.stderr);

    assert!(!exists(cluster, "configmap/one", h), "{err}");
    assert!(!exists(cluster, "configmap/two", h), "{err}");
    assert!(exists(cluster, "configmap/four", h));
    // Everything else stays.
    assert!(
        exists(cluster, "configmap/three", h),
        "another app's member"
    );
    assert!(
        exists(cluster, "secret/one", h),
        "same name, other kind, no label"
    );
    assert!(
        exists(cluster, "configmap/one", o),
        "same name, other namespace, no label"
    );
    assert!(
        exists(cluster, "configmap/two", o),
        "same name, another ApplySet"
    );
}
