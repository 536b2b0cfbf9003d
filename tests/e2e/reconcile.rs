//! `kubectl sync --reconcile`: replicas as processes on this machine, each with a
//! ServiceAccount's kubeconfig, following a repository's app list. What they did is read
//! from the cluster: release records, objects, Events, the Lease, the audit log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubectl_gitops_tests::{
    GitFixture, ServiceAccountUser, TestCluster, TestNamespace, plugin_dir,
};
use serde_json::Value;

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n")
}

/// A Deployment whose pods no node takes: it never becomes healthy, so a sync of it waits
/// (up to the app's timeout) with its record pending.
fn unschedulable(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    \
         spec:\n      nodeSelector: {{type: nowhere}}\n      containers:\n      - name: app\n        image: nginx:1.27\n"
    )
}

/// The same Deployment, schedulable on the kwok nodes.
fn schedulable(name: &str) -> String {
    unschedulable(name).replace("type: nowhere", "type: kwok")
}

/// A repository whose app list holds `apps` (name, extra YAML of the entry), each app's
/// manifests under apps/<name>/, all in `namespace`.
fn app_list(namespace: &str, apps: &[(&str, &str)]) -> String {
    let mut text = String::from("apps:\n");
    for (name, extra) in apps {
        text.push_str(&format!(
            "- name: {name}\n  path: apps/{name}\n  namespace: {namespace}\n{extra}"
        ));
    }
    text
}

/// ServiceAccounts that may do anything in `namespace` and nothing elsewhere.
fn replica_users(
    cluster: &TestCluster,
    ns: &TestNamespace,
    names: &[&str],
) -> Vec<ServiceAccountUser> {
    cluster.apply_yaml(
        &ns.name,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: reconciler\nrules:\n\
         - apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n",
    );
    names
        .iter()
        .map(|name| {
            let user = cluster.service_account_user(&ns.name, name);
            cluster.kubectl_ok(&[
                "create",
                "rolebinding",
                &format!("reconciler-{name}"),
                "--role=reconciler",
                &format!("--serviceaccount={}:{name}", ns.name),
                "-n",
                &ns.name,
            ]);
            user
        })
        .collect()
}

/// One replica: `kubectl-sync --reconcile` following `repo`'s main branch, its JSON log
/// kept in a file. Killed when dropped.
struct Replica {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Rounds every second, endpoints on a free port, unless `extra` says otherwise.
    fn start(kubeconfig: &Path, namespace: &str, repo: &Path, extra: &[&str]) -> Replica {
        let dir = tempfile::Builder::new()
            .prefix("kubectl-gitops-replica")
            .tempdir()
            .unwrap();
        let log = dir.path().join("log.jsonl");
        let url = format!("file://{}", repo.display());
        let child = Command::new(plugin_dir().join("kubectl-sync"))
            .args([
                "--reconcile",
                "main",
                "--repo",
                &url,
                "--leader-lease",
                "3s",
                "--leader-namespace",
                namespace,
            ])
            .args(extra)
            .args(if extra.contains(&"--interval") {
                &[][..]
            } else {
                &["--interval", "1s"][..]
            })
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir.path())
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HELM", TestCluster::get().helm_path())
            .env("KUBECTL", TestCluster::get().kubectl_path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Replica {
            child,
            log,
            _dir: dir,
        }
    }

