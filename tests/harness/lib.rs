//! Test helpers for the end-to-end suite: the control plane started by
//! `tests/cluster/cluster.sh` (via `tests/run.sh`), per-test namespaces, the real kubectl
//! running our plugins through its plugin discovery, and git fixture repositories.
#![allow(clippy::unwrap_used)] // test code: a failed setup step should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod charts;
pub mod fixture;
pub mod private;
pub mod record;
pub mod users;
pub mod web;

pub use fixture::GitFixture;
pub use private::PrivateCluster;
pub use users::ServiceAccountUser;

/// The running test control plane.
pub struct TestCluster {
    pub admin_kubeconfig: PathBuf,
    pub viewer_kubeconfig: PathBuf,
    pub bin: PathBuf,
    pub state: PathBuf,
}

impl TestCluster {
    /// The control plane of this test run. Fails (never skips) when the suite was not
    /// started through `tests/run.sh`, which starts it.
    pub fn get() -> &'static TestCluster {
        static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let var = |name: &str| -> PathBuf {
                std::env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
                    panic!(
                        "{name} is not set: these tests need the real control plane; run them with `bash tests/run.sh`"
                    )
                })
            };
            TestCluster {
                admin_kubeconfig: var("KUBECTL_GITOPS_TEST_KUBECONFIG"),
                viewer_kubeconfig: var("KUBECTL_GITOPS_TEST_VIEWER_KUBECONFIG"),
                bin: var("KUBECTL_GITOPS_TEST_BIN"),
                state: var("KUBECTL_GITOPS_TEST_STATE"),
            }
        })
    }

    pub fn kubectl_path(&self) -> PathBuf {
        self.bin.join("kubectl")
    }

    /// The helm that build.sh built: our plugins render charts with it (`$HELM`).
    pub fn helm_path(&self) -> PathBuf {
        self.bin.join("helm")
    }

    /// The real kubectl as admin, with our plugins on PATH and a private HOME.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.kubectl_path());
        cmd.env("KUBECONFIG", &self.admin_kubeconfig)
            .env("HELM", self.helm_path());
        isolate(&mut cmd);
        cmd
    }

    /// `kubectl <plugin> <args>` as admin in `repo`'s working tree, with no terminal on
    /// stdin (so a sync asks nothing).
    pub fn plugin_in(&self, repo: &GitFixture, plugin: &str, args: &[&str]) -> Output {
        self.kubectl()
            .arg(plugin)
            .args(args)
            .current_dir(repo.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs kubectl as admin and returns stdout, failing the test on a non-zero exit.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl().args(args).output().unwrap();
        assert_success(&format!("kubectl {}", args.join(" ")), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies YAML with the real kubectl (server-side, so no last-applied annotation).
    pub fn apply_yaml(&self, namespace: &str, yaml: &str) {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args([
                "apply",
                "--server-side",
                "--field-manager=test-setup",
                "-n",
                namespace,
                "-f",
                "-",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_success("kubectl apply", &out);
    }

    /// Where the API server's audit log ends now: pass it to [`TestCluster::our_requests_since`].
    pub fn audit_offset(&self) -> u64 {
        std::fs::metadata(self.state.join("logs/audit.log"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The requests our plugins (User-Agent `kubectl-gitops/`) made in `namespace` since
    /// `offset`, as `verb resource` (`patch(dry-run) configmaps`, `list secrets`, ...).
    pub fn our_requests_since(&self, offset: u64, namespace: &str) -> Vec<String> {
        self.our_audit_events_since(offset)
            .iter()
            .filter(|event| event["objectRef"]["namespace"] == namespace)
            .map(describe_request)
            .collect()
    }

    /// Every audit event (stage ResponseComplete) of our plugins since `offset`, for
    /// tests that look at more than one namespace's requests.
    pub fn our_audit_events_since(&self, offset: u64) -> Vec<serde_json::Value> {
        use std::io::{BufRead, Seek};
        // The audit log is written as requests complete; give the last one a moment.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut file = std::fs::File::open(self.state.join("logs/audit.log")).unwrap();
        file.seek(std::io::SeekFrom::Start(offset)).unwrap();
        let mut out = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else {
                continue;
            };
            let ours = event["userAgent"]
                .as_str()
                .is_some_and(|a| a.starts_with("kubectl-gitops/"));
            if ours && event["stage"] == "ResponseComplete" {
                out.push(event);
            }
        }
        out
    }

    /// The statuses of an app's release records by revision, read with kubectl.
    pub fn release_statuses(&self, namespace: &str, app: &str) -> Vec<(u32, String)> {
        let text = self.kubectl_ok(&[
            "get",
            "secrets",
            "-n",
            namespace,
            "-l",
            &format!("kubectl-gitops.io/app={app}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.labels.kubectl-gitops\\.io/revision} {.metadata.labels.kubectl-gitops\\.io/status}{\"\\n\"}{end}",
        ]);
        let mut rows: Vec<(u32, String)> = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(r, s)| (r.parse().unwrap(), s.to_string()))
            .collect();
        rows.sort();
        rows
    }

    /// How many objects of `resource` exist in `namespace`.
    pub fn count(&self, namespace: &str, resource: &str) -> usize {
        self.kubectl_ok(&["get", resource, "-n", namespace, "-o", "name"])
            .lines()
            .count()
    }

    /// A fresh namespace for one test, deleted when the guard drops.
    pub fn namespace(&self, prefix: &str) -> TestNamespace {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{}-{}-{}",
            prefix,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        self.kubectl_ok(&["create", "namespace", &name]);
        TestNamespace {
            name,
            kubeconfig: self.admin_kubeconfig.clone(),
            kubectl: self.kubectl_path(),
        }
    }
}

/// A namespace that exists for one test.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Best effort, without waiting: the namespace controller finishes it in the background.
        let _ = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

/// Keeps tests away from the developer's own configuration.
fn isolate(cmd: &mut Command) {
    let home = private_home();
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("PATH", plugin_path())
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .env_remove("NO_COLOR");
    // Kustomizations render with the pinned kubectl's kustomize, not whichever kubectl
    // the machine has first on PATH.
    if let Some(bin) = std::env::var_os("KUBECTL_GITOPS_TEST_BIN") {
        cmd.env("KUBECTL", Path::new(&bin).join("kubectl"));
    }
}

/// One home per test process. A static is never dropped, so a `TempDir` here would be
/// left behind by every run: homes are named by process id instead, and each run removes
/// those whose process has ended.
fn private_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let base = std::env::temp_dir().join("kubectl-gitops-test-homes");
        std::fs::create_dir_all(&base).unwrap();
        remove_ended_homes(&base);
        let home = base.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir(&home).unwrap();
        home
    })
}

fn remove_ended_homes(base: &Path) {
    // Without /proc there is no telling which processes have ended.
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let ended = name
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
        if ended {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The directory holding the built plugin binaries (`target/debug`), built once per run.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The test binary is target/<profile>/deps/e2e-<hash>.
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "--quiet", "--bins"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let out = build.current_dir(workspace_root()).output().unwrap();
        assert_success("cargo build --bins", &out);
        dir
    })
}

/// PATH with our plugins (and their `kubectl_complete-*` scripts) first, so kubectl's
/// plugin discovery finds them; first of all the wrappers that record each run for the
/// canary check ([`record`]), when the suite runs against a control plane.
pub fn plugin_path() -> std::ffi::OsString {
    let mut paths = Vec::new();
    if let Some(state) = std::env::var_os("KUBECTL_GITOPS_TEST_STATE") {
        paths.push(record::wrapper_dir(Path::new(&state), plugin_dir()).to_path_buf());
    }
    paths.extend([
        plugin_dir().to_path_buf(),
        workspace_root().join("plugins").join("completion"),
    ]);
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Fails the test with the command, its exit status, stdout and stderr.
pub fn assert_success(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

/// A readable dump of a finished command.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A multi-threaded runtime for tests that call the library directly.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// An audit event as `verb resource`, `(dry-run)` after the verb of a dry run.
pub fn describe_request(event: &serde_json::Value) -> String {
    let mut verb = event["verb"].as_str().unwrap_or("?").to_string();
    if event["requestURI"]
        .as_str()
        .is_some_and(|u| u.contains("dryRun=All"))
    {
        verb.push_str("(dry-run)");
    }
    format!(
        "{verb} {}",
        event["objectRef"]["resource"].as_str().unwrap_or("?")
    )
}
