//! Chart dependencies fetched from a real chart repository (HTTPS, basic auth, a test CA)
//! and a real OCI registry (the CNCF distribution registry, htpasswd auth), with charts
//! packaged, indexed, pushed and locked by the real helm: rendered and synced with every
//! subchart's objects, cached (a second render makes no request), and every bad source
//! one clear error, exit 2, nothing applied, no credential shown.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::charts::{ChartRepoServer, Registry, TestCa};
use kubectl_gitops_tests::record::remember_credential;
use kubectl_gitops_tests::{GitFixture, TestCluster, describe, workspace_root};

pub(crate) const REPO_USER: &str = "charts-reader";
pub(crate) const REPO_PASSWORD: &str = "kgo-repo-canary-51c7e0a9";
pub(crate) const REGISTRY_USER: &str = "oci-reader";
pub(crate) const REGISTRY_PASSWORD: &str = "kgo-registry-canary-8b2f4d13";

fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        workspace_root()
            .join("tests/fixtures/chart-deps")
            .join(path),
    )
    .unwrap()
}

/// The servers, a Helm home that knows them (as a user's would), and a cache of our own.
pub(crate) struct Sources {
    pub(crate) repo: ChartRepoServer,
    pub(crate) registry: Registry,
    pub(crate) ca: TestCa,
    pub(crate) dir: tempfile::TempDir,
}

