//! Ctrl-C during a sync: no new write starts, the request in flight finishes, the record
//! ends failed saying what was and was not applied, the lock is given up, exit 130; a
//! second Ctrl-C exits at once. A lock left by a dead process of this host is taken over
//! at once, and drift says first that the latest release did not finish.
//!
//! To hold a sync at a known point, a validating webhook (failurePolicy Ignore) sends one
//! labelled ConfigMap's admission to a local socket that accepts and never answers: its
//! apply is in flight until the webhook's timeout, then goes through. The socket seeing
//! the connection is the cluster saying the sync got there.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

use crate::faults::sync_cmd;

/// The label that sends a ConfigMap's admission to the silent webhook.
const SLOW: &str = "kubectl-gitops-test/slow";

/// A webhook that holds the admission of ConfigMaps labelled [`SLOW`] in one namespace for
/// its whole timeout; deleted when dropped.
pub(crate) struct SilentWebhook {
    name: String,
    calls: Arc<AtomicUsize>,
}

impl SilentWebhook {
    fn new(cluster: &TestCluster, namespace: &str, timeout_seconds: u32) -> SilentWebhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        std::thread::spawn(move || {
            // Held, never answered: the API server's TLS handshake waits for the timeout.
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().map_while(Result::ok) {
                held.push(stream);
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let name = format!("silent-{namespace}");
        let yaml = format!(
            "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
- name: silent.kubectl-gitops.test
  clientConfig:
    url: https://127.0.0.1:{port}/
  rules:
  - apiGroups: [\"\"]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [configmaps]
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {namespace}
  objectSelector:
    matchLabels:
      {SLOW}: \"yes\"
  failurePolicy: Ignore
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: {timeout_seconds}
"
        );
        cluster.apply_yaml(namespace, &yaml);
        let webhook = SilentWebhook { name, calls };
        webhook.wait_active(cluster, namespace);
        webhook
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Waits until the API server calls the webhook: server-side dry runs of a labelled
    /// ConfigMap until one reaches the socket.
    fn wait_active(&self, cluster: &TestCluster, namespace: &str) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let before = self.calls();
            let mut probe = cluster
                .kubectl()
                .args(["apply", "--dry-run=server", "-n", namespace, "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let yaml = config_map("probe", true, "0");
            probe
                .stdin
                .take()
                .unwrap()
                .write_all(yaml.as_bytes())
                .unwrap();
            let reached = wait_for(Duration::from_secs(2), || self.calls() > before);
            let _ = probe.kill();
            let _ = probe.wait();
            if reached {
                return;
            }
        }
        panic!("the API server never called the webhook {}", self.name);
    }

    fn delete(&self, cluster: &TestCluster) {
        cluster.kubectl_ok(&[
            "delete",
            "validatingwebhookconfiguration",
            &self.name,
            "--ignore-not-found",
        ]);
    }
}

impl Drop for SilentWebhook {
    fn drop(&mut self) {
        // Best effort: a webhook left behind only ever matches its test's namespace.
        let _ = TestCluster::get()
            .kubectl()
            .args([
                "delete",
                "validatingwebhookconfiguration",
                &self.name,
                "--ignore-not-found",
            ])
            .output();
    }
}

fn config_map(name: &str, slow: bool, value: &str) -> String {
    let labels = if slow {
        format!("\n  labels:\n    {SLOW}: \"yes\"")
    } else {
        String::new()
    };
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{labels}\ndata:\n  value: \"{value}\"\n"
    )
}

/// ConfigMaps `cm-000` .. : the one numbered `slow` labelled for the webhook.
pub(crate) fn config_maps(count: usize, slow: Option<usize>) -> String {
    (0..count)
        .map(|i| config_map(&format!("cm-{i:03}"), Some(i) == slow, &i.to_string()))
        .collect()
}

/// Polls `done` every 10 ms for at most `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// App `app` in `namespace` synced with `first`; then the webhook (holding for
/// `hold_seconds`) installed and a sync of `then` started, one apply at a time, and
/// waited for until its request about the labelled ConfigMap is held.
pub(crate) fn start_held(
    cluster: &TestCluster,
    namespace: &str,
    app: &str,
    (first, then): (&str, &str),
    hold_seconds: u32,
) -> (GitFixture, SilentWebhook, Running) {
    let repo = GitFixture::new();
    repo.write("cms.yaml", first);
    repo.commit("first");
    let args = ["--app", app, "-n", namespace];
    let out = sync_cmd(cluster, &repo, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let webhook = SilentWebhook::new(cluster, namespace, hold_seconds);
    repo.write("cms.yaml", then);
    repo.commit("then");
    let calls = webhook.calls();
    let child = spawn(sync_cmd(cluster, &repo, &args));
    assert!(
        wait_for(Duration::from_secs(120), || webhook.calls() > calls),
        "the sync never reached the held ConfigMap"
    );
    (repo, webhook, child)
}

/// A spawned sync whose output is read as it comes: a preview larger than a pipe's
/// buffer would otherwise block it on a write while the test waits for it to end.
pub(crate) struct Running {
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl Running {
    fn id(&self) -> u32 {
        self.child.id()
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

fn spawn(mut cmd: Command) -> Running {
    let mut child = cmd
        .env("KUBECTL_GITOPS_CONCURRENCY", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

/// kubectl execs the plugin, so the child's pid is the plugin's.
pub(crate) fn interrupt(child: &Running) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT failed");
}

/// Waits for `running` to end within `limit`, and returns its output.
pub(crate) fn finish_within(mut running: Running, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let ended = wait_for(limit, || running.child.try_wait().unwrap().is_some());
    if !ended {
        let _ = running.child.kill();
    }
    let took = started.elapsed();
    let status = running.child.wait().unwrap();
    let out = Output {
        status,
        stdout: running.stdout.join().unwrap(),
        stderr: running.stderr.join().unwrap(),
    };
    assert!(ended, "still running after {limit:?}: {}", describe(&out));
    (out, took)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The Lease's holder, if the Lease exists.
pub(crate) fn lease_holder(cluster: &TestCluster, namespace: &str, app: &str) -> Option<String> {
    let out = cluster
        .kubectl()
        .args([
            "get",
            "lease",
            &format!("kubectl-gitops.{app}"),
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Release `revision` of `app` as release-history's JSON has it.
fn release(cluster: &TestCluster, namespace: &str, app: &str, revision: u32) -> serde_json::Value {
    let text = cluster.kubectl_ok(&[
        "release-history",
        app,
        &revision.to_string(),
        "-n",
        namespace,
        "-o",
        "json",
    ]);
    serde_json::from_str(&text).unwrap()
}

/// The ConfigMaps `cm-*` that exist.
fn synced_config_maps(cluster: &TestCluster, namespace: &str) -> usize {
    cluster
        .kubectl_ok(&["get", "configmaps", "-n", namespace, "-o", "name"])
        .lines()
        .filter(|l| l.starts_with("configmap/cm-"))
        .count()
}

/// After the interrupted release 2, release 3 deployed every one of the `count` ConfigMaps.
fn assert_converged(cluster: &TestCluster, namespace: &str, app: &str, count: usize) {
    assert_eq!(synced_config_maps(cluster, namespace), count);
    assert_eq!(
        cluster.release_statuses(namespace, app),
        vec![
            (1, "superseded".to_string()),
            (2, "failed".to_string()),
            (3, "deployed".to_string())
        ]
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A pid that names no process: a child that has exited and been waited for.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn sigint_mid_apply_finishes_the_request_in_flight_records_what_was_applied_and_frees_the_lock() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("int-apply");
    let n = ns.name.as_str();
    let args = ["--app", "many", "-n", n];
    // 300 more, one at a time; the apply of cm-150 is held by the webhook for 5 s.
    let (repo, webhook, child) = start_held(
        cluster,
        n,
        "many",
        (&config_maps(1, None), &config_maps(300, Some(150))),
        5,
    );
    interrupt(&child);
    let (out, _) = finish_within(child, Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(
        err.contains("interrupted: finishing the requests in flight"),
        "{err}"
    );

    // The apply in flight finished; nothing after it started.
    let existing = synced_config_maps(cluster, n);
    assert!(
        cluster
            .kubectl()
            .args(["get", "configmap", "cm-150", "-n", n])
            .output()
            .unwrap()
            .status
            .success(),
        "the apply in flight was not let finish"
    );
    assert!(existing < 300, "the sync did not stop: {existing} exist");
    let applied = existing - 1; // cm-000 was there before
    let record = release(cluster, n, "many", 2);
    assert_eq!(record["status"], "failed", "{record}");
    let error = record["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("interrupted while applying")
            && error.contains(&format!("applied {applied} object(s): ConfigMap "))
            && error.contains(&format!("not applied {} object(s): ", 299 - applied))
            && error.contains(" more"),
        "{error}"
    );
    assert!(err.contains(error), "the error is printed: {err}");
    assert_eq!(lease_holder(cluster, n, "many"), None, "the lock was left");

    // Drift says first that the latest release did not finish.
    let out = cluster
        .kubectl()
        .args(["drift", "many", "-n", n])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("app many's latest release 2 failed (started ")
            && text
                .lines()
                .next()
                .unwrap_or_default()
                .contains(": interrupted while applying"),
        "{}",
        describe(&out)
    );

    // The next sync starts at once and converges.
    webhook.delete(cluster);
    let out = sync_cmd(cluster, &repo, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        !stderr(&out).contains("being synced by"),
        "{}",
        describe(&out)
    );
    assert_converged(cluster, n, "many", 300);
}

#[test]
fn a_second_sigint_exits_at_once_and_the_next_sync_takes_the_dead_holders_lock_over() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("int-twice");
    let n = ns.name.as_str();
    let args = ["--app", "twice", "-n", n];
    // The apply of cm-001 is held for 20 s.
    let (repo, webhook, child) = start_held(
        cluster,
        n,
        "twice",
        (&config_maps(1, None), &config_maps(3, Some(1))),
        20,
    );
    let pid = child.id();
    interrupt(&child);
    // The first interrupt waits for the request in flight.
    std::thread::sleep(Duration::from_secs(1));
    interrupt(&child);
    let (out, took) = finish_within(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        stderr(&out).contains("interrupted again: stopping at once"),
        "{}",
        describe(&out)
    );
    // No cleanup: the lock and the pending record are left.
    let holder = lease_holder(cluster, n, "twice").unwrap_or_default();
    assert!(holder.ends_with(&format!(" pid {pid}")), "{holder:?}");
    assert_eq!(
        cluster.release_statuses(n, "twice"),
        vec![(1, "deployed".to_string()), (2, "pending".to_string())]
    );

    // Drift says first that the latest release is pending, in text and in JSON.
    let out = cluster
        .kubectl()
        .args(["drift", "twice", "-n", n])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "app twice's latest release 2 is pending (a sync is running or died; started "
        ),
        "{}",
        describe(&out)
    );
    let out = cluster
        .kubectl()
        .args(["drift", "twice", "-n", n, "-o", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["release"], 1, "{report}");
    assert_eq!(report["latest_release"]["release"], 2, "{report}");
    assert_eq!(report["latest_release"]["status"], "pending", "{report}");
    // And so does `--watch`, in its first round.
    let mut watch = cluster.kubectl();
    watch.args(["drift", "twice", "-n", n, "--watch", "--interval", "1s"]);
    let watching = spawn(watch);
    std::thread::sleep(Duration::from_secs(3));
    interrupt(&watching);
    let (out, _) = finish_within(watching, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches(
            "note: app twice's latest release 2 is pending (a sync is running or died; started "
        )
        .count(),
        1,
        "said once, not every round: {}",
        describe(&out)
    );

    // The holder is gone: the next sync takes the lock over at once and says so.
    webhook.delete(cluster);
    let out = sync_cmd(cluster, &repo, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "took over the lock of app twice from {holder}, which is no longer running"
        )),
        "{}",
        describe(&out)
    );
    assert_eq!(lease_holder(cluster, n, "twice"), None);
    assert_converged(cluster, n, "twice", 3);
}

#[test]
fn sigint_while_planning_gives_the_lock_up_and_writes_nothing() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("int-plan");
    let n = ns.name.as_str();
    // cm-001 changes, so the plan dry-runs it: the webhook holds that dry run for 20 s.
    let first = config_maps(3, Some(1));
    let changed = first.replace("value: \"1\"", "value: \"changed\"");
    let (_repo, _webhook, child) = start_held(cluster, n, "plan", (&first, &changed), 20);
    interrupt(&child);
    let (out, took) = finish_within(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        stderr(&out).contains("error: interrupted before anything was changed"),
        "{}",
        describe(&out)
    );
    assert_eq!(lease_holder(cluster, n, "plan"), None, "the lock was left");
    assert_eq!(
        cluster.release_statuses(n, "plan"),
        vec![(1, "deployed".to_string())]
    );
    let live = cluster.kubectl_ok(&["get", "configmap", "cm-001", "-n", n, "-o", "json"]);
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["data"]["value"], "1", "{live}");
}

#[test]
fn a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once_and_no_other() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("int-stale");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("cms.yaml", &config_maps(2, None));
    repo.commit("two");
    let args = ["--app", "stale", "-n", n];
    let host = hostname();
    let now = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let lease = |holder: &str| {
        format!(
            "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: kubectl-gitops.stale
spec:
  holderIdentity: \"{holder}\"
  leaseDurationSeconds: 3600
  acquireTime: \"{now}\"
  renewTime: \"{now}\"
",
            now = now.trim()
        )
    };
    let dead = dead_pid();

    // A live process of this host (this test), or any process of another host, may be a
    // sync: refused, naming it.
    for holder in [
        format!("alice@{host} pid {}", std::process::id()),
        format!("alice@elsewhere-{host} pid {dead}"),
    ] {
        cluster.apply_yaml(n, &lease(&holder));
        let out = sync_cmd(cluster, &repo, &args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            stderr(&out).contains(&format!("app stale is being synced by {holder}")),
            "{}",
            describe(&out)
        );
        assert_eq!(synced_config_maps(cluster, n), 0);
    }

    // A process of this host that is gone: taken over at once, saying so.
    let holder = format!("alice@{host} pid {dead}");
    cluster.apply_yaml(n, &lease(&holder));
    let out = sync_cmd(cluster, &repo, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "took over the lock of app stale from {holder}, which is no longer running"
        )),
        "{}",
        describe(&out)
    );
    assert_eq!(synced_config_maps(cluster, n), 2);
    assert_eq!(lease_holder(cluster, n, "stale"), None);
    assert_eq!(
        cluster.release_statuses(n, "stale"),
        vec![(1, "deployed".to_string())]
    );
}
