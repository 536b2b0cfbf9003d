//! Faults of the API server, each on a private control plane so the shared one keeps
//! serving the other tests: killed in the middle of a sync, frozen (SIGSTOP) so requests
//! time out, and throttled (429 Too Many Requests).

use std::io::{BufRead, Seek};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubectl_gitops_tests::{GitFixture, PrivateCluster, TestCluster, describe};

fn config_maps(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\ndata:\n  n: \"{i}\"\n")
        })
        .collect()
}

pub(crate) fn sync_cmd(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Command {
    let mut cmd = cluster.kubectl();
    cmd.arg("sync")
        .args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null());
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Applies (not dry-runs) of ConfigMaps in `namespace` the audit log has seen since `offset`.
fn applied_config_maps(cluster: &TestCluster, offset: u64, namespace: &str) -> usize {
    let Ok(mut file) = std::fs::File::open(cluster.state.join("logs/audit.log")) else {
        return 0;
    };
    if file.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return 0;
    }
    let namespace = format!("\"namespace\":\"{namespace}\"");
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| {
            l.contains("\"userAgent\":\"kubectl-gitops/")
                && l.contains("\"verb\":\"patch\"")
                && l.contains("\"resource\":\"configmaps\"")
                && l.contains(&namespace)
                && l.contains("\"stage\":\"ResponseComplete\"")
                && !l.contains("dryRun=All")
        })
        .count()
}

#[test]
fn apiserver_killed_mid_sync_fails_with_what_was_applied_and_the_next_sync_converges() {
    let cluster = PrivateCluster::start(&[]);
    let ns = cluster.namespace("fa-kill");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("cms.yaml", &config_maps(200));
    repo.commit("200 config maps");
    let args = [
        "--app",
        "many",
        "-n",
        n,
        "--lock-duration",
        "5s",
        "--timeout",
        "60s",
    ];

    let offset = cluster.audit_offset();
    // One apply at a time: with the default concurrency a busy machine could see all 200
    // applied before the API server is stopped, and the sync would then fail elsewhere.
    let child = sync_cmd(&cluster, &repo, &args)
        .env("KUBECTL_GITOPS_CONCURRENCY", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the API server once the sync has applied some, not all, of the objects.
    let started = Instant::now();
    while applied_config_maps(&cluster, offset, n) < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the sync never started applying"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.stop_apiserver();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    // The sync only created objects, so it tried to delete them again; with the API server
    // gone that fails too, and the error counts and names what remains and what was not
    // applied.
    assert!(
        err.contains("this sync only created objects, and deleting them again failed for ")
            && err.contains("that remain (cannot reach the API server")
            && err.contains("object(s) that remain (")
            && err.contains("): ConfigMap ")
            && err.contains("not applied: ")
            && err.contains("more"),
        "{err}"
    );
    let error = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(error.len() < 4000, "the error must fit a screen: {error}");

    cluster.start_apiserver();
    let applied = cluster.count(n, "configmaps") - 1; // kube-root-ca.crt
    assert!(
        applied < 200,
        "the sync was stopped before the end: {applied}"
    );
    let statuses = cluster.release_statuses(n, "many");
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    // Failed if the record could still be written, pending (to be failed) if not.
    assert!(
        statuses[0].1 == "failed" || statuses[0].1 == "pending",
        "{statuses:?}"
    );

    // The dead sync could not release its lock: the next one waits for the Lease to end.
    std::thread::sleep(Duration::from_secs(6));
    let out = sync_cmd(&cluster, &repo, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(cluster.count(n, "configmaps"), 201);
    assert_eq!(
        cluster.release_statuses(n, "many"),
        vec![(1, "failed".to_string()), (2, "deployed".to_string())]
    );
}

#[test]
fn frozen_apiserver_requests_are_retried_within_the_budget() {
    let cluster = PrivateCluster::start(&[]);
    let ns = cluster.namespace("fa-freeze");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("cms.yaml", &config_maps(3));
    repo.commit("three");

    // Frozen for 3 s with a 1 s request timeout: the sync waits it out and succeeds.
    cluster.signal_apiserver("STOP");
    let child = sync_cmd(
        &cluster,
        &repo,
        &["--app", "frozen", "-n", n, "--request-timeout", "1s"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    cluster.signal_apiserver("CONT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = stderr(&out);
    let retries: Vec<&str> = err.lines().filter(|l| l.starts_with("retrying ")).collect();
    assert!(
        !retries.is_empty()
            && retries
                .iter()
                .all(|l| l.contains(" (attempt ")
                    && l.ends_with("no answer within the request timeout")),
        "{err}"
    );
    assert_eq!(
        cluster.release_statuses(n, "frozen"),
        vec![(1, "deployed".to_string())]
    );

    // Frozen for longer than the sync's --timeout: it gives up when its budget is spent,
    // not when the server comes back.
    repo.write("cms.yaml", &config_maps(4));
    repo.commit("four");
    cluster.signal_apiserver("STOP");
    let started = Instant::now();
    let out = sync_cmd(
        &cluster,
        &repo,
        &[
            "--app",
            "frozen",
            "-n",
            n,
            "--request-timeout",
            "1s",
            "--timeout",
            "3s",
        ],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    cluster.signal_apiserver("CONT");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}: {}",
        describe(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("did not answer within 1s"), "{err}");
}

#[test]
fn throttled_requests_are_retried_after_the_servers_retry_after() {
    // One request at a time for users outside system:masters: parallel requests get 429.
    let cluster = PrivateCluster::start(&[
        "--max-requests-inflight=1",
        "--max-mutating-requests-inflight=1",
    ]);
    let ns = cluster.namespace("fa-429");
    let n = ns.name.as_str();
    let user = cluster.service_account_user(n, "deployer");
    cluster.kubectl_ok(&[
        "create",
        "rolebinding",
        "deployer-admin",
        "--clusterrole=admin",
        &format!("--serviceaccount={n}:deployer"),
        "-n",
        n,
    ]);
    let repo = GitFixture::new();
    repo.write("cms.yaml", &config_maps(40));
    repo.commit("forty");
    let out = sync_cmd(&cluster, &repo, &["--app", "throttled", "--wait=false"])
        .env("KUBECONFIG", &user.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("retrying ") && l.ends_with("429 Too Many Requests")),
        "{err}"
    );
    assert_eq!(cluster.count(n, "configmaps"), 41);
    assert_eq!(
        cluster.release_statuses(n, "throttled"),
        vec![(1, "deployed".to_string())]
    );
}
