//! Per-object options as Argo CD and Helm users write them: `Prune=false` and Helm's
//! `resource-policy: keep` survive a prune, `PruneLast=true` goes after every other
//! deletion, `Replace=true` changes what server-side apply would refuse, an unknown
//! option warns, and `IgnoreExtraneous` keeps an edit out of drift. Checked in the
//! cluster and its audit log, not only from our output.

use std::process::{Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

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

/// A ConfigMap with `annotations` (YAML lines under `annotations:`, none if empty).
fn cm(name: &str, annotations: &str) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n    {annotations}\n")
    };
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{annotations}data:\n  k: v\n"
    )
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
fn kept_objects_survive_a_prune_and_prune_last_goes_after_every_other_deletion() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("so-prune");
    let n = ns.name.as_str();
    // A cluster-scoped member: without PruneLast, a namespaced one goes before it.
    let role = format!("{n}-reader");
    let cluster_role = format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\nrules: []\n"
    );
    let repo = GitFixture::new();
    let all = [
        cm("plain", ""),
        cm(
            "never",
            "argocd.argoproj.io/sync-options: Prune=false, ServerSideApply=true",
        ),
        cm("helm", "helm.sh/resource-policy: keep"),
        cm("last", "kubectl-gitops.io/sync-options: PruneLast=true"),
        cm("stays", ""),
        cluster_role.clone(),
    ]
    .concat();
    repo.write("app.yaml", &all);
    repo.commit("everything");
    sync(cluster, &repo, "opts", n);

    repo.write("app.yaml", &cm("stays", ""));
    repo.commit("only one left");
    let offset = cluster.audit_offset();
    let out = sync(cluster, &repo, "opts", n);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );

    assert!(!exists(cluster, "configmap/plain", n), "{stderr}");
    assert!(!exists(cluster, "configmap/last", n), "{stderr}");
    assert!(!exists(cluster, &format!("clusterrole/{role}"), n));
    assert!(exists(cluster, "configmap/never", n), "Prune=false");
    assert!(
        exists(cluster, "configmap/helm", n),
        "resource-policy: keep"
    );
    assert!(exists(cluster, "configmap/stays", n));
    // Said in the preview and in the summary.
    for line in [
        format!("kept ConfigMap {n}/never (Prune=false)"),
        format!("kept ConfigMap {n}/helm (helm.sh/resource-policy: keep)"),
    ] {
        assert!(stderr.contains(&format!("note: {line}")), "{stderr}");
        assert!(stdout.contains(&line), "{stdout}");
    }

    // The deletes as the API server completed them: the PruneLast one after the
    // ClusterRole, which a namespaced object otherwise goes before.
    let deleted: Vec<String> = cluster
        .our_audit_events_since(offset)
        .iter()
        .filter(|e| e["verb"] == "delete")
        .filter(|e| {
            ["configmaps", "clusterroles"]
                .contains(&e["objectRef"]["resource"].as_str().unwrap_or_default())
        })
        .filter(|e| e["objectRef"]["namespace"] == n || e["objectRef"]["name"] == role.as_str())
        .map(|e| {
            e["objectRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        deleted,
        ["plain", role.as_str(), "last"],
        "deletes in the order the server saw them"
    );

    // Kept objects stay members: once the revision has one again without its option,
    // dropping it prunes it.
    repo.write("app.yaml", &(cm("stays", "") + &cm("never", "")));
    repo.commit("never is back, without Prune=false");
    sync(cluster, &repo, "opts", n);
    repo.write("app.yaml", &cm("stays", ""));
    repo.commit("never goes");
    sync(cluster, &repo, "opts", n);
    assert!(!exists(cluster, "configmap/never", n));
    assert!(exists(cluster, "configmap/helm", n));
}

/// A Job, suspended so that nothing runs it, with `image` in its pod template.
fn job(image: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/sync-options: Replace=true\nspec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

#[test]
fn replace_changes_a_jobs_pod_template_that_server_side_apply_refuses() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("so-replace");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("job.yaml", &job("busybox:1.36"));
    repo.commit("job");
    sync(cluster, &repo, "jobs", n);
    let jsonpath = |path: &str| {
        cluster.kubectl_ok(&[
            "get",
            "job/migrate",
            "-n",
            n,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let first = jsonpath("{.metadata.uid}");

    // Server-side apply refuses the change: the pod template of a Job is immutable.
    let mut apply = cluster
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kubectl-gitops",
            "--dry-run=server",
            "-n",
            n,
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut apply.stdin.take().unwrap(),
        job("busybox:1.37").as_bytes(),
    )
    .unwrap();
    let refused = apply.wait_with_output().unwrap();
    assert!(!refused.status.success(), "{}", describe(&refused));

    repo.write("job.yaml", &job("busybox:1.37"));
    repo.commit("new image");
    let out = sync(cluster, &repo, "jobs", n);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("configured"), "{stdout}");
    assert_eq!(
        jsonpath("{.spec.template.spec.containers[0].image}"),
        "busybox:1.37"
    );
    assert_ne!(
        jsonpath("{.metadata.uid}"),
        first,
        "deleted and created again"
    );
    // Still a member of the app, so a later prune finds it.
    assert!(!jsonpath("{.metadata.labels.applyset\\.kubernetes\\.io/part-of}").is_empty());
}

#[test]
fn an_unknown_option_warns_once_and_the_sync_goes_on() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("so-unknown");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "app.yaml",
        &cm("odd", "argocd.argoproj.io/sync-options: Frobnicate=true"),
    );
    repo.commit("odd");
    let out = sync(cluster, &repo, "odd", n);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = format!(
        "warning: ConfigMap {n}/odd (app.yaml:2): unsupported sync option Frobnicate=true: ignored"
    );
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert!(exists(cluster, "configmap/odd", n));
}