    /// Its log lines so far, each checked to be one JSON object.
    fn lines(&self) -> Vec<Value> {
        let file = std::fs::File::open(&self.log).unwrap();
        BufReader::new(file)
            .lines()
            .map(|line| {
                let line = line.unwrap();
                serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// The lines saying `msg` about `app`.
    fn said(&self, msg: &str, app: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["msg"] == msg && l["app"] == app)
            .collect()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.with_file_name("stderr")).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to `limit` for `done`, failing with `what` and the replicas' logs.
fn wait_for(limit: Duration, what: &str, replicas: &[&Replica], mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs: Vec<String> = replicas
        .iter()
        .map(|r| {
            format!(
                "{}\n{}",
                std::fs::read_to_string(&r.log).unwrap_or_default(),
                r.stderr()
            )
        })
        .collect();
    panic!(
        "timed out waiting for {what}; replicas said:\n{}",
        logs.join("\n---\n")
    );
}

fn deployed(cluster: &TestCluster, ns: &str, app: &str) -> Vec<u32> {
    cluster
        .release_statuses(ns, app)
        .into_iter()
        .filter(|(_, status)| status == "deployed")
        .map(|(revision, _)| revision)
        .collect()
}

fn resource_version(cluster: &TestCluster, ns: &str, what: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        what,
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
}

fn events(cluster: &TestCluster, ns: &str, parent: &str, reason: &str) -> usize {
    cluster
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={parent},reason={reason}"),
            "-o",
            "name",
        ])
        .lines()
        .count()
}

/// The successful writes (dry runs left out) our plugins made in `namespace` since
/// `offset`, as the API server's audit log has them.
fn writes_since(cluster: &TestCluster, offset: u64, namespace: &str) -> Vec<Value> {
    cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| {
            e["objectRef"]["namespace"] == namespace
                && matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| c < 300)
                && !e["requestURI"].as_str().unwrap_or("").contains("dryRun")
        })
        .collect()
}

/// When each user's first and last of `writes` were made.
fn spans<'a>(
    writes: impl IntoIterator<Item = &'a Value>,
) -> std::collections::BTreeMap<String, (String, String)> {
    let mut spans: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for write in writes {
        let user = write["user"]["username"].as_str().unwrap().to_string();
        let at = write["stageTimestamp"].as_str().unwrap().to_string();
        let span = spans
            .entry(user)
            .or_insert_with(|| (at.clone(), at.clone()));
        span.0 = span.0.clone().min(at.clone());
        span.1 = span.1.clone().max(at);
    }
    spans
}

#[test]
fn the_reconciler_syncs_every_app_then_only_the_one_a_commit_changes() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile");
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(&ns.name, &[("a", ""), ("b", ""), ("c", "")]),
    );
    for app in ["a", "b", "c"] {
        repo.write(&format!("apps/{app}/cm.yaml"), &config_map(app, "one"));
    }
    repo.write("README.md", "apps\n");
    repo.commit("three apps");
    let users = replica_users(cluster, &ns, &["r0"]);
    // Credentials as a mounted Secret holds them: git gets them, the log never shows them.
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("token"), "canary-git-token-5f3a").unwrap();
    let replica = Replica::start(
        &users[0].kubeconfig,
        &ns.name,
        repo.path(),
        &["--git-credentials", credentials.path().to_str().unwrap()],
    );
    wait_for(
        Duration::from_secs(60),
        "every app deployed",
        &[&replica],
        || {
            ["a", "b", "c"]
                .iter()
                .all(|app| deployed(cluster, &ns.name, app) == [1])
        },
    );
    let untouched: Vec<String> = ["a", "c"]
        .iter()
        .map(|app| resource_version(cluster, &ns.name, &format!("secret/{app}.r1")))
        .collect();

    // A commit that changes b, and one file outside every app.
    repo.write("apps/b/cm.yaml", &config_map("b", "two"));
    repo.write("README.md", "apps, changed\n");
    let commit = repo.commit("b: two");
    wait_for(
        Duration::from_secs(30),
        "b's second release",
        &[&replica],
        || deployed(cluster, &ns.name, "b") == [2],
    );
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "configmap",
            "b",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.value}"
        ]),
        "two"
    );
    // Several rounds later a and c were not synced again: no release, no record rewritten.
    std::thread::sleep(Duration::from_secs(3));
    for (app, version) in ["a", "c"].iter().zip(&untouched) {
        assert_eq!(
            cluster.release_statuses(&ns.name, app),
            [(1, "deployed".to_string())]
        );
        assert_eq!(
            &resource_version(cluster, &ns.name, &format!("secret/{app}.r1")),
            version,
            "app {app}'s record was written again"
        );
    }
    // The log says so, one JSON line per event; the release names the commit.
    let synced = replica.said("synced", "b");
    assert_eq!(synced.len(), 2, "{synced:?}");
    assert_eq!(synced[1]["release"], 2);
    assert_eq!(synced[1]["commit"], commit[..7]);
    assert_eq!(replica.said("synced", "a").len(), 1);
    assert!(replica.lines().iter().any(|l| l["msg"] == "leading"));
    // An Event on b's ApplySet parent for each sync.
    assert_eq!(events(cluster, &ns.name, "b.applyset", "Synced"), 2);
    let said = format!(
        "{}{}",
        std::fs::read_to_string(&replica.log).unwrap(),
        replica.stderr()
    );
    assert!(!said.contains("canary-git-token"), "{said}");
}

