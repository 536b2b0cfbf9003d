//! Real chart sources for the chart-dependency tests: a Helm chart repository served over
//! HTTPS with basic auth (tests/charts/repo_server.py, certificates from a test CA made
//! by openssl), and the CNCF distribution registry that build.sh builds, with or without
//! htpasswd auth. Both log every request, so a test can count the ones our plugins made
//! (by their `kubectl-gitops/` user agent).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_root;

/// A CA and a server certificate for 127.0.0.1 and localhost it signed.
pub struct TestCa {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=kubectl-gitops test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "server.pem",
                "-extfile",
                "ext.cnf",
            ],
        );
        TestCa {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            _dir: dir,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The requests of `log` that our plugins made.
fn ours(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("kubectl-gitops/"))
        .map(str::to_string)
        .collect()
}

/// A chart repository over HTTPS with basic auth, serving `root`.
pub struct ChartRepoServer {
    child: Child,
    dir: tempfile::TempDir,
    pub url: String,
    pub root: PathBuf,
}

impl ChartRepoServer {
    pub fn start(ca: &TestCa, username: &str, password: &str) -> ChartRepoServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let port_file = dir.path().join("port");
        let log = dir.path().join("requests.log");
        let script = workspace_root().join("tests/charts/repo_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&root)
            .arg(&ca.cert)
            .arg(&ca.key)
            .args([username, password])
            .arg(&log)
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse::<u16>().unwrap();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the chart repository server exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the chart repository did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        wait_for_port(port, "the chart repository", &mut child, &log);
        ChartRepoServer {
            child,
            url: format!("https://127.0.0.1:{port}/charts"),
            root: root.clone(),
            dir,
        }
    }

    /// Where charts go to be served under [`ChartRepoServer::url`].
    pub fn charts_dir(&self) -> PathBuf {
        let dir = self.root.join("charts");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Every request our plugins made so far: `GET /charts/index.yaml 200 kubectl-gitops/…`.
    pub fn requests(&self) -> Vec<String> {
        ours(&self.dir.path().join("requests.log"))
    }
}

impl Drop for ChartRepoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The distribution registry on a free port of 127.0.0.1, over plain HTTP.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl Registry {
    /// `login`: htpasswd auth for that user and password; `None`: no auth.
    pub fn start(bin: &Path, login: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let hash = bcrypt::hash(password, 5).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = dir.path().join("registry.log");
        let mut child = Command::new(bin.join("registry"))
            .arg("serve")
            .arg(&config_file)
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("the registry built by tests/cluster/build.sh runs");
        wait_for_port(
            port,
            "the registry",
            &mut child,
            &dir.path().join("stderr.log"),
        );
        Registry {
            child,
            dir,
            host: format!("127.0.0.1:{port}"),
        }
    }

    /// Every request our plugins made so far (the registry's access log).
    pub fn requests(&self) -> Vec<String> {
        let mut all = ours(&self.dir.path().join("registry.log"));
        all.extend(ours(&self.dir.path().join("stderr.log")));
        all
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
