//! In a pod there is no kubeconfig: the plugins find the API server from
//! `KUBERNETES_SERVICE_HOST`/`_PORT` and the ServiceAccount's files the kubelet mounts
//! (token, CA bundle, namespace). Run here in a mount namespace of its own with those
//! files where a pod has them, no kubeconfig anywhere, and checked from the cluster: who
//! the audit log says acted, and where the objects went.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe, plugin_dir};

use crate::rbac::{documented_role, user_with_role};

/// Where the kubelet mounts a pod's ServiceAccount files.
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Runs `program args` with `files` (a directory) as the pod's ServiceAccount files,
/// under a fresh /run of its own; None when this machine allows no mount namespace.
fn as_a_pod(
    files: &Path,
    env: &[(&str, String)],
    cwd: &Path,
    program: &Path,
    args: &[&str],
) -> Option<Output> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs tmpfs /run && mkdir -p {MOUNT} && cp \"$0\"/* {MOUNT}/ && exec \"$@\""
        ))
        .arg(files)
        .arg(program)
        .args(args)
        .env_clear()
        .current_dir(cwd)
        .stdin(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    if String::from_utf8_lossy(&out.stderr).contains("unshare failed") {
        eprintln!("note: no mount namespace allowed here: in-cluster discovery was not run");
        return None;
    }
    Some(out)
}

#[test]
fn a_sync_in_a_pod_finds_the_cluster_its_account_and_namespace_from_the_mounted_files() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("ic-config");
    let n = ns.name.as_str();
    let account = user_with_role(cluster, n, "pod", documented_role("sync"));

    // What the kubelet mounts: a token of the account, the cluster's CA, the namespace.
    let files = tempfile::tempdir().unwrap();
    let token = cluster.kubectl_ok(&["create", "token", "pod", "-n", n, "--duration=1h"]);
    kubectl_gitops_tests::record::remember_credential(
        &cluster.state,
        &format!("pod-token-{n}"),
        token.trim(),
    );
    std::fs::write(files.path().join("token"), token.trim()).unwrap();
    let admin: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&cluster.admin_kubeconfig).unwrap())
            .unwrap();
    let server = admin["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = admin["clusters"][0]["cluster"]["certificate-authority"]
        .as_str()
        .unwrap();
    std::fs::copy(ca, files.path().join("ca.crt")).unwrap();
    std::fs::write(files.path().join("namespace"), n).unwrap();
    let (host, port) = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap();

    let repo = GitFixture::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: found}\ndata: {where: pod}\n",
    );
    repo.commit("one ConfigMap");

    // No kubeconfig: an empty home, no KUBECONFIG.
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("PATH", std::env::var("PATH").unwrap()),
        ("HOME", home.path().display().to_string()),
        (
            "XDG_CACHE_HOME",
            home.path().join("cache").display().to_string(),
        ),
        ("KUBERNETES_SERVICE_HOST", host),
        ("KUBERNETES_SERVICE_PORT", port),
    ];
    let offset = cluster.audit_offset();
    let Some(out) = as_a_pod(
        files.path(),
        &env,
        repo.path(),
        &plugin_dir().join("kubectl-sync"),
        &["HEAD", "--app", "found", "--timeout", "90s"],
    ) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // The namespace came from the mounted file (no -n), the identity from the token.
    let data = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "found",
        "-n",
        n,
        "-o",
        "jsonpath={.data.where}",
    ]);
    assert_eq!(data, "pod");
    let writers: std::collections::BTreeSet<String> = cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| e["objectRef"]["namespace"] == n && e["verb"] == "patch")
        .map(|e| e["user"]["username"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        writers.into_iter().collect::<Vec<_>>(),
        [account.username()]
    );
    // Its release names the account, as the API server knows it.
    let history = cluster.kubectl_ok(&["release-history", "found", "-n", n, "-o", "json"]);
    assert!(
        history.contains(&format!("\"who\": \"{}\"", account.username())),
        "{history}"
    );

    // Without the files, the same command says where it looked.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("namespace"), n).unwrap();
    let out = as_a_pod(
        empty.path(),
        &env,
        repo.path(),
        &plugin_dir().join("kubectl-sync"),
        &["HEAD", "--app", "found"],
    )
    .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c > 1),
        "{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot load the in-cluster configuration"),
        "{}",
        describe(&out)
    );
}