#[test]
fn a_leader_killed_mid_sync_is_replaced_and_every_app_converges() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile-ha");
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(
            &ns.name,
            &[("a", ""), ("b", ""), ("slow", "  timeout: 2m\n")],
        ),
    );
    repo.write("apps/a/cm.yaml", &config_map("a", "one"));
    repo.write("apps/b/cm.yaml", &config_map("b", "one"));
    repo.write("apps/slow/deploy.yaml", &unschedulable("slow"));
    repo.commit("three apps, one never healthy");
    let users = replica_users(cluster, &ns, &["r0", "r1", "r2"]);
    let offset = cluster.audit_offset();
    let mut replicas: Vec<Replica> = users
        .iter()
        .map(|user| Replica::start(&user.kubeconfig, &ns.name, repo.path(), &[]))
        .collect();
    let all: Vec<&Replica> = replicas.iter().collect();
    // The leader syncs "slow" and waits for it to become healthy, its record pending.
    wait_for(
        Duration::from_secs(60),
        "slow's sync waiting for health",
        &all,
        || cluster.release_statuses(&ns.name, "slow") == [(1, "pending".to_string())],
    );
    let holder = cluster.kubectl_ok(&[
        "get",
        "lease",
        "kubectl-gitops-reconciler",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    let leader = replicas
        .iter()
        .position(|r| holder.ends_with(&format!(" pid {}", r.pid())))
        .unwrap_or_else(|| panic!("no replica holds the lease: {holder}"));
    replicas[leader].kill();
    let killed = Instant::now();
    // The fix lands meanwhile: the next leader syncs it.
    repo.write("apps/slow/deploy.yaml", &schedulable("slow"));
    repo.commit("slow: schedulable");

    let all: Vec<&Replica> = replicas.iter().collect();
    wait_for(
        Duration::from_secs(60),
        "slow deployed by the next leader",
        &all,
        || !deployed(cluster, &ns.name, "slow").is_empty(),
    );
    let took_over = killed.elapsed();
    let statuses = cluster.release_statuses(&ns.name, "slow");
    assert_eq!(statuses[0], (1, "failed".to_string()), "{statuses:?}");
    assert!(
        statuses.iter().any(|(_, s)| s == "deployed"),
        "{statuses:?}"
    );
    for app in ["a", "b"] {
        assert_eq!(deployed(cluster, &ns.name, app).len(), 1, "app {app}");
    }
    let new_holder = cluster.kubectl_ok(&[
        "get",
        "lease",
        "kubectl-gitops-reconciler",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_ne!(new_holder, holder);
    // Within the lease (3 s), a round, and the sync itself.
    assert!(took_over < Duration::from_secs(45), "{took_over:?}");

    // No two replicas wrote at once: each one's successful writes form one span, and the
    // spans do not overlap.
    let spans = spans(&writes_since(cluster, offset, &ns.name));
    assert!(spans.len() >= 2, "{spans:?}");
    let mut ordered: Vec<&(String, String)> = spans.values().collect();
    ordered.sort();
    for pair in ordered.windows(2) {
        assert!(
            pair[0].1 < pair[1].0,
            "two replicas wrote at once: {spans:?}"
        );
    }
}

#[test]
fn a_failing_app_backs_off_while_the_others_sync_and_drift_is_healed() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile-heal");
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(&ns.name, &[("good", "  self_heal: true\n"), ("broken", "")]),
    );
    repo.write("apps/good/cm.yaml", &config_map("good", "one"));
    repo.write(
        "apps/broken/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    );
    repo.commit("a good app and a broken one");
    let users = replica_users(cluster, &ns, &["r0"]);
    let replica = Replica::start(
        &users[0].kubeconfig,
        &ns.name,
        repo.path(),
        &["--backoff", "1s", "--max-backoff", "4s"],
    );
    wait_for(
        Duration::from_secs(60),
        "good deployed",
        &[&replica],
        || deployed(cluster, &ns.name, "good") == [1],
    );
    // Someone edits the self-healing app's object: the next round puts it back.
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "good",
        "-n",
        &ns.name,
        "--type=merge",
        "-p",
        r#"{"data":{"value":"edited"}}"#,
    ]);
    wait_for(
        Duration::from_secs(30),
        "the edit healed",
        &[&replica],
        || {
            cluster.kubectl_ok(&[
                "get",
                "configmap",
                "good",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.value}",
            ]) == "one"
        },
    );
    wait_for(
        Duration::from_secs(10),
        "the heal's release",
        &[&replica],
        || deployed(cluster, &ns.name, "good") == [2],
    );
    assert_eq!(replica.said("healed", "good").len(), 1);
    assert_eq!(events(cluster, &ns.name, "good.applyset", "Healed"), 1);

    // The broken app failed, each time waiting twice as long, up to the cap...
    wait_for(
        Duration::from_secs(30),
        "four failures of broken",
        &[&replica],
        || replica.said("sync failed", "broken").len() >= 4,
    );
    let waits: Vec<u64> = replica
        .said("sync failed", "broken")
        .iter()
        .map(|l| l["retry_in_seconds"].as_u64().unwrap())
        .collect();
    assert_eq!(waits[..4], [1, 2, 4, 4], "{waits:?}");
    let error = replica.said("sync failed", "broken")[0]["error"].to_string();
    assert!(error.contains("apps/broken/cm.yaml"), "{error}");
    // ...while a commit to the good app is synced at once.
    repo.write("apps/good/cm.yaml", &config_map("good", "two"));
    repo.commit("good: two");
    wait_for(
        Duration::from_secs(20),
        "good's third release",
        &[&replica],
        || deployed(cluster, &ns.name, "good") == [3],
    );
    assert!(cluster.release_statuses(&ns.name, "broken").is_empty());
}

