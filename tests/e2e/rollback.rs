//! Which release a bare `--rollback` goes to, syncs that change nothing recording no
//! release, and `--watch` naming every commit a release covers.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

fn settings(greeting: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: {greeting}\n"
    )
}

/// A Deployment whose pods can never be scheduled: a sync waiting for it fails.
const UNSCHEDULABLE: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {no-such-node: \"true\"}
      containers:
      - name: web
        image: nginx:1.26
";

fn sync_in(cluster: &TestCluster, dir: &std::path::Path, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .arg("sync")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn greeting(cluster: &TestCluster, ns: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "configmap/settings",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.greeting}",
    ])
}

fn resource_version(cluster: &TestCluster, ns: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "configmap/settings",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
}

/// The app's releases as `kubectl release-history APP -o json` lists them, newest first.
fn releases(cluster: &TestCluster, ns: &str, app: &str) -> Vec<Value> {
    let text = cluster.kubectl_ok(&["release-history", app, "-n", ns, "-o", "json"]);
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["releases"].as_array().unwrap().clone()
}

fn commit_ids(release: &Value) -> Vec<String> {
    release["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// The value of `name:` on a release's page.
fn field(page: &str, name: &str) -> String {
    page.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(|value| value.trim().to_string())
        .unwrap_or_default()
}

fn statuses(list: &[(u32, &str)]) -> Vec<(u32, String)> {
    list.iter().map(|(r, s)| (*r, s.to_string())).collect()
}

#[test]
fn a_bare_rollback_after_a_failed_release_goes_to_the_newest_earlier_one_that_differs() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rb-failed");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    let app = ["--app", "roll", "-n", n];
    let sync = |extra: &[&str]| sync_in(cluster, repo.path(), &[&app[..], extra].concat());
    repo.write("settings.yaml", &settings("first"));
    repo.commit("first");
    ok(&sync(&["--wait=false"]));
    repo.write("settings.yaml", &settings("second"));
    repo.commit("second");
    ok(&sync(&["--wait=false"]));
    // Release 3 fails: its Deployment never becomes available.
    repo.write("settings.yaml", &settings("third"));
    repo.write("web.yaml", UNSCHEDULABLE);
    let third = repo.commit("third");
    let out = sync(&["--timeout", "3s"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        cluster.release_statuses(n, "roll"),
        statuses(&[(1, "superseded"), (2, "deployed"), (3, "failed")])
    );

    // Rolling back to the failed release by number is refused before anything is written.
    let elsewhere = tempfile::tempdir().unwrap();
    let before = resource_version(cluster, n);
    let out = sync_in(
        cluster,
        elsewhere.path(),
        &[&app[..], &["--rollback", "3", "--wait=false"]].concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "release 3 of app roll failed, so it was never deployed: a rollback to it is refused; roll back to a release that was deployed (2, 1), or sync its commit {} to try its objects again",
            &third[..7]
        )),
        "{}",
        describe(&out)
    );
    assert_eq!(resource_version(cluster, n), before, "nothing was applied");
    assert_eq!(
        cluster.release_statuses(n, "roll").len(),
        3,
        "nothing recorded"
    );

    // The deployed release is 2: a bare rollback goes to the newest earlier release whose
    // objects differ from it, 1, without git, and says why.
    let out = sync_in(
        cluster,
        elsewhere.path(),
        &[&app[..], &["--rollback", "--wait=false", "-o", "json"]].concat(),
    );
    let doc = ok(&out);
    assert!(
        stderr(&out).contains(
            "rolling back to release 1 (the newest release before release 2, the deployed one, whose objects differ from release 2's; release 3 failed)"
        ),
        "{}",
        describe(&out)
    );
    assert_eq!(doc["release"], 4);
    assert_eq!(doc["rollback_of"], 1);
    assert_eq!(greeting(cluster, n), "first");
    let web = cluster
        .kubectl()
        .args(["get", "deployment/web", "-n", n])
        .output()
        .unwrap();
    assert!(
        !web.status.success(),
        "release 1 has no Deployment: the failed release's is pruned"
    );
    assert_eq!(
        cluster.release_statuses(n, "roll"),
        statuses(&[
            (1, "superseded"),
            (2, "superseded"),
            (3, "failed"),
            (4, "deployed")
        ])
    );

    // Again: the deployed release is now 4 (release 1's objects); 3 failed, 2 differs.
    let out = sync_in(
        cluster,
        elsewhere.path(),
        &[&app[..], &["--rollback"]].concat(),
    );
    ok(&out);
    assert!(
        stderr(&out).contains("rolling back to release 2 (the newest release before release 4, the deployed one, whose objects differ from release 4's; release 3 failed)"),
        "{}",
        describe(&out)
    );
    assert_eq!(greeting(cluster, n), "second");
}

