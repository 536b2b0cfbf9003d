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

/// Starts `tests/charts/<script>` with `args`, then `dir/<name>.log` and a port file;
/// returns it and the port it listens on.
fn start_python(script: &str, args: &[&std::ffi::OsStr], dir: &Path, name: &str) -> (Child, u16) {
    let port_file = dir.join(format!("{name}.port"));
    let stderr = dir.join(format!("{name}.stderr"));
    let mut child = Command::new("python3")
        .arg(workspace_root().join("tests/charts").join(script))
        .args(args)
        .arg(dir.join(format!("{name}.log")))
        .arg(&port_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("python3 runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse::<u16>().unwrap();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{script} exited ({status}): {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{script} did not start within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_for_port(port, script, &mut child, &stderr);
    (child, port)
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
        let (child, port) = start_python(
            "repo_server.py",
            &[
                root.as_os_str(),
                ca.cert.as_os_str(),
                ca.key.as_os_str(),
                username.as_ref(),
                password.as_ref(),
            ],
            dir.path(),
            "requests",
        );
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

/// How the registry asks for credentials.
pub enum RegistryAuth<'a> {
    None,
    /// htpasswd: a Basic challenge.
    Basic(&'a str, &'a str),
    /// A token service (tests/charts/token_server.py) that takes this login: a Bearer
    /// challenge.
    Token(&'a str, &'a str),
}

/// The distribution registry on a free port of 127.0.0.1, over plain HTTP.
pub struct Registry {
    child: Child,
    token_service: Option<Child>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl Registry {
    /// `login`: htpasswd auth for that user and password; `None`: no auth.
    pub fn start(bin: &Path, login: Option<(&str, &str)>) -> Registry {
        match login {
            Some((user, password)) => {
                Registry::start_with(bin, RegistryAuth::Basic(user, password))
            }
            None => Registry::start_with(bin, RegistryAuth::None),
        }
    }

    pub fn start_with(bin: &Path, auth: RegistryAuth<'_>) -> Registry {
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
        let mut token_service = None;
        match auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic(user, password) => {
                let hash = bcrypt::hash(password, 5).unwrap();
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            RegistryAuth::Token(user, password) => {
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
                        "signer.key",
                        "-out",
                        "signer.pem",
                        "-subj",
                        "/CN=token signer",
                    ],
                );
                let (child, port) = start_python(
                    "token_server.py",
                    &[
                        d.join("signer.pem").as_os_str(),
                        d.join("signer.key").as_os_str(),
                        user.as_ref(),
                        password.as_ref(),
                        "test-issuer".as_ref(),
                    ],
                    d,
                    "tokens",
                );
                token_service = Some(child);
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    \
                     service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                    d.join("signer.pem").display()
                ));
            }
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
            token_service,
            dir,
            host: format!("127.0.0.1:{port}"),
        }
    }

    /// Every request our plugins made to the token service.
    pub fn token_requests(&self) -> Vec<String> {
        ours(&self.dir.path().join("tokens.log"))
    }

    /// Every request our plugins made so far: the lines of the registry's access log
    /// (`… "GET /v2/… HTTP/1.1" 200 …`), not its other messages about the same requests.
    pub fn requests(&self) -> Vec<String> {
        let mut all = ours(&self.dir.path().join("registry.log"));
        all.extend(ours(&self.dir.path().join("stderr.log")));
        all.retain(|line| line.contains(" HTTP/1.1\" "));
        all
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(child) = &mut self.token_service {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
