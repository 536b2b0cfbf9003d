//! The dashboard in tests: `kubectl release-history --web` started for real
//! ([`ServedDashboard`]), a small HTTP/1.1 client for its pages ([`get`], [`request`]),
//! each page answered recorded for the suite's canary check, and a WebDriver client that
//! drives headless Chromium through chromedriver ([`Browser`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::record::runs_dir;
use crate::{TestCluster, workspace_root};

/// A running `kubectl release-history --web`, stopped when dropped.
pub struct ServedDashboard {
    child: Child,
    /// `http://127.0.0.1:PORT/?token=...`, as printed.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub token: String,
    /// Its stderr, read once it has stopped ([`ServedDashboard::stop`]).
    stderr: Option<std::process::ChildStderr>,
}

impl ServedDashboard {
    /// Starts `kubectl release-history --web` with `args` and waits for its URL.
    pub fn start(cluster: &TestCluster, args: &[&str]) -> ServedDashboard {
        let mut child = cluster
            .kubectl()
            .args(["release-history", "--web"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let Ok(line) = receiver.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the dashboard printed no URL: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        };
        let url = line
            .strip_prefix("Dashboard: ")
            .unwrap_or_else(|| panic!("not the URL line: {line}"))
            .to_string();
        let rest = url.strip_prefix("http://").unwrap();
        let (host, query) = rest.split_once("/?token=").unwrap();
        ServedDashboard {
            host: host.to_string(),
            token: query.to_string(),
            url: url.clone(),
            stderr: child.stderr.take(),
            child,
        }
    }

    /// The cookie the dashboard sets for its token.
    pub fn cookie(&self) -> String {
        let port = self.host.rsplit(':').next().unwrap();
        format!("kubectl_gitops_dashboard_{port}={}", self.token)
    }

    /// GET `path` with the cookie, as a browser that opened the URL would.
    pub fn page(&self, path: &str) -> Answer {
        let cookie = self.cookie();
        request(
            &self.host,
            "GET",
            path,
            &[("Host", &self.host), ("Cookie", &cookie)],
        )
    }

    /// GET `path` until no state on it is still being checked (up to `seconds`).
    pub fn page_when_checked(&self, path: &str, seconds: u64) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let answer = self.page(path);
            if !answer.body.contains(CHECKING) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still checking after {seconds}s: {}",
                answer.body
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops it and returns what it printed on stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for ServedDashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a page marks a state it is still checking.
pub const CHECKING: &str = "state busy checking";

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `address` with exactly the headers given (none added but
/// `Connection: close`), the answer read to its end. The body is recorded for the canary
/// check.
pub fn request(address: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    request_with_body(address, method, path, headers, "")
}

pub fn request_with_body(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes()).unwrap();
    let (head, body) = read_answer(&mut stream);
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    record_page(&format!("{method} {path}"), &body);
    Answer {
        status,
        headers,
        body,
    }
}

/// Records a page the dashboard served, as the harness records plugin runs, so the
/// canary check reads it too.
pub fn record_page(what: &str, body: &str) {
    let Some(state) = std::env::var_os("KUBECTL_GITOPS_TEST_STATE") else {
        return;
    };
    let log = runs_dir(Path::new(&state)).join("log");
    let _ = std::fs::create_dir_all(&log);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let base = log.join(format!("{stamp}-{}-dashboard-page", std::process::id()));
    std::fs::write(base.with_extension("args"), format!("{what}\n")).unwrap();
    std::fs::write(base.with_extension("out"), body).unwrap();
    std::fs::write(base.with_extension("err"), "").unwrap();
}

/// Where a test's screenshots go: `target/dashboard-screenshots/NAME/`, emptied first and
/// kept after the run, passed or failed.
pub fn screenshot_dir(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target")
        .join("dashboard-screenshots")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Headless Chromium driven over WebDriver: chromedriver on a free port, one session,
/// both ended when dropped.
pub struct Browser {
    driver: Child,
    address: String,
    session: String,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose screenshots go to `shots`.
    pub fn start(shots: PathBuf) -> Browser {
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        // In a process group of its own: Chromium leaves helper processes (its zygotes)
        // running after the session ends, and the whole group is ended on drop.
        let driver = Command::new(&chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {chromedriver} ({e}); scripts/setup.sh installs it")
            });
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut browser = Browser {
            driver,
            address,
            session: String::new(),
            _profile: profile,
            shots,
        };
        let created = browser.call(
            "POST",
            "/session",
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args}
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let text = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.address,
            text.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        let (_, body) = read_answer(&mut stream);
        let body = String::from_utf8_lossy(&body).into_owned();
        let answer: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {body}"));
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer.get("value").cloned().unwrap_or(answer)
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for it to load.
    pub fn open(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    /// The page's HTML as the browser has it now, recorded for the canary check.
    pub fn source(&self) -> String {
        let source = self
            .session_call("GET", "/source", &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string();
        record_page("browser page", &source);
        source
    }

    /// Runs `script` in the page and returns its value.
    pub fn run(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": [] }),
        )
    }

    /// The text of the elements `css` selects, joined by newlines.
    pub fn text(&self, css: &str) -> String {
        let script = format!(
            "return Array.from(document.querySelectorAll({})).map(e => e.innerText).join('\\n');",
            serde_json::to_string(css).unwrap()
        );
        self.run(&script).as_str().unwrap_or_default().to_string()
    }

    /// Waits up to `seconds` until `css` selects an element whose text holds `want`.
    pub fn wait_for_text(&self, css: &str, want: &str, seconds: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let text = self.text(css);
            if text.contains(want) {
                return text;
            }
            if Instant::now() > deadline {
                self.screenshot("timed-out");
                panic!("no \"{want}\" in {css} after {seconds}s; its text: {text}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Clicks the link whose text is `text`, and waits for the next page.
    pub fn click_link(&self, text: &str) {
        let script = format!(
            "const a = Array.from(document.querySelectorAll('a')).find(a => a.innerText.trim() === {}); if (!a) return false; a.click(); return true;",
            serde_json::to_string(text).unwrap()
        );
        assert_eq!(self.run(&script), json!(true), "no link \"{text}\"");
        // Wait for the click's page: the old document goes, the new one is complete.
        std::thread::sleep(Duration::from_millis(300));
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.run("return document.readyState;") != json!("complete") {
            assert!(
                Instant::now() < deadline,
                "the page after \"{text}\" did not load"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sets the window size (a narrow window shows the narrow layout).
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            &json!({"width": width, "height": height}),
        );
    }

    /// Saves a PNG of the page as `NN-name.png` in the screenshot directory and returns
    /// its path. The page's HTML is recorded for the canary check too.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let _ = self.source();
        let data = self.session_call("GET", "/screenshot", &Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let count = std::fs::read_dir(&self.shots).map_or(0, |d| d.count());
        let path = self.shots.join(format!("{:02}-{name}.png", count + 1));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            // Best effort: the driver's end kills the browser anyway.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, &Value::Null)
            }));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An answer's head (as text) and body: by its Content-Length, else chunked, else up to
/// the end of the connection (chromedriver keeps connections open whatever is asked).
fn read_answer(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            break raw.len();
        }
        raw.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let lower = head.to_ascii_lowercase();
    let length = lower.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let mut body = raw[split..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buffer[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut body).unwrap();
            if lower.contains("transfer-encoding: chunked") {
                body = dechunk(&body);
            }
        }
    }
    (head, body)
}

/// A chunked HTTP body joined.
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size.filter(|n| *n > 0) else {
            break;
        };
        let data = &rest[end + 2..];
        if data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        rest = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
    out
}
