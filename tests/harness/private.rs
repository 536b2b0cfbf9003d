//! A control plane of a test's own, for tests that stop, freeze or throttle the API
//! server: the shared one must keep serving the tests running beside them.

use std::ops::Deref;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use crate::{TestCluster, assert_success, record, workspace_root};

/// A private control plane, stopped (and its state removed) when dropped. Only one exists
/// at a time: the machine that runs the suite has few cores.
pub struct PrivateCluster {
    cluster: TestCluster,
    _dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl PrivateCluster {
    /// Starts one; `apiserver_args` are extra kube-apiserver flags (kept for restarts).
    pub fn start(apiserver_args: &[&str]) -> PrivateCluster {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::Builder::new()
            .prefix("kubectl-gitops-private")
            .tempdir()
            .unwrap();
        let state = dir.path().to_path_buf();
        let out = script()
            .args(["up", &state.display().to_string()])
            .env("KUBECTL_GITOPS_APISERVER_ARGS", apiserver_args.join(" "))
            .output()
            .unwrap();
        if !out.status.success() {
            // Stop whatever came up before failing the test.
            let _ = script()
                .args(["down", &state.display().to_string()])
                .output();
        }
        assert_success("cluster.sh up (private control plane)", &out);
        let shared = TestCluster::get();
        let cluster = TestCluster {
            admin_kubeconfig: state.join("admin.kubeconfig"),
            viewer_kubeconfig: state.join("viewer.kubeconfig"),
            bin: shared.bin.clone(),
            state: state.clone(),
        };
        // Its tokens are canaries of the suite's final check, like the shared ones.
        if let Ok(tokens) = std::fs::read_to_string(state.join("tokens.csv")) {
            for (i, line) in tokens.lines().enumerate() {
                if let Some(token) = line.split(',').next() {
                    let name = format!(
                        "private-{}-{}-{i}",
                        std::process::id(),
                        dir.path().file_name().unwrap().to_string_lossy()
                    );
                    record::remember_credential(&shared.state, &name, token);
                }
            }
        }
        PrivateCluster {
            cluster,
            _dir: dir,
            _turn: turn,
        }
    }

    /// Stops the API server (etcd and the rest keep running).
    pub fn stop_apiserver(&self) {
        self.control("stop-apiserver");
    }

    /// Starts the API server again and waits until it is ready.
    pub fn start_apiserver(&self) {
        self.control("start-apiserver");
    }

    /// The API server's process id (for SIGSTOP / SIGCONT).
    pub fn apiserver_pid(&self) -> u32 {
        std::fs::read_to_string(self.cluster.state.join("pids/kube-apiserver"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the API server.
    pub fn signal_apiserver(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.apiserver_pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} kube-apiserver");
    }

    fn control(&self, what: &str) {
        let out = script()
            .args([what, &self.cluster.state.display().to_string()])
            .output()
            .unwrap();
        assert_success(&format!("cluster.sh {what}"), &out);
    }
}

fn script() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(cluster_script());
    cmd
}

fn cluster_script() -> PathBuf {
    workspace_root().join("tests/cluster/cluster.sh")
}

impl Deref for PrivateCluster {
    type Target = TestCluster;
    fn deref(&self) -> &TestCluster {
        &self.cluster
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // A frozen API server cannot stop: wake it first.
        if let Ok(pid) = std::fs::read_to_string(self.cluster.state.join("pids/kube-apiserver")) {
            let _ = Command::new("kill").args(["-CONT", pid.trim()]).status();
        }
        let _ = script()
            .args(["down", &self.cluster.state.display().to_string()])
            .output();
    }
}