#[test]
fn no_op_syncs_record_no_release_and_a_rollback_goes_to_the_last_change() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rb-noop");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    let app = [
        "--app",
        "quiet",
        "-n",
        n,
        "--wait=false",
        "--history-max",
        "2",
    ];
    let sync = |extra: &[&str]| sync_in(cluster, repo.path(), &[&app[..], extra].concat());
    repo.write("settings.yaml", &settings("first"));
    let first = repo.commit("first");
    ok(&sync(&[]));

    // One release, nothing before it: nothing to roll back to, and nothing is written.
    let before = resource_version(cluster, n);
    let out = sync(&["--rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("error: app quiet has nothing to roll back to: release 1 is the deployed one, and no release before it that was deployed holds other objects"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        cluster.release_statuses(n, "quiet"),
        statuses(&[(1, "deployed")])
    );
    assert_eq!(resource_version(cluster, n), before);

    repo.write("settings.yaml", &settings("second"));
    let second = repo.commit("second");
    ok(&sync(&[]));
    let changed = resource_version(cluster, n);

    // Two resyncs that change nothing: no release, release 1 is kept by --history-max 2,
    // the ConfigMap is not written, and release 2 says when it was last found current;
    // saying so rewrites the record's head, not the record itself.
    let body = || {
        cluster.kubectl_ok(&[
            "get",
            "secret",
            "quiet.r2",
            "-n",
            n,
            "-o",
            "jsonpath={.data.release}",
        ])
    };
    let body_before = body();
    let mut found_current = Vec::new();
    for _ in 0..2 {
        let doc = ok(&sync(&["-o", "json"]));
        assert_eq!(doc["recorded"], false, "{doc}");
        assert_eq!(doc["release"], 2, "{doc}");
        assert_eq!(doc["status"], "deployed", "{doc}");
        assert_eq!(doc["counts"]["unchanged"], 1, "{doc}");
        assert_eq!(doc["counts"]["configured"], 0, "{doc}");
        found_current.push(releases(cluster, n, "quiet")[0]["last_synced"].clone());
    }
    assert!(found_current[0].is_string(), "{found_current:?}");
    assert_ne!(found_current[0], found_current[1]);
    assert_eq!(body(), body_before);
    assert_eq!(
        cluster.release_statuses(n, "quiet"),
        statuses(&[(1, "superseded"), (2, "deployed")])
    );
    assert_eq!(resource_version(cluster, n), changed);
    let listed = releases(cluster, n, "quiet");
    assert!(listed[0]["last_synced"].is_string(), "{:?}", listed[0]);
    assert_eq!(listed[1]["last_synced"], Value::Null);
    assert_eq!(commit_ids(&listed[0]), [second.as_str()]);

    // A later commit with the same objects records nothing either: release 2 moves on to
    // it, so the history still says which commit is deployed.
    let third = repo.commit("a commit that changes no object");
    let out = sync(&[]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("release 2 of quiet: deployed, nothing changed (0 created, 0 configured, 1 unchanged, 0 pruned); no new release recorded"),
        "{}",
        describe(&out)
    );
    let listed = releases(cluster, n, "quiet");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["commit"]["id"], third.as_str());
    assert_eq!(commit_ids(&listed[0]), [third.as_str(), second.as_str()]);
    assert_eq!(listed[1]["commit"]["id"], first.as_str());
    let page = cluster.kubectl_ok(&["release-history", "quiet", "2", "-n", n]);
    assert!(field(&page, "Last synced").ends_with(" UTC)"), "{page}");
    assert_eq!(
        field(&page, "Commits"),
        format!(
            "2: {} a commit that changes no object, {} second",
            &third[..7],
            &second[..7]
        ),
        "{page}"
    );

    // A bare rollback goes to release 1, the last release that changed something before.
    let out = sync(&["--rollback"]);
    ok(&out);
    assert!(
        stderr(&out).contains("rolling back to release 1 "),
        "{}",
        describe(&out)
    );
    assert_eq!(greeting(cluster, n), "first");
    assert_eq!(
        cluster.release_statuses(n, "quiet"),
        statuses(&[(2, "superseded"), (3, "deployed")]),
        "a real release (the rollback) trims the oldest beyond --history-max 2"
    );
}

