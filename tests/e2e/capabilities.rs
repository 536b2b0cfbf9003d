//! A chart sees the cluster it goes to: `.Capabilities.KubeVersion` is the server's
//! version and `.Capabilities.APIVersions` what its discovery serves, custom resources
//! included, so a chart that adds a ServiceMonitor only where the Prometheus Operator's
//! API exists adds it once its CRD is installed. Offline, `--api-versions` and
//! `--kube-version` say what the cluster would.

use std::path::Path;
use std::process::{Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

use crate::hooks::copy_fixture;

const CRD: &str = "servicemonitors.monitoring.coreos.com";

fn run(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", describe(out));
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn capability(cluster: &TestCluster, ns: &str, key: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "configmap/mon-monitored-capabilities",
        "-n",
        ns,
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ])
}

/// `-v=6` request lines of `out` whose URL path is exactly `path`.
fn requests_to(out: &Output, path: &str) -> usize {
    stderr(out)
        .lines()
        .filter(|line| {
            let mut words = line.split(' ');
            let (Some("GET"), Some(url)) = (words.next(), words.next()) else {
                return false;
            };
            let without_query = url.split('?').next().unwrap_or(url);
            let url_path = match without_query.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
                None => without_query,
            };
            url_path == path
        })
        .count()
}

#[test]
fn a_chart_renders_with_the_capabilities_of_its_cluster() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("caps");
    let n = ns.name.as_str();
    // The only test that uses the Prometheus Operator's group: it starts without it.
    cluster.kubectl_ok(&["delete", "crd", CRD, "--ignore-not-found", "--wait"]);

    let repo = GitFixture::new();
    copy_fixture(&repo, "monitored-chart", "chart");
    let rev1 = repo.commit("a chart with a ServiceMonitor where the cluster serves one");
    let sync = [
        "sync",
        "HEAD",
        "chart",
        "--app",
        "mon",
        "-n",
        n,
        "--timeout",
        "90s",
    ];

    // No monitoring.coreos.com/v1 yet: no ServiceMonitor, and the server's own version.
    let out = run(cluster, &repo, &sync);
    code(&out, 0);
    let version: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["version", "-o", "json"])).unwrap();
    let server_version = version["serverVersion"]["gitVersion"].as_str().unwrap();
    assert_eq!(capability(cluster, n, "kubeVersion"), server_version);
    assert_eq!(capability(cluster, n, "monitoring"), "false");

    // The CRD arrives: the chart now renders a ServiceMonitor (not a PrometheusRule,
    // whose kind is still not served).
    let crd_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/servicemonitor-crd.yaml");
    cluster.kubectl_ok(&["apply", "--server-side", "-f", &crd_file.to_string_lossy()]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD}"),
        "--timeout=60s",
    ]);

    // drift --git renders HEAD for the cluster it checks.
    let out = run(
        cluster,
        &repo,
        &["drift", "mon", "-n", n, "--git", "-o", "json"],
    );
    code(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let added = doc["git"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["key"]["kind"] == "ServiceMonitor" && c["action"] == "added");
    assert!(added, "drift --git sees the ServiceMonitor to add: {doc:#}");

    // diff-git against the cluster, with one discovery and one /version, shared by the
    // chart's render and the comparison.
    let out = run(
        cluster,
        &repo,
        &[
            "diff-git",
            "HEAD",
            "chart",
            "--app",
            "mon",
            "-n",
            n,
            "--color=never",
            "-v=6",
        ],
    );
    code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("kind: ServiceMonitor"), "{}", describe(&out));
    assert!(!text.contains("PrometheusRule"), "{}", describe(&out));
    assert_eq!(requests_to(&out, "/version"), 1, "{}", describe(&out));
    assert_eq!(requests_to(&out, "/apis"), 1, "{}", describe(&out));
    assert_eq!(requests_to(&out, "/api"), 1, "{}", describe(&out));

    // --kube-version wins over the server's: the ServiceMonitor needs 1.30.
    let out = run(
        cluster,
        &repo,
        &[
            "diff-git",
            "HEAD",
            "chart",
            "--app",
            "mon",
            "-n",
            n,
            "--color=never",
            "--kube-version",
            "v1.29.4",
        ],
    );
    code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("v1.29.4"), "{}", describe(&out));
    assert!(!text.contains("kind: ServiceMonitor"), "{}", describe(&out));

    // sync too renders the chart from the discovery it plans with.
    let mut verbose = sync.to_vec();
    verbose.push("-v=6");
    let out = run(cluster, &repo, &verbose);
    code(&out, 0);
    for path in ["/version", "/apis", "/api"] {
        assert_eq!(requests_to(&out, path), 1, "{path}: {}", describe(&out));
    }
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "servicemonitor/mon-monitored",
            "-n",
            n,
            "-o",
            "jsonpath={.spec.endpoints[0].interval}",
        ]),
        "30s"
    );
    assert_eq!(capability(cluster, n, "monitoring"), "true");
    assert_eq!(capability(cluster, n, "serviceMonitorKind"), "true");
    assert_eq!(capability(cluster, n, "kubeVersion"), server_version);
    let out = run(
        cluster,
        &repo,
        &["drift", "mon", "-n", n, "--git", "-o", "json"],
    );
    code(&out, 0);

    // Offline, between two revisions: the flags say what the cluster would.
    repo.write(
        "chart/values.yaml",
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/monitored-chart/values.yaml"),
        )
        .unwrap()
        .replace("interval: 30s", "interval: 15s"),
    );
    let rev2 = repo.commit("scrape more often");
    let range = format!("{rev1}..{rev2}");
    let offline = |extra: &[&str]| {
        let mut args = vec![
            "diff-git",
            range.as_str(),
            "chart",
            "--app",
            "mon",
            "-n",
            n,
            "--color=never",
        ];
        args.extend(extra);
        run(cluster, &repo, &args)
    };
    let out = offline(&[]);
    code(&out, 0);
    let out = offline(&["--api-versions", "monitoring.coreos.com/v1"]);
    code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("interval: 15s"), "{}", describe(&out));
    assert!(text.contains("ServiceMonitor"), "{}", describe(&out));
    // Comma-separated, as helm's flag: the PrometheusRule's kind too (unchanged, so not
    // in the diff), and a version too old for the ServiceMonitor.
    let out = offline(&[
        "--api-versions",
        "monitoring.coreos.com/v1,monitoring.coreos.com/v1/PrometheusRule",
        "--kube-version",
        "1.29",
    ]);
    code(&out, 0);

    let out = offline(&["--kube-version", "latest"]);
    code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("--kube-version"), "{err}");
    assert!(
        err.contains("`latest` is not a Kubernetes version"),
        "{err}"
    );

    cluster.kubectl_ok(&["delete", "crd", CRD, "--ignore-not-found"]);
}