/// One HTTP/1.1 request to the replica's endpoints: (status, body).
fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_signed_push_starts_a_round_at_once_and_the_endpoints_answer() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile-hook");
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(&ns.name, &[("a", ""), ("b", "")]),
    );
    repo.write("apps/a/cm.yaml", &config_map("a", "one"));
    repo.write("apps/b/cm.yaml", &config_map("b", "one"));
    repo.commit("two apps");
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "hook-secret-9c1e\n").unwrap();
    let users = replica_users(cluster, &ns, &["r0"]);
    // Rounds an hour apart: only the webhook can start the next one.
    let replica = Replica::start(
        &users[0].kubeconfig,
        &ns.name,
        repo.path(),
        &[
            "--interval",
            "1h",
            "--listen",
            "127.0.0.1:0",
            "--webhook-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    wait_for(
        Duration::from_secs(60),
        "both apps deployed",
        &[&replica],
        || deployed(cluster, &ns.name, "a") == [1] && deployed(cluster, &ns.name, "b") == [1],
    );
    let started = replica
        .lines()
        .into_iter()
        .find(|l| l["msg"] == "started")
        .unwrap();
    let address = started["listen"].as_str().unwrap().to_string();
    assert_eq!(
        http(&address, "GET", "/healthz", &[], ""),
        (200, "ok\n".to_string())
    );
    wait_for(Duration::from_secs(10), "ready", &[&replica], || {
        http(&address, "GET", "/readyz", &[], "").0 == 200
    });

    repo.write("apps/b/cm.yaml", &config_map("b", "two"));
    repo.commit("b: two");
    let payload = r#"{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}"#;
    // A forged signature is refused, and changes nothing.
    let forged = gitops::reconcile::webhook::signature(b"not-the-secret", payload.as_bytes());
    let (status, _) = http(
        &address,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &forged),
            ("Content-Type", "application/json"),
        ],
        payload,
    );
    assert_eq!(status, 401);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(deployed(cluster, &ns.name, "b"), [1]);
    assert!(
        replica
            .lines()
            .iter()
            .any(|l| l["msg"] == "webhook refused")
    );

    let signed = gitops::reconcile::webhook::signature(b"hook-secret-9c1e", payload.as_bytes());
    let pushed = Instant::now();
    let (status, _) = http(
        &address,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &signed),
            ("Content-Type", "application/json"),
        ],
        payload,
    );
    assert!((200..300).contains(&status), "{status}");
    wait_for(
        Duration::from_secs(20),
        "b synced after the push",
        &[&replica],
        || deployed(cluster, &ns.name, "b") == [2],
    );
    assert!(
        pushed.elapsed() < Duration::from_secs(10),
        "{:?}",
        pushed.elapsed()
    );
    assert_eq!(deployed(cluster, &ns.name, "a"), [1]);

    let (status, metrics) = http(&address, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    for line in [
        "kubectl_gitops_syncs_total{app=\"b\",outcome=\"synced\"} 2",
        "kubectl_gitops_syncs_total{app=\"a\",outcome=\"synced\"} 1",
        "kubectl_gitops_leader 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("kubectl_gitops_sync_duration_seconds_bucket{app=\"b\""),
        "{metrics}"
    );
    // The secret never appears in the log.
    let said = std::fs::read_to_string(&replica.log).unwrap();
    assert!(!said.contains("hook-secret"), "{said}");
}

