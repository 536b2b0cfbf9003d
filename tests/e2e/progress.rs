//! A sync's progress lines never hold its work up: with stderr a pipe that nobody reads
//! until the end (as a script that reads stderr only once the command exits does), the
//! sync still applies everything, records its release and gives its lock up.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kubectl_gitops_tests::{GitFixture, TestCluster};

#[test]
fn a_sync_whose_stderr_is_not_read_still_finishes_its_work() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("progress");
    let repo = GitFixture::new();
    // 1,000 objects with long names: ~240 bytes of progress each, ~240 KiB in all, more
    // than a pipe (64 KiB) and the recording wrapper's tee behind it hold.
    let count = 1000;
    let padding = "x".repeat(200);
    for i in 0..count {
        repo.write(
            &format!("objs/cm-{i:04}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}-{padding}\ndata:\n  key: value-{i}\n"
            ),
        );
    }
    repo.commit("many objects");
    let mut child = cluster
        .kubectl()
        .args(["sync", "HEAD", "objs", "--app", "many", "-n", &ns.name])
        .args(["--yes", "--wait=false"])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads stderr while the release is not deployed.
    let deadline = Instant::now() + Duration::from_secs(240);
    let deployed = loop {
        let statuses = cluster.release_statuses(&ns.name, "many");
        if statuses.iter().any(|(_, s)| s == "deployed") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Whatever happened, stderr is read now and the sync ends.
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let tail: String = stderr.lines().rev().take(10).collect::<Vec<_>>().join("\n");
    assert!(
        deployed,
        "the release was not deployed while stderr was not read; {status}; stderr ends:\n{tail}"
    );
    assert!(status.success(), "{status}; stderr ends:\n{tail}");
    assert_eq!(cluster.count(&ns.name, "configmaps"), count + 1); // + kube-root-ca.crt
    // The lines were queued, not lost: a reader that comes late still gets them all.
    let created = stderr.lines().filter(|l| l.ends_with(" created")).count();
    assert_eq!(created, count, "stderr ends:\n{tail}");
}
