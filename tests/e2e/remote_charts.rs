//! Charts that are not in git: an app whose chart is only in a real OCI registry (or a
//! real chart repository), with its values from git, synced, diffed, drift-checked and
//! rolled back, its release recording where the chart came from; and a kustomization's
//! `helmCharts:` rendered with our helm from the same cache.

use std::process::Output;

use kubectl_gitops_tests::{GitFixture, TestCluster};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::chart_sources::{Sources, code, sources, stderr};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn get(cluster: &TestCluster, n: &str, object: &str, path: &str) -> String {
    cluster.kubectl_ok(&["get", "-n", n, object, "-o", &format!("jsonpath={path}")])
}

/// `sha256:<hex>` of the archive `helm package` made, which `helm push` uploaded.
fn digest_of_pushed(sources: &Sources, name: &str, version: &str) -> String {
    let archive = sources
        .dir
        .path()
        .join("packages")
        .join(format!("{name}-{version}.tgz"));
    let bytes = std::fs::read(&archive).unwrap();
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[test]
fn a_chart_only_in_the_registry_syncs_with_values_from_git_diffs_drifts_and_rolls_back() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("remote-chart");
    let n = ns.name.as_str();
    let sources = sources(cluster);
    let registry = format!("oci://{}/charts", sources.registry.host);
    let repo = GitFixture::new();
    // Only the values and the app list are in git; `~1.2.0` picks 1.2.3 of 1.2.0, 1.2.3
    // and 1.3.0.
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n- name: db\n  chart:\n    repository: {registry}\n    name: database\n    \
             version: \"~1.2.0\"\n  values: [envs/prod/db.yaml]\n"
        ),
    );
    repo.write("envs/prod/db.yaml", "port: 6000\n");
    repo.commit("db from the registry");

    let out = sources.kubectl(cluster, &repo, &["sync", "--app", "db", "-n", n]);
    code(&out, 0);
    assert_eq!(
        get(
            cluster,
            n,
            "service/db-database",
            "{.spec.ports[0].port}/{.metadata.labels.version}"
        ),
        "6000/1.2.3"
    );

    // The record keeps where the chart came from, and the digest of what was pushed.
    let out = sources.kubectl(
        cluster,
        &repo,
        &["release-history", "db", "1", "-n", n, "-o", "json"],
    );
    code(&out, 0);
    let digest = digest_of_pushed(&sources, "database", "1.2.3");
    assert_eq!(
        json(&out)["chart"],
        json!({"name": "database", "version": "1.2.3", "repository": registry, "digest": digest})
    );
    let out = sources.kubectl(cluster, &repo, &["release-history", "db", "1", "-n", n]);
    code(&out, 0);
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(page.contains("database-1.2.3"), "{page}");
    assert!(
        page.contains(&format!("Chart source: {registry} ({digest})")),
        "{page}"
    );

    // New values in git: diff-git shows them against the cluster, sync deploys them.
    repo.write("envs/prod/db.yaml", "port: 7000\n");
    repo.commit("db on 7000");
    let out = sources.kubectl(cluster, &repo, &["diff-git", "--app", "db", "-n", n]);
    code(&out, 1);
    let diff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        diff.contains("+    port: 7000") || diff.contains("port: 7000"),
        "{diff}"
    );
    let out = sources.kubectl(cluster, &repo, &["sync", "--app", "db", "-n", n]);
    code(&out, 0);
    assert_eq!(
        get(cluster, n, "service/db-database", "{.spec.ports[0].port}"),
        "7000"
    );

    // Drift renders the very chart the release recorded, from the cache: no drift, and
    // not one request to the registry.
    let before = sources.requests();
    let out = sources.kubectl(cluster, &repo, &["drift", "db", "-n", n]);
    code(&out, 0);
    assert_eq!(sources.requests(), before, "drift fetched the chart again");

    // A newer version on the command line: the diff shows the chart's version change.
    let out = sources.kubectl(
        cluster,
        &repo,
        &[
            "diff-git",
            "--app",
            "db",
            "--chart",
            &format!("{registry}/database"),
            "--chart-version",
            "1.3.0",
            "--values",
            "envs/prod/db.yaml",
            "-n",
            n,
        ],
    );
    code(&out, 1);
    let diff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(diff.contains("1.3.0"), "{diff}");

    // Rolled back to the first release: the registry is not needed for that.
    let out = sources.kubectl(
        cluster,
        &repo,
        &["sync", "--rollback", "1", "--app", "db", "-n", n],
    );
    code(&out, 0);
    assert_eq!(
        get(cluster, n, "service/db-database", "{.spec.ports[0].port}"),
        "6000"
    );
    let out = sources.kubectl(
        cluster,
        &repo,
        &["release-history", "db", "3", "-n", n, "-o", "json"],
    );
    code(&out, 0);
    let doc = json(&out);
    assert_eq!(doc["operation"], "rollback");
    assert_eq!(doc["chart"]["repository"], json!(registry));

    // A chart the registry does not have: exit 2, the chart and the registry named,
    // nothing applied.
    let out = sources.kubectl(
        cluster,
        &repo,
        &[
            "sync",
            "--app",
            "nope",
            "--chart",
            &format!("{registry}/nope"),
            "--chart-version",
            "1.0.0",
            "-n",
            n,
        ],
    );
    code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("chart `nope` 1.0.0") && err.contains(&sources.registry.host),
        "{err}"
    );
    assert_eq!(
        cluster.release_statuses(n, "nope"),
        Vec::<(u32, String)>::new()
    );
}

