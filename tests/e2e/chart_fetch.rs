//! The library's chart fetch, as a caller with a chart outside git (an Argo CD
//! multi-source app) uses it, against the real sources of [`super::chart_sources`]: an
//! open registry, a registry behind a token service, and the chart repository.

use std::path::Path;

use kubectl_gitops_tests::TestCluster;
use kubectl_gitops_tests::charts::Registry;
use kubectl_gitops_tests::record::base64;

use super::chart_sources::{REGISTRY_PASSWORD, REGISTRY_USER, sources};

/// The library's fetch, as a caller with a chart outside git uses it: an open registry
/// (no auth; a range read from the tag list, a `+build` version pushed as `_`), and the
/// chart repository with the credentials of a repositories file. The archives are the
/// ones `helm package` made, byte for byte; a second fetch makes no request.
#[test]
fn the_fetch_api_reads_an_open_registry_and_a_chart_repository_and_then_its_cache() {
    use gitops::charts::{ChartRef, ChartSources, Credentials, fetch};

    let cluster = TestCluster::get();
    let sources = sources(cluster);
    let open = Registry::start(&cluster.bin, None);
    let packages = sources.dir.path().join("open-packages");
    let mut pushed = Vec::new();
    for version in ["1.2.0", "1.4.0+build.7", "2.0.0-rc.1"] {
        let archive = sources.package(cluster, "database", version, &packages);
        let target = format!("oci://{}/team/charts", open.host);
        sources.helm(
            cluster,
            &["push", &archive.to_string_lossy(), &target, "--plain-http"],
        );
        pushed.push(std::fs::read(&archive).unwrap());
    }
    let cache = tempfile::tempdir().unwrap();
    let mut chart_sources = ChartSources::with_cache_dir(cache.path().to_path_buf());
    chart_sources.plain_http_loopback = true;
    chart_sources.credentials = Credentials::from_files(&sources.repositories_file(), &[]).unwrap();
    let oci = ChartRef {
        repository: format!("oci://{}/team/charts", open.host),
        name: "database".into(),
        version: "^1.2".into(),
    };
    let got = fetch(&oci, &chart_sources).unwrap();
    assert_eq!(got.version, "1.4.0+build.7");
    assert_eq!(
        got.url,
        format!("oci://{}/team/charts/database:1.4.0_build.7", open.host)
    );
    assert_eq!(got.archive, pushed[1]);
    assert!(got.digest.starts_with("sha256:") && !got.from_cache);
    assert_eq!(got.file_name(), "database-1.4.0+build.7.tgz");
    let requests = open.requests();
    assert!(
        requests
            .iter()
            .any(|l| l.contains("/v2/team/charts/database/tags/list")),
        "{requests:#?}"
    );

    let repo = ChartRef {
        repository: "@test-charts".into(),
        name: "cache".into(),
        version: ">=1.0.0 <2.0.0".into(),
    };
    let got = fetch(&repo, &chart_sources).unwrap();
    assert_eq!(got.version, "1.1.0");
    assert_eq!(got.url, format!("{}/cache-1.1.0.tgz", sources.repo.url));
    assert_eq!(
        got.archive,
        std::fs::read(sources.repo.charts_dir().join("cache-1.1.0.tgz")).unwrap()
    );

    let before = (open.requests(), sources.requests());
    for chart in [&oci, &repo] {
        let again = fetch(chart, &chart_sources).unwrap();
        assert!(again.from_cache, "{again:?}");
    }
    let exact = ChartRef {
        version: "1.2.0".into(),
        ..oci.clone()
    };
    let err = fetch(
        &ChartRef {
            version: "9.0.0".into(),
            ..oci.clone()
        },
        &chart_sources,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("version 9.0.0 of `database` is not at"),
        "{err}"
    );
    assert_eq!(fetch(&exact, &chart_sources).unwrap().archive, pushed[0]);
    let after_cached = sources.requests();
    assert_eq!(
        after_cached, before.1,
        "the chart repository was asked again"
    );
    assert_eq!(
        open.requests().len(),
        before.0.len() + 3,
        "only 9.0.0's manifest and 1.2.0's manifest and blob"
    );
}

/// A registry behind a token service (the Docker token flow that Docker Hub, GHCR and
/// Harbor use): the 401's `Bearer realm=…,service=…,scope=…` is answered with a token
/// from the realm, got with the login of Docker's config.json; a wrong login is refused
/// with advice and without the password.
#[test]
fn a_registry_behind_a_token_service_is_answered_with_a_bearer_token() {
    use gitops::charts::{ChartRef, ChartSources, Credentials, fetch};
    use kubectl_gitops_tests::charts::RegistryAuth;

    let cluster = TestCluster::get();
    let sources = sources(cluster);
    let registry = Registry::start_with(
        &cluster.bin,
        RegistryAuth::Token(REGISTRY_USER, REGISTRY_PASSWORD),
    );
    let host = registry.host.clone();
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
    let packages = sources.dir.path().join("token-packages");
    let archive = sources.package(cluster, "database", "1.2.0", &packages);
    let target = format!("oci://{host}/charts");
    sources.helm(
        cluster,
        &["push", &archive.to_string_lossy(), &target, "--plain-http"],
    );

    let docker = sources.dir.path().join("docker-config.json");
    let login = |password: &str| {
        let encoded = base64(format!("{REGISTRY_USER}:{password}").as_bytes());
        std::fs::write(
            &docker,
            format!(r#"{{"auths":{{"{host}":{{"auth":"{encoded}"}}}}}}"#),
        )
        .unwrap();
    };
    let chart_sources = |cache: &Path| {
        let mut s = ChartSources::with_cache_dir(cache.to_path_buf());
        s.plain_http_loopback = true;
        s.credentials = Credentials::from_files(
            &sources.dir.path().join("none.yaml"),
            std::slice::from_ref(&docker),
        )
        .unwrap();
        s
    };
    let chart = ChartRef {
        repository: target.clone(),
        name: "database".into(),
        version: "~1.2.0".into(),
    };

    login("wrong-password");
    let cache = tempfile::tempdir().unwrap();
    let err = fetch(&chart, &chart_sources(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("oci://{host}/charts/database"))
            && err.contains(&format!(
                "refused the login kept for {host}; run `helm registry login {host}` again"
            ))
            && !err.contains("wrong-password"),
        "{err}"
    );

    login(REGISTRY_PASSWORD);
    let got = fetch(&chart, &chart_sources(cache.path())).unwrap();
    assert_eq!(got.version, "1.2.0");
    assert_eq!(got.archive, std::fs::read(&archive).unwrap());
    let tokens = registry.token_requests();
    assert!(
        tokens.iter().any(|l| l.contains(
            "GET /token?service=test-registry&scope=repository%3Acharts%2Fdatabase%3Apull 200"
        )),
        "{tokens:#?}"
    );
    let requests = registry.requests();
    assert!(
        requests
            .iter()
            .any(|l| l.contains("/v2/charts/database/tags/list HTTP/1.1\" 401"))
            && requests
                .iter()
                .any(|l| l.contains("/v2/charts/database/blobs/sha256:") && l.contains("\" 200 ")),
        "{requests:#?}"
    );
}
