//! Helpers for the release-history tests: running the plugin, writing Helm's and our
//! release Secrets by hand, and stable snapshots.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::{Value, json};

pub const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n";
pub const CREDS: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2\n";

pub fn history_in(cluster: &TestCluster, dir: &Path, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .arg("release-history")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn history(cluster: &TestCluster, args: &[&str]) -> Output {
    history_in(cluster, &std::env::temp_dir(), args)
}

pub fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json_of(cluster: &TestCluster, args: &[&str]) -> Value {
    let out = history(cluster, args);
    let text = ok(&out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)))
}

pub fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn sync(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .arg("sync")
        .args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A Helm 3 release as `helm upgrade` stores it, chart templates and values included.
pub fn helm_release(ns: &str, version: u32, status: &str, value: &str) -> Value {
    let manifest = format!(
        "---\n# Source: web/templates/secret.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web-auth\ndata:\n  token: {}\n---\n# Source: web/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  value: \"{value}\"\n",
        if version == 1 { "b2xk" } else { "bmV3" }
    );
    json!({
        "name": "web",
        "info": {
            "first_deployed": "2024-05-01T10:00:00.123456789+02:00",
            "last_deployed": format!("2024-05-0{version}T10:00:00.5+02:00"),
            "deleted": "",
            "description": if version == 1 { "Install complete" } else { "Upgrade complete" },
            "status": status,
            "notes": "Visit http://web.example.com"
        },
        "chart": {
            "metadata": {"name": "web", "version": format!("1.{version}.0"), "appVersion": format!("2.{version}"), "apiVersion": "v2"},
            "lock": null,
            "templates": [{"name": "templates/configmap.yaml", "data": "YXBpVmVyc2lvbjogdjEK"}],
            "values": {"value": "x"},
            "schema": null,
            "files": []
        },
        "config": {"password": "values-are-never-shown"},
        "manifest": manifest,
        "hooks": [],
        "version": version,
        "namespace": ns,
        "labels": null
    })
}

/// Writes a release Secret as Helm does: `release` = base64(gzip(JSON)) (or base64(JSON)),
/// made here with the gzip and base64 commands; `kubectl create secret` adds the Secret's
/// own base64 on top.
pub fn write_helm_secret(cluster: &TestCluster, ns: &str, release: &Value, compress: bool) {
    let version = release["version"].as_u64().unwrap();
    let status = release["info"]["status"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("release.json"), release.to_string()).unwrap();
    let pipeline = if compress {
        "gzip -c release.json | base64 -w0 > release"
    } else {
        "base64 -w0 release.json > release"
    };
    run_pipeline(dir.path(), pipeline);
    let name = format!("sh.helm.release.v1.web.v{version}");
    create_secret(cluster, ns, &name, "helm.sh/release.v1", dir.path());
    cluster.kubectl_ok(&[
        "label",
        "secret",
        &name,
        "-n",
        ns,
        "owner=helm",
        "name=web",
        &format!("status={status}"),
        &format!("version={version}"),
    ]);
}

/// Runs a shell pipeline in `dir` (it writes the file `release`).
pub fn run_pipeline(dir: &Path, pipeline: &str) {
    let out = Command::new("sh")
        .args(["-c", pipeline])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}: {}", describe(&out));
}

pub fn create_secret(cluster: &TestCluster, ns: &str, name: &str, type_: &str, dir: &Path) {
    let file = format!("release={}", dir.join("release").display());
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        name,
        "-n",
        ns,
        &format!("--type={type_}"),
        &format!("--from-file={file}"),
    ]);
}

/// A record Secret of ours holding `pipeline`'s output, labelled as sync labels them.
pub fn write_our_secret(cluster: &TestCluster, ns: &str, app: &str, revision: u32, pipeline: &str) {
    let dir = tempfile::tempdir().unwrap();
    run_pipeline(dir.path(), pipeline);
    let name = format!("{app}.r{revision}");
    create_secret(
        cluster,
        ns,
        &name,
        "kubectl-gitops.io/release.v1",
        dir.path(),
    );
    cluster.kubectl_ok(&[
        "label",
        "secret",
        &name,
        "-n",
        ns,
        "app.kubernetes.io/managed-by=kubectl-gitops",
        &format!("kubectl-gitops.io/app={app}"),
        &format!("kubectl-gitops.io/revision={revision}"),
        "kubectl-gitops.io/status=deployed",
    ]);
}

pub fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// Human output by snapshot, made stable: the namespace, commit ids, times, durations and
/// the fixture's path replaced, and the space between columns (which follows their
/// widths) made one width.
macro_rules! snapshot {
    ($name:expr, $text:expr, $ns:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&regex_escape($ns), "[ns]");
        settings.add_filter(r"\b[0-9a-f]{40}\b", "[commit]");
        settings.add_filter(r"\b[0-9a-f]{7}\b", "[sha]");
        settings.add_filter(r"\S*kubectl-gitops-repo\S*", "[repo]");
        settings.add_filter(
            r"\d+[smhdy] ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Za-z+\-0-9]+\)",
            "[when]",
        );
        settings.add_filter(r"\b\d+\.\ds\b", "[duration]");
        settings.add_filter(r"(\S) {2,}", "$1   ");
        settings.bind(|| insta::assert_snapshot!($name, $text));
    }};
}