#[test]
fn a_kustomization_with_helm_charts_renders_from_the_chart_repository_and_the_cache() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("kustomize-helm");
    let n = ns.name.as_str();
    let sources = sources(cluster);
    let repo = GitFixture::new();
    repo.write(
        "apps/edge/kustomization.yaml",
        &format!(
            "helmCharts:\n- name: cache\n  repo: {}\n  version: 1.1.0\n  releaseName: edge\n  \
             valuesInline: {{size: 32}}\n",
            sources.repo.url
        ),
    );
    repo.commit("a kustomization inflating a chart");
    let before = sources.requests();
    let out = sources.kubectl(
        cluster,
        &repo,
        &["sync", "HEAD", "apps/edge", "--app", "edge", "-n", n],
    );
    code(&out, 0);
    assert_eq!(
        get(
            cluster,
            n,
            "configmap/edge-cache",
            "{.data.size}/{.data.version}"
        ),
        "32/1.1.0"
    );
    let (repo_requests, _) = sources.requests();
    let fetched: Vec<&String> = repo_requests.iter().skip(before.0.len()).collect();
    assert!(
        fetched
            .iter()
            .any(|l| l.contains("/charts/cache-1.1.0.tgz 200")),
        "{fetched:#?}"
    );

    // The second render: the chart from the cache, not one request.
    let before = sources.requests();
    let out = sources.kubectl(
        cluster,
        &repo,
        &["diff-git", "HEAD", "apps/edge", "--app", "edge", "-n", n],
    );
    code(&out, 0);
    assert_eq!(
        sources.requests(),
        before,
        "the second render made requests"
    );

    // A version the repository does not have: exit 2, the kustomization and the chart
    // named.
    repo.write(
        "apps/bad/kustomization.yaml",
        &format!(
            "helmCharts:\n- name: cache\n  repo: {}\n  version: 9.9.9\n  releaseName: bad\n",
            sources.repo.url
        ),
    );
    repo.commit("a version that does not exist");
    let out = sources.kubectl(
        cluster,
        &repo,
        &["diff-git", "HEAD", "apps/bad", "--app", "bad", "-n", n],
    );
    code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("the helmCharts: chart of apps/bad/kustomization.yaml `cache` 9.9.9")
            && err.contains(&sources.repo.url),
        "{err}"
    );
}