#[test]
fn an_app_waits_for_the_apps_it_depends_on_and_starts_once_they_deployed() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile-deps");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(n, &[("db", ""), ("web", "  depends_on: [db]\n")]),
    );
    // db cannot render (a ConfigMap without a name): it fails, and web must not start.
    repo.write(
        "apps/db/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    );
    repo.write("apps/web/cm.yaml", &config_map("web", "one"));
    repo.commit("web depends on a broken db");
    let users = replica_users(cluster, &ns, &["r0"]);
    let replica = Replica::start(
        &users[0].kubeconfig,
        n,
        repo.path(),
        &["--backoff", "1s", "--max-backoff", "2s"],
    );
    wait_for(
        Duration::from_secs(60),
        "db failed twice",
        &[&replica],
        || replica.said("sync failed", "db").len() >= 2,
    );
    let waiting = replica.said("waiting for a dependency", "web");
    assert!(!waiting.is_empty(), "{:?}", replica.lines());
    assert!(
        waiting
            .iter()
            .all(|l| l["reason"].as_str().unwrap().contains("db")
                && l["reason"].as_str().unwrap().contains("failed")),
        "{waiting:?}"
    );
    assert!(cluster.release_statuses(n, "web").is_empty());
    assert!(replica.said("synced", "web").is_empty());

    // db fixed: db first, then web, as the cluster saw it.
    let offset = cluster.audit_offset();
    repo.write("apps/db/cm.yaml", &config_map("db", "one"));
    repo.commit("db: named");
    wait_for(Duration::from_secs(60), "web deployed", &[&replica], || {
        deployed(cluster, n, "web") == [1]
    });
    assert_eq!(deployed(cluster, n, "db"), [1]);
    let writes: Vec<(String, String)> = writes_since(cluster, offset, n)
        .into_iter()
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e["objectRef"]["resource"].as_str().unwrap_or(""),
                    e["objectRef"]["name"].as_str().unwrap_or("")
                ),
                e["stageTimestamp"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let last_db = writes
        .iter()
        .filter(|(what, _)| what == "secrets/db.r1" || what == "configmaps/db")
        .map(|(_, at)| at.clone())
        .max()
        .expect("db's writes");
    let first_web = writes
        .iter()
        .filter(|(what, _)| what == "configmaps/web")
        .map(|(_, at)| at.clone())
        .min()
        .expect("web's writes");
    assert!(
        last_db < first_web,
        "web was written ({first_web}) before db's release was finished ({last_db}): {writes:?}"
    );
}

