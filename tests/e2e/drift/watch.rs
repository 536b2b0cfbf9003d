//! `kubectl drift --watch --heal`: a self-healing loop that stops on Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{SETTINGS, code, drift_cmd, get, repo_with, sync};
use kubectl_gitops_tests::{TestCluster, describe};

/// Waits until `check` holds, or fails after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn watch_sees_an_edit_made_while_it_runs_heals_it_and_stops_on_interrupt() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("dr-watch");
    let n = ns.name.as_str();
    let repo = repo_with(&[("app/settings.yaml", SETTINGS)]);
    sync(cluster, &repo, "selfheal", n);
    let child = drift_cmd(
        cluster,
        &[
            "selfheal",
            "-n",
            n,
            "--watch",
            "--interval",
            "1s",
            "--heal",
            "--wait=false",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    cluster.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "configmap/settings",
        "-p",
        "{\"data\":{\"greeting\":\"edited\"}}",
        "--field-manager=kubectl-edit",
    ]);
    wait_until("the heal", Duration::from_secs(60), || {
        get(cluster, n, "configmap/settings", "{.data.greeting}") == "hello"
    });
    wait_until("the heal's release", Duration::from_secs(30), || {
        get(cluster, n, "secrets", "{.items[*].metadata.name}").contains("selfheal.r2")
    });

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("app selfheal: in sync against release 1"),
        "{}",
        describe(&out)
    );
    assert!(
        text.contains(&format!(
            "selfheal: ConfigMap {n}/settings /data/greeting: \"hello\" -> \"edited\" (by kubectl-edit"
        )),
        "{}",
        describe(&out)
    );
    assert!(
        text.contains("selfheal: healed: release 2 deployed"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        text.matches("/data/greeting").count(),
        1,
        "only changes are printed: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .ends_with("stopped"),
        "{}",
        describe(&out)
    );
}
