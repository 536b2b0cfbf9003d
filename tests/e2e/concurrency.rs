//! Plugins running at the same time on the same app: read-only checks beside a sync never
//! fail, and of two racing syncs exactly one applies.

use std::process::{Child, Command, Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

fn config_maps(count: usize, value: &str) -> String {
    (0..count)
        .map(|i| {
            format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\ndata:\n  v: \"{value}\"\n")
        })
        .collect()
}

fn plugin(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Command {
    let mut cmd = cluster.kubectl();
    cmd.args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn finish(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn twenty_drift_checks_beside_a_sync_of_the_same_app_never_error() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("cc-drift");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("cms.yaml", &config_maps(30, "one"));
    repo.commit("one");
    let sync_args = [
        "sync",
        "HEAD",
        "--app",
        "busy",
        "-n",
        n,
        "--prune",
        "--timeout",
        "2m",
    ];
    let out = plugin(cluster, &repo, &sync_args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    repo.write("cms.yaml", &config_maps(25, "two"));
    repo.commit("two");
    let sync = plugin(cluster, &repo, &sync_args).spawn().unwrap();
    let drifts: Vec<Child> = (0..20)
        .map(|i| {
            let args: &[&str] = if i % 2 == 0 {
                &["drift", "busy", "-n", n]
            } else {
                &["drift", "busy", "-n", n, "-o", "json"]
            };
            plugin(cluster, &repo, args).spawn().unwrap()
        })
        .collect();
    let sync = sync.wait_with_output().unwrap();
    assert_eq!(sync.status.code(), Some(0), "{}", describe(&sync));
    for out in finish(drifts) {
        // 0 in sync, 1 drifted (the sync is half-way): never an error.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "drift beside a sync: {}",
            describe(&out)
        );
    }
    assert_eq!(
        cluster.release_statuses(n, "busy"),
        vec![(1, "superseded".to_string()), (2, "deployed".to_string())]
    );
}

#[test]
fn of_two_racing_syncs_exactly_one_applies_and_the_other_names_the_holder() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("cc-race");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    // A Deployment that never becomes healthy keeps the winner busy (and holding the app)
    // until its --timeout.
    repo.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      nodeSelector: {no-such-node: \"true\"}\n      containers:\n      - name: web\n        image: nginx:1.26\n",
    );
    repo.commit("web");
    let args = ["sync", "HEAD", "--app", "race", "-n", n, "--timeout", "10s"];
    let racers = vec![
        plugin(cluster, &repo, &args).spawn().unwrap(),
        plugin(cluster, &repo, &args).spawn().unwrap(),
    ];
    let outs = finish(racers);
    let refused: Vec<&Output> = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("being synced by admin@"))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "exactly one is refused:\n{}\n{}",
        describe(&outs[0]),
        describe(&outs[1])
    );
    assert_eq!(refused[0].status.code(), Some(2));
    // The other applied (and failed on health): the only release.
    assert_eq!(
        cluster.release_statuses(n, "race"),
        vec![(1, "failed".to_string())]
    );
    assert_eq!(cluster.count(n, "deployments"), 1);
}

/// Another writer keeps changing the app's Lease while a sync holds it: the sync's
/// renewals meet 409 Conflict, read the Lease again and renew, and the sync keeps the app.
#[test]
fn lock_renewals_that_race_another_writer_reread_and_keep_the_lock() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("cc-409");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      nodeSelector: {no-such-node: \"true\"}\n      containers:\n      - name: web\n        image: nginx:1.26\n",
    );
    repo.commit("web");
    let offset = cluster.audit_offset();
    // Held for its whole --timeout (the Deployment never becomes healthy), renewed every
    // half second.
    let sync = plugin(
        cluster,
        &repo,
        &[
            "sync",
            "HEAD",
            "--app",
            "contended",
            "-n",
            n,
            "--timeout",
            "15s",
            "--lock-duration",
            "1500ms",
        ],
    )
    .spawn()
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            let ns = n.to_string();
            std::thread::spawn(move || {
                let cluster = TestCluster::get();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    // Fails until the sync has created the Lease; that is fine.
                    let _ = cluster
                        .kubectl()
                        .args([
                            "annotate",
                            "lease",
                            "kubectl-gitops.contended",
                            "-n",
                            &ns,
                            "--overwrite",
                        ])
                        .arg(format!("writer-{w}={i}"))
                        .output();
                }
            })
        })
        .collect();
    let out = sync.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    // It failed on health at the end of its --timeout, never on the lock.
    assert!(err.contains("not healthy"), "{err}");
    assert!(!err.to_lowercase().contains("lock"), "{err}");
    let renewals_refused = conflicting_lease_updates(cluster, offset, n);
    assert!(
        renewals_refused > 0,
        "the racing writer never made a renewal conflict; the test proved nothing"
    );
    assert_eq!(
        cluster.release_statuses(n, "contended"),
        vec![(1, "failed".to_string())]
    );
}

/// Our Lease updates the API server answered with 409 Conflict since `offset`.
fn conflicting_lease_updates(cluster: &TestCluster, offset: u64, namespace: &str) -> usize {
    use std::io::{BufRead, Seek};
    let mut file = std::fs::File::open(cluster.state.join("logs/audit.log")).unwrap();
    file.seek(std::io::SeekFrom::Start(offset)).unwrap();
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|e| {
            e["userAgent"]
                .as_str()
                .is_some_and(|a| a.starts_with("kubectl-gitops/"))
                && e["stage"] == "ResponseComplete"
                && e["verb"] == "update"
                && e["objectRef"]["resource"] == "leases"
                && e["objectRef"]["namespace"] == namespace
                && e["responseStatus"]["code"] == 409
        })
        .count()
}