#[test]
fn an_app_on_another_cluster_is_synced_with_the_kubeconfig_its_cluster_secret_holds() {
    let cluster = TestCluster::get();
    let home = cluster.namespace("reconcile-home");
    let edge = cluster.namespace("reconcile-edge");
    // The other cluster is this API server reached as another account, which may write
    // only in its namespace: what lands there was written with the Secret's credentials.
    let edge_user = replica_users(cluster, &edge, &["edge-deployer"]).remove(0);
    let kubeconfig = std::fs::read_to_string(&edge_user.kubeconfig)
        .unwrap()
        .replace("edge-deployer@test", "edge");
    let token_line = kubeconfig
        .lines()
        .find(|l| l.trim_start().starts_with("token: "))
        .unwrap()
        .trim()
        .to_string();
    let users = replica_users(cluster, &home, &["r0"]);
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n\
             - {{name: local, path: apps/local, namespace: {h}}}\n\
             - {{name: remote, path: apps/remote, namespace: {e}, contexts: [edge]}}\n",
            h = home.name,
            e = edge.name
        ),
    );
    repo.write("apps/local/cm.yaml", &config_map("local", "one"));
    repo.write("apps/remote/cm.yaml", &config_map("remote", "one"));
    repo.commit("an app here and one on the edge cluster");
    let replica = Replica::start(
        &users[0].kubeconfig,
        &home.name,
        repo.path(),
        &["--backoff", "1s", "--max-backoff", "2s"],
    );
    // No Secret defines the context yet: the app fails saying so, the other syncs.
    wait_for(
        Duration::from_secs(60),
        "local deployed and remote failed",
        &[&replica],
        || {
            deployed(cluster, &home.name, "local") == [1]
                && !replica.said("sync failed", "remote").is_empty()
        },
    );
    let error = replica.said("sync failed", "remote")[0]["error"].to_string();
    assert!(error.contains("\\\"edge\\\" does not exist"), "{error}");

    // The cluster's Secret, labelled: from the next round on, the app goes there.
    let offset = cluster.audit_offset();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &kubeconfig).unwrap();
    let add_secret = |name: &str| {
        cluster.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            &home.name,
            &format!("--from-file=kubeconfig={}", file.path().display()),
        ]);
        cluster.kubectl_ok(&[
            "label",
            "secret",
            name,
            "-n",
            &home.name,
            "kubectl-gitops.io/secret-type=cluster",
        ]);
    };
    add_secret("edge-cluster");
    wait_for(
        Duration::from_secs(60),
        "remote deployed on the edge cluster",
        &[&replica],
        || deployed(cluster, &edge.name, "remote") == [1],
    );
    let writers: std::collections::BTreeSet<String> = cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| e["objectRef"]["namespace"] == edge.name.as_str())
        .filter(|e| matches!(e["verb"].as_str(), Some("create" | "patch" | "update")))
        .map(|e| e["user"]["username"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        writers.into_iter().collect::<Vec<_>>(),
        [edge_user.username()]
    );

    // Two Secrets for one context: which cluster is never a guess.
    add_secret("edge-again");
    repo.write("apps/remote/cm.yaml", &config_map("remote", "two"));
    repo.commit("remote: two");
    wait_for(
        Duration::from_secs(60),
        "remote refused",
        &[&replica],
        || {
            replica.said("sync failed", "remote").iter().any(|l| {
                l["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("several cluster Secrets")
            })
        },
    );
    assert_eq!(deployed(cluster, &edge.name, "remote"), [1]);
    // The Secret's token is in no log line.
    let log = std::fs::read_to_string(&replica.log).unwrap() + &replica.stderr();
    assert!(!log.contains(token_line.trim_start_matches("token: ")));
}

#[test]
fn a_persons_sync_and_the_reconcilers_never_interleave_and_the_history_shows_both() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile-person");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(n, &[("shared", "  wait: false\n")]),
    );
    repo.write("apps/shared/cm.yaml", &config_map("shared", "one"));
    repo.write("apps/shared/deploy.yaml", &unschedulable("shared"));
    repo.commit("an app a person syncs by hand too");
    let offset = cluster.audit_offset();
    // A person's sync that waits for health (it never comes), holding the app's lock.
    let mut person = cluster
        .kubectl()
        .args([
            "sync",
            "HEAD",
            "--app",
            "shared",
            "--wait=true",
            "--timeout",
            "15s",
        ])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the person's sync under way",
        &[],
        || cluster.release_statuses(n, "shared") == [(1, "pending".to_string())],
    );
    let users = replica_users(cluster, &ns, &["r0"]);
    let replica = Replica::start(&users[0].kubeconfig, n, repo.path(), &[]);
    wait_for(
        Duration::from_secs(30),
        "the reconciler waiting for the person's sync",
        &[&replica],
        || {
            !replica
                .said("waiting for another sync", "shared")
                .is_empty()
        },
    );
    let person_exit = person.wait().unwrap();
    assert!(
        !person_exit.success(),
        "the person's sync cannot become healthy"
    );
    wait_for(
        Duration::from_secs(60),
        "the reconciler's release",
        &[&replica],
        || deployed(cluster, n, "shared") == [2],
    );
    assert_eq!(
        cluster.release_statuses(n, "shared"),
        [(1, "failed".to_string()), (2, "deployed".to_string())]
    );
    // Who made each: the person (the admin kubeconfig's user), then the reconciler (its).
    let history: Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "release-history",
        "shared",
        "-n",
        n,
        "-o",
        "json",
    ]))
    .unwrap();
    let who: Vec<(u64, &str)> = history["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["who"].as_str().unwrap()))
        .collect();
    assert_eq!(who, [(2, "r0"), (1, "admin")]);

    // From the audit log: every write of the reconciler's came after the person's last.
    let writes = writes_since(cluster, offset, n);
    let spans = spans(writes.iter().filter(|write| {
        write["objectRef"]["resource"] != "events"
            // The replicas' leader Lease is theirs alone.
            && write["objectRef"]["name"] != "kubectl-gitops-reconciler"
    }));
    let reconciler = &spans[&users[0].username()];
    let person = spans
        .iter()
        .find(|(user, _)| **user != users[0].username())
        .map(|(_, span)| span)
        .expect("the person's writes");
    assert!(person.1 < reconciler.0, "the syncs interleaved: {spans:?}");
}