impl Sources {
    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("helm")
    }

    pub(crate) fn repositories_file(&self) -> PathBuf {
        self.home().join("repositories.yaml")
    }

    pub(crate) fn registry_file(&self) -> PathBuf {
        self.home().join("registry.json")
    }

    pub(crate) fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The real helm in a home of its own that uses these servers' files.
    pub(crate) fn helm(&self, cluster: &TestCluster, args: &[&str]) -> String {
        let home = self.home();
        let out = Command::new(cluster.helm_path())
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_REPOSITORY_CONFIG", self.repositories_file())
            .env("HELM_REGISTRY_CONFIG", self.registry_file())
            .env("HELM_REPOSITORY_CACHE", home.join("repository"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {}: {}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sub` of the fixture packaged at `version` into `dest`; returns the archive.
    pub(crate) fn package(
        &self,
        cluster: &TestCluster,
        sub: &str,
        version: &str,
        dest: &Path,
    ) -> PathBuf {
        let src = workspace_root()
            .join("tests/fixtures/chart-deps/subcharts")
            .join(sub);
        let dest_arg = dest.to_string_lossy().into_owned();
        self.helm(
            cluster,
            &[
                "package",
                &src.to_string_lossy(),
                "--version",
                version,
                "--destination",
                &dest_arg,
            ],
        );
        dest.join(format!("{sub}-{version}.tgz"))
    }

    pub(crate) fn push(&self, cluster: &TestCluster, archive: &Path) {
        let target = format!("oci://{}/charts", self.registry.host);
        self.helm(
            cluster,
            &["push", &archive.to_string_lossy(), &target, "--plain-http"],
        );
    }

    pub(crate) fn reindex(&self, cluster: &TestCluster) {
        let dir = self.repo.charts_dir();
        self.helm(
            cluster,
            &[
                "repo",
                "index",
                &dir.to_string_lossy(),
                "--url",
                &self.repo.url,
            ],
        );
    }

    /// The plugin through kubectl, with the user's Helm files and our cache.
    pub(crate) fn kubectl(
        &self,
        cluster: &TestCluster,
        repo: &GitFixture,
        args: &[&str],
    ) -> Output {
        let out = cluster
            .kubectl()
            .args(args)
            .env("HELM_REPOSITORY_CONFIG", self.repositories_file())
            .env("HELM_REGISTRY_CONFIG", self.registry_file())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("KUBECTL_GITOPS_PLAIN_HTTP", "1")
            .env("XDG_CACHE_HOME", self.cache())
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        no_credentials(&out);
        out
    }

    pub(crate) fn requests(&self) -> (Vec<String>, Vec<String>) {
        (self.repo.requests(), self.registry.requests())
    }
}

pub(crate) fn no_credentials(out: &Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [REPO_PASSWORD, REGISTRY_PASSWORD] {
        assert!(!text.contains(secret), "a credential was printed: {text}");
    }
}

/// Both servers, the subcharts published at several versions, the Helm home logged in.
pub(crate) fn sources(cluster: &TestCluster) -> Sources {
    remember_credential(&cluster.state, "chart-repository-password", REPO_PASSWORD);
    remember_credential(&cluster.state, "registry-password", REGISTRY_PASSWORD);
    let ca = TestCa::new();
    let repo = ChartRepoServer::start(&ca, REPO_USER, REPO_PASSWORD);
    let registry = Registry::start(&cluster.bin, Some((REGISTRY_USER, REGISTRY_PASSWORD)));
    let sources = Sources {
        repo,
        registry,
        ca,
        dir: tempfile::tempdir().unwrap(),
    };
    let charts = sources.repo.charts_dir();
    for version in ["1.0.0", "1.1.0", "2.0.0"] {
        sources.package(cluster, "cache", version, &charts);
    }
    for version in ["0.1.0", "0.2.0", "1.0.0"] {
        sources.package(cluster, "metrics", version, &charts);
    }
    sources.reindex(cluster);
    let ca = sources.ca.ca.to_string_lossy().into_owned();
    sources.helm(
        cluster,
        &[
            "repo",
            "add",
            "test-charts",
            &sources.repo.url,
            "--username",
            REPO_USER,
            "--password",
            REPO_PASSWORD,
            "--ca-file",
            &ca,
        ],
    );
    let host = sources.registry.host.clone();
    sources.helm(
        cluster,
        &[
            "registry",
            "login",
            &host,
            "--username",
            REGISTRY_USER,
            "--password",
            REGISTRY_PASSWORD,
            "--plain-http",
        ],
    );
    let packages = sources.dir.path().join("packages");
    for version in ["1.2.0", "1.2.3", "1.3.0"] {
        let archive = sources.package(cluster, "database", version, &packages);
        sources.push(cluster, &archive);
    }
    sources
}

/// The fixture's umbrella chart for these servers, and `common` beside it.
fn write_platform(repo: &GitFixture, sources: &Sources, dir: &str) {
    let chart = fixture("platform/Chart.yaml")
        .replace("__REPO_URL__", &sources.repo.url)
        .replace("__REGISTRY__", &sources.registry.host);
    repo.write(&format!("{dir}/Chart.yaml"), &chart);
    repo.write(
        &format!("{dir}/values.yaml"),
        &fixture("platform/values.yaml"),
    );
    repo.write(
        &format!("{dir}/templates/settings.yaml"),
        &fixture("platform/templates/settings.yaml"),
    );
    repo.write("common/Chart.yaml", &fixture("common/Chart.yaml"));
    repo.write(
        "common/templates/labels.yaml",
        &fixture("common/templates/labels.yaml"),
    );
}

/// `helm dependency update` in the chart, as its author would run it: Chart.lock
/// written, the downloaded archives not committed.
fn lock(cluster: &TestCluster, sources: &Sources, repo: &GitFixture, dir: &str) -> String {
    let chart = repo.path().join(dir);
    sources.helm(
        cluster,
        &[
            "dependency",
            "update",
            &chart.to_string_lossy(),
            "--plain-http",
        ],
    );
    std::fs::remove_dir_all(chart.join("charts")).unwrap();
    std::fs::read_to_string(chart.join("Chart.lock")).unwrap()
}

pub(crate) fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", describe(out));
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn dependencies_from_a_chart_repository_a_registry_and_the_same_revision_sync_and_are_cached() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("chart-deps");
    let n = ns.name.as_str();
    let sources = sources(cluster);
    let repo = GitFixture::new();
    write_platform(&repo, &sources, "platform");
    repo.commit("platform");
    let lock = lock(cluster, &sources, &repo, "platform");
    for (name, version) in [
        ("database", "1.2.3"),
        ("cache", "1.1.0"),
        ("metrics", "0.2.0"),
    ] {
        assert!(
            lock.contains(&format!("- name: {name}\n  repository: "))
                && lock.contains(&format!("version: {version}")),
            "{lock}"
        );
    }
    repo.commit("lock the dependencies");

    let out = sources.kubectl(
        cluster,
        &repo,
        &["sync", "HEAD", "platform", "--app", "platform", "-n", n],
    );
    code(&out, 0);
    let get = |name: &str, path: &str| {
        cluster.kubectl_ok(&["get", "-n", n, name, "-o", &format!("jsonpath={path}")])
    };
    assert_eq!(
        get("configmap/platform-settings", "{.data.greeting}"),
        "hello"
    );
    assert_eq!(get("configmap/platform-common", "{.data.team}"), "platform");
    assert_eq!(
        get("configmap/platform-cache", "{.data.version}/{.data.size}"),
        "1.1.0/64"
    );
    // metrics, under its alias, with the umbrella's values for the alias.
    assert_eq!(
        get(
            "configmap/platform-monitoring",
            "{.data.version}/{.data.interval}"
        ),
        "0.2.0/30s"
    );
    assert_eq!(
        get("service/platform-database", "{.metadata.labels.version}"),
        "1.2.3"
    );

    let (repo_requests, registry_requests) = sources.requests();
    assert_eq!(
        repo_requests
            .iter()
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        [
            "GET /charts/index.yaml 200",
            "GET /charts/cache-1.1.0.tgz 200",
            "GET /charts/metrics-0.2.0.tgz 200",
        ],
        "{repo_requests:#?}"
    );
    assert!(
        registry_requests
            .iter()
            .any(|l| l.contains("/v2/charts/database/manifests/1.2.3"))
            && registry_requests
                .iter()
                .any(|l| l.contains("/v2/charts/database/blobs/sha256:")),
        "{registry_requests:#?}"
    );

    // The second render: everything from the cache, not one request.
    let before = sources.requests();
    let out = sources.kubectl(cluster, &repo, &["diff-git", "HEAD", "platform", "-n", n]);
    code(&out, 0);
    assert_eq!(
        sources.requests(),
        before,
        "the second render made requests"
    );

    // Without the lock, the ranges pick the same versions (the tag list for the
    // registry); the fresh indexes then serve a third render without a request.
    repo.remove("platform/Chart.lock");
    repo.commit("no lock");
    let out = sources.kubectl(cluster, &repo, &["diff-git", "HEAD", "platform", "-n", n]);
    code(&out, 0);
    let quiet = sources.requests();
    let out = sources.kubectl(cluster, &repo, &["diff-git", "HEAD", "platform", "-n", n]);
    code(&out, 0);
    assert_eq!(
        sources.requests(),
        quiet,
        "a render with fresh cached indexes made requests"
    );
    // A fresh cache: the tag list and the index are fetched.
    std::fs::remove_dir_all(sources.cache()).unwrap();
    let out = sources.kubectl(cluster, &repo, &["diff-git", "HEAD", "platform", "-n", n]);
    code(&out, 0);
    let (_, registry_requests) = sources.requests();
    assert!(
        registry_requests
            .iter()
            .any(|l| l.contains("/v2/charts/database/tags/list")),
        "{registry_requests:#?}"
    );
    let after = sources.requests();
    let out = sources.kubectl(cluster, &repo, &["diff-git", "HEAD", "platform", "-n", n]);
    code(&out, 0);
    assert_eq!(
        sources.requests(),
        after,
        "a render with fresh cached indexes made requests"
    );

    // The file:// dependency comes from the revision, not from the working tree.
    repo.write(
        "common/templates/labels.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-common\ndata:\n  team: uncommitted\n",
    );
    let out = sources.kubectl(cluster, &repo, &["diff-git", "HEAD", "platform", "-n", n]);
    code(&out, 0);
}

/// One chart per bad source, each with a single dependency.
#[test]
fn bad_chart_sources_are_one_clear_error_exit_2_and_nothing_is_applied() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("chart-bad");
    let n = ns.name.as_str();
    let sources = sources(cluster);
    let repo = GitFixture::new();
    let url = sources.repo.url.clone();
    let host = sources.registry.host.clone();
    let chart = |dir: &str, dependency: &str| {
        repo.write(
            &format!("{dir}/Chart.yaml"),
            &format!("apiVersion: v2\nname: {dir}\nversion: 0.1.0\ndependencies:\n{dependency}"),
        );
        repo.write(
            &format!("{dir}/templates/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: parent}\ndata: {a: b}\n",
        );
    };
    chart(
        "unreachable",
        "- name: cache\n  version: ^1.0.0\n  repository: https://127.0.0.1:9/charts\n",
    );
    chart(
        "nomatch",
        &format!("- name: cache\n  version: ^3.0.0\n  repository: {url}\n"),
    );
    chart(
        "notinrepo",
        &format!("- name: nosuchchart\n  version: ^1.0.0\n  repository: {url}\n"),
    );
    chart(
        "gone",
        &format!("- name: metrics\n  version: ~1.0.0\n  repository: {url}\n"),
    );
    chart(
        "tampered",
        &format!("- name: cache\n  version: 2.0.0\n  repository: {url}\n"),
    );
    chart(
        "outofsync",
        &format!("- name: cache\n  version: ^1.0.0\n  repository: {url}\n"),
    );
    chart(
        "oci-missing",
        &format!("- name: database\n  version: 9.9.9\n  repository: oci://{host}/charts\n"),
    );
    chart(
        "oci-login",
        &format!("- name: database\n  version: 1.2.0\n  repository: oci://{host}/charts\n"),
    );
    chart(
        "unknown-alias",
        "- name: cache\n  version: ^1.0.0\n  repository: \"@nosuchrepo\"\n",
    );
    chart(
        "broken",
        &format!("- name: database\n  version: 1.9.0\n  repository: oci://{host}/charts\n"),
    );
    repo.commit("charts");
    // Locks written by the real helm, then made wrong: a locked version removed from the
    // repository, a Chart.yaml changed after its lock.
    lock(cluster, &sources, &repo, "gone");
    lock(cluster, &sources, &repo, "outofsync");
    chart(
        "outofsync",
        &format!("- name: cache\n  version: ~1.0.0\n  repository: {url}\n"),
    );
    repo.commit("locks");
    std::fs::remove_file(sources.repo.charts_dir().join("metrics-1.0.0.tgz")).unwrap();
    sources.reindex(cluster);
    // An archive replaced on the server after it was indexed.
    let charts = sources.repo.charts_dir();
    std::fs::copy(
        charts.join("cache-1.0.0.tgz"),
        charts.join("cache-2.0.0.tgz"),
    )
    .unwrap();
    // A published version whose templates fail.
    let broken = sources.dir.path().join("broken");
    let source = workspace_root().join("tests/fixtures/chart-deps/subcharts/database");
    std::fs::create_dir_all(broken.join("database/templates")).unwrap();
    std::fs::copy(
        source.join("Chart.yaml"),
        broken.join("database/Chart.yaml"),
    )
    .unwrap();
    std::fs::write(
        broken.join("database/templates/bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: {{ .Values.nothing.here }}}\n",
    )
    .unwrap();
    let dest = sources.dir.path().join("broken-package");
    sources.helm(
        cluster,
        &[
            "package",
            &broken.join("database").to_string_lossy(),
            "--version",
            "1.9.0",
            "--destination",
            &dest.to_string_lossy(),
        ],
    );
    sources.push(cluster, &dest.join("database-1.9.0.tgz"));

    let fail = |dir: &str, wants: &[&str]| {
        let out = sources.kubectl(
            cluster,
            &repo,
            &["sync", "HEAD", dir, "--app", dir, "-n", n],
        );
        code(&out, 2);
        let text = stderr(&out);
        assert!(text.starts_with("error: "), "{text}");
        for want in wants {
            assert!(text.contains(want), "{dir}: wants {want:?} in: {text}");
        }
        text
    };
    fail(
        "unreachable",
        &[
            "unreachable/Chart.yaml: dependency `cache`: cannot reach https://127.0.0.1:9/charts/index.yaml",
            "or vendor the chart in git",
        ],
    );
    fail(
        "nomatch",
        &[
            "nomatch/Chart.yaml: dependency `cache`",
            &format!(
                "no version of `cache` at {url} matches `^3.0.0` (newest: 2.0.0, 1.1.0, 1.0.0); fix the version asked for"
            ),
        ],
    );
    fail(
        "notinrepo",
        &[
            "dependency `nosuchchart`",
            &format!("is not in the repository {url}"),
        ],
    );
    fail(
        "gone",
        &[
            "gone/Chart.yaml: dependency `metrics`",
            &format!("version 1.0.0 of `metrics` is not at {url};"),
            "helm dependency update",
        ],
    );
    fail(
        "tampered",
        &[
            "tampered/Chart.yaml: dependency `cache`",
            &format!("the archive from {url}/cache-2.0.0.tgz has digest sha256:"),
            &format!("but the index of {url} says sha256:"),
        ],
    );
    fail(
        "outofsync",
        &[
            "outofsync/Chart.lock is out of sync with the dependencies in outofsync/Chart.yaml",
            "run `helm dependency update`",
        ],
    );
    fail(
        "oci-missing",
        &[
            "oci-missing/Chart.yaml: dependency `database`",
            &format!("version 9.9.9 of `database` is not at oci://{host}/charts/database;"),
        ],
    );
    fail(
        "unknown-alias",
        &[
            "`@nosuchrepo` names a repository that is not in the Helm repositories file",
            "helm repo add",
        ],
    );
    fail(
        "broken",
        &[
            "broken/Chart.yaml: the dependency `database` 1.9.0 fetched from",
            &format!("oci://{host}/charts/database:1.9.0 fails to template"),
            "vendor a fixed copy under charts/",
        ],
    );

    // Credentials: none for the registry, then a wrong one for the repository.
    std::fs::write(sources.registry_file(), "{}").unwrap();
    fail(
        "oci-login",
        &[
            "oci-login/Chart.yaml: dependency `database`",
            &format!("oci://{host}/charts/database"),
            &format!(
                "answered HTTP 401: the registry wants a login and none is kept for {host}; run `helm registry login {host}`"
            ),
        ],
    );
    let repositories = std::fs::read_to_string(sources.repositories_file()).unwrap();
    std::fs::write(
        sources.repositories_file(),
        repositories.replace(REPO_PASSWORD, "wrong-password"),
    )
    .unwrap();
    std::fs::remove_dir_all(sources.cache()).ok();
    fail(
        "nomatch",
        &[
            &format!("{url}/index.yaml answered HTTP 401"),
            "were refused",
            "helm repo add NAME",
        ],
    );

    let configmaps = cluster.kubectl_ok(&["get", "configmaps", "-n", n, "-o", "name"]);
    assert!(
        !configmaps.contains("parent"),
        "nothing was applied: {configmaps}"
    );
    let secrets = cluster.kubectl_ok(&["get", "secrets", "-n", n, "-o", "name"]);
    assert!(
        secrets.trim().is_empty(),
        "no release was recorded: {secrets}"
    );
}