/// Waits until `check` holds, or fails after `timeout` saying `what`.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn watch_records_one_release_naming_every_commit_it_covers() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rb-watch");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("settings.yaml", &settings("first"));
    let first = repo.commit("one");
    // The watch follows branch `live`, which moves over two commits at once.
    repo.git(&["branch", "live"]);
    let app = ["live", "--app", "follow", "-n", n, "--wait=false"];
    ok(&sync_in(cluster, repo.path(), &app));
    let child = cluster
        .kubectl()
        .arg("sync")
        .args(app)
        .args(["--watch", "--interval", "1s"])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Starting on what is deployed records nothing: release 1 is marked current.
    wait_until("the watch's first check", Duration::from_secs(60), || {
        releases(cluster, n, "follow")[0]["last_synced"].is_string()
    });
    assert_eq!(
        cluster.release_statuses(n, "follow"),
        statuses(&[(1, "deployed")])
    );

    repo.write("settings.yaml", &settings("second"));
    let second = repo.commit("two");
    repo.write("settings.yaml", &settings("third"));
    let third = repo.commit("three");
    repo.git(&["branch", "-f", "live", "main"]);
    wait_until("release 2", Duration::from_secs(60), || {
        cluster.release_statuses(n, "follow") == statuses(&[(1, "superseded"), (2, "deployed")])
    });
    // A few more rounds on the same commit record nothing more.
    std::thread::sleep(Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "synced {} three (release 2, commits {}, {})",
            &third[..7],
            &third[..7],
            &second[..7]
        )),
        "{}",
        describe(&out)
    );

    assert_eq!(
        cluster.release_statuses(n, "follow"),
        statuses(&[(1, "superseded"), (2, "deployed")])
    );
    assert_eq!(greeting(cluster, n), "third");
    let listed = releases(cluster, n, "follow");
    assert_eq!(listed[0]["commit"]["id"], third.as_str());
    assert_eq!(commit_ids(&listed[0]), [third.as_str(), second.as_str()]);
    assert_eq!(commit_ids(&listed[1]), [first.as_str()]);
    let page = cluster.kubectl_ok(&["release-history", "follow", "2", "-n", n]);
    assert_eq!(
        field(&page, "Commits"),
        format!("2: {} three, {} two", &third[..7], &second[..7]),
        "{page}"
    );
}

/// A release of 10,000 objects: its record (the manifest, and a resourceVersion and two
/// hashes per object) is more than 1 MiB at the fast compression level, and still fits
/// its Secret; rolling back to it re-applies its manifest, read from that record.
#[test]
fn a_release_of_ten_thousand_objects_is_recorded_and_rolled_back_to() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("big-release");
    let repo = GitFixture::new();
    let count = 10_000;
    // Values that do not repeat, as a real revision's do not.
    let value = |i: usize, revision: u32| {
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(revision);
        x ^= x >> 29;
        format!("v{x:016x}")
    };
    let write = |revision: u32| {
        for i in 0..count {
            // The second revision changes ten of them.
            let revision = if i % 1000 == 0 { revision } else { 1 };
            repo.write(
                &format!("objs/cm-{i:05}.yaml"),
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\n  labels:\n    tier: t{}\ndata:\n  key: {}\n",
                    i % 7,
                    value(i, revision)
                ),
            );
        }
    };
    write(1);
    repo.commit("ten thousand");
    write(2);
    repo.commit("ten changed");
    let sync = |args: &[&str]| {
        sync_in(
            cluster,
            repo.path(),
            &[
                &["--app", "big", "-n", &ns.name, "--yes", "--wait=false"],
                args,
            ]
            .concat(),
        )
    };
    ok(&sync(&["HEAD~1", "objs"]));
    ok(&sync(&["HEAD", "objs"]));
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "configmap/cm-01000",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.key}"
        ]),
        value(1000, 2)
    );
    let out = sync(&["--rollback", "1"]);
    ok(&out);
    assert_eq!(
        cluster.release_statuses(&ns.name, "big"),
        [
            (1, "superseded".to_string()),
            (2, "superseded".to_string()),
            (3, "deployed".to_string())
        ],
        "{}",
        stderr(&out)
    );
    for i in [0, 1000, 9000] {
        assert_eq!(
            cluster.kubectl_ok(&[
                "get",
                &format!("configmap/cm-{i:05}"),
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.key}"
            ]),
            value(i, 1)
        );
    }
    // Each record is one Secret of at most 1 MiB.
    for revision in 1..=3 {
        let bytes = cluster.kubectl_ok(&[
            "get",
            &format!("secret/big.r{revision}"),
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.release}",
        ]);
        // base64: four characters for three bytes.
        let size = bytes.trim().len() / 4 * 3;
        assert!(size <= 1024 * 1024, "release {revision}: {size} bytes");
        if revision == 1 {
            assert!(
                size > 600 * 1024,
                "release 1 is only {size} bytes: not a large record"
            );
        }
    }
}