#[test]
fn ignore_extraneous_keeps_a_hand_edit_out_of_drift() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("so-ignore");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "app.yaml",
        &(cm(
            "tolerated",
            "argocd.argoproj.io/compare-options: IgnoreExtraneous",
        ) + &cm("watched", "")),
    );
    repo.commit("two");
    sync(cluster, &repo, "ign", n);
    let drift = || {
        cluster
            .kubectl()
            .args(["drift", "ign", "-n", n])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let edit = |name: &str| {
        cluster.kubectl_ok(&[
            "patch",
            "configmap",
            name,
            "-n",
            n,
            "--type=merge",
            "-p",
            r#"{"data":{"k":"by hand"}}"#,
        ])
    };
    edit("tolerated");
    let out = drift();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // The same edit of an object without the option is drift.
    edit("watched");
    let out = drift();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("watched") && !stdout.contains("tolerated"),
        "{stdout}"
    );
}

/// A custom resource of a kind no CRD in the cluster or the revision defines.
fn widget(annotations: &str) -> String {
    format!(
        "---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  annotations:\n    {annotations}\nspec: {{}}\n"
    )
}

#[test]
fn skip_dry_run_on_missing_resource_shows_an_unserved_kind_as_added() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("so-skip");
    let n = ns.name.as_str();
    let diff = |annotations: &str| {
        let repo = GitFixture::new();
        repo.write("app.yaml", &widget(annotations));
        repo.commit("widget");
        cluster
            .kubectl()
            .args(["diff-git", "HEAD", "-n", n, "--color=never"])
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = diff("argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: Widget"));
    // Without the option the unserved kind is an error.
    let out = diff("example.com/note: none");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not served"));
}

#[test]
fn diff_git_leaves_an_ignore_extraneous_difference_out_of_its_verdict() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("so-diff");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    let tolerated = |value: &str| {
        format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tolerated\n  annotations:\n    argocd.argoproj.io/compare-options: IgnoreExtraneous\ndata:\n  k: {value}\n"
        )
    };
    repo.write("app.yaml", &tolerated("one"));
    repo.commit("one");
    sync(cluster, &repo, "dg", n);
    repo.write("app.yaml", &tolerated("two"));
    repo.commit("two");
    let out = cluster
        .kubectl()
        .args(["diff-git", "HEAD", "--app", "dg", "-n", n, "--color=never"])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "note: ignored (IgnoreExtraneous): ConfigMap {n}/tolerated changed"
        )),
        "{stderr}"
    );
    // The live object is still the synced one: diff-git changed nothing.
    assert_eq!(
        cluster.kubectl_ok(&["get", "cm/tolerated", "-n", n, "-o", "jsonpath={.data.k}"]),
        "one"
    );
}