#[test]
fn a_tenants_app_is_synced_by_the_reconciler_as_its_account_which_is_all_the_reconciler_may_do_there()
 {
    let cluster = TestCluster::get();
    let home = cluster.namespace("reconcile-tenant-home");
    let team = cluster.namespace("reconcile-tenant-team");
    let (h, t) = (home.name.as_str(), team.name.as_str());
    // The team's account: the documented sync Role, and Events, in its namespace.
    let mut role = crate::rbac::documented_role("sync");
    let rules = role["rules"].as_sequence_mut().unwrap();
    rules.push(
        serde_yaml_ng::from_str("{apiGroups: [''], resources: [events], verbs: [create]}").unwrap(),
    );
    let deployer = crate::rbac::user_with_role(cluster, t, "deployer", role);
    // The reconciler may do anything in its own namespace and, in the team's, nothing
    // but act as the team's accounts.
    let users = replica_users(cluster, &home, &["r0"]);
    cluster.apply_yaml(
        t,
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: act-as-team}}\n\
             rules: [{{apiGroups: [''], resources: [serviceaccounts], verbs: [impersonate]}}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: act-as-team}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: act-as-team}}\n\
             subjects: [{{kind: ServiceAccount, name: r0, namespace: {h}}}]\n"
        ),
    );
    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n- {{name: shop, path: apps/shop, namespace: {t}, service_account: deployer, self_heal: true}}\n"
        ),
    );
    repo.write("apps/shop/cm.yaml", &config_map("shop", "one"));
    repo.commit("a team's app");
    let offset = cluster.audit_offset();
    let replica = Replica::start(&users[0].kubeconfig, h, repo.path(), &[]);
    wait_for(
        Duration::from_secs(60),
        "the team's app deployed",
        &[&replica],
        || deployed(cluster, t, "shop") == [1],
    );
    wait_for(Duration::from_secs(20), "its Event", &[&replica], || {
        events(cluster, t, "shop.applyset", "Synced") == 1
    });
    // Every request in the team's namespace was the reconciler acting as the account.
    let acting: std::collections::BTreeSet<String> = cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| e["objectRef"]["namespace"] == t)
        .map(|e| {
            format!(
                "{} as {}",
                e["user"]["username"].as_str().unwrap_or(""),
                e["impersonatedUser"]["username"]
                    .as_str()
                    .unwrap_or("nobody")
            )
        })
        .collect();
    assert_eq!(
        acting.into_iter().collect::<Vec<_>>(),
        [format!(
            "{} as {}",
            users[0].username(),
            deployer.username()
        )]
    );
    assert!(
        replica.lines().iter().all(|l| l["level"] != "error"),
        "{:?}",
        replica.lines()
    );
}

#[test]
fn the_reconciler_never_takes_over_an_object_another_app_owns() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("reconcile-owned");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    // Both apps hold one ConfigMap; the second starts once the first has it.
    repo.write(
        ".kubectl-gitops.yaml",
        &app_list(n, &[("first", ""), ("second", "  depends_on: [first]\n")]),
    );
    repo.write("apps/first/cm.yaml", &config_map("shared", "first's"));
    repo.write("apps/second/cm.yaml", &config_map("shared", "second's"));
    repo.commit("two apps claim one ConfigMap");
    let users = replica_users(cluster, &ns, &["r0"]);
    let replica = Replica::start(&users[0].kubeconfig, n, repo.path(), &[]);
    wait_for(
        Duration::from_secs(60),
        "second refused",
        &[&replica],
        || !replica.said("sync failed", "second").is_empty(),
    );
    let error = replica.said("sync failed", "second")[0]["error"].to_string();
    let first = cluster.kubectl_ok(&[
        "get",
        "secret",
        "first.applyset",
        "-n",
        n,
        "-o",
        "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/id}",
    ]);
    assert!(
        error.contains(&format!("ConfigMap {n}/shared belongs to ApplySet {first}")),
        "{error}"
    );
    // As the cluster has it: the first app's value, its field manager, no record of the
    // second app.
    assert_eq!(deployed(cluster, n, "first"), [1]);
    let value = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "shared",
        "-n",
        n,
        "-o",
        "jsonpath={.data.value}",
    ]);
    assert_eq!(value, "first's");
    let offset = cluster.audit_offset();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        writes_since(cluster, offset, n)
            .iter()
            .all(|w| w["objectRef"]["name"] != "shared"),
        "the ConfigMap was written again"
    );
    assert!(cluster.release_statuses(n, "second").is_empty());
}
