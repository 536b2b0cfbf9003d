//! Credentials where Helm keeps them, read once: the repositories file
//! (`helm repo add --username`) for chart repositories, and the registry config
//! (`helm registry login`) then Docker's `config.json` for OCI registries, with Docker
//! credential helpers (`credsStore`, `credHelpers`). Nothing here is ever shown: `Debug`
//! hides secrets, and errors name files and hosts only.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::error::ChartSourceError;
use super::http::{Auth, Tls};

/// One entry of Helm's repositories file.
#[derive(Clone, Default, serde::Deserialize)]
pub struct Repository {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default, rename = "caFile")]
    pub ca_file: String,
    #[serde(default, rename = "certFile")]
    pub cert_file: String,
    #[serde(default, rename = "keyFile")]
    pub key_file: String,
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    #[serde(default)]
    pub pass_credentials_all: bool,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("has_credentials", &!self.username.is_empty())
            .finish_non_exhaustive()
    }
}

impl Repository {
    pub fn auth(&self) -> Option<Auth> {
        (!self.username.is_empty() || !self.password.is_empty()).then(|| Auth::Basic {
            username: self.username.clone(),
            password: self.password.clone(),
        })
    }

    pub fn tls(&self) -> Tls {
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        Tls {
            ca_file: path(&self.ca_file),
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            insecure: self.insecure_skip_tls_verify,
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct RepositoriesFile {
    #[serde(default)]
    repositories: Option<Vec<Repository>>,
}

#[derive(Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
}

#[derive(Default, serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: String,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

/// Every credential source, loaded once.
#[derive(Default)]
pub struct Credentials {
    /// The repositories file's path (read or not), for messages.
    pub repositories_file: PathBuf,
    pub repositories: Vec<Repository>,
    /// The registry config and Docker's config, in that order of precedence.
    registries: Vec<DockerConfig>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("repositories_file", &self.repositories_file)
            .field("repositories", &self.repositories)
            .finish_non_exhaustive()
    }
}

/// A registry login: basic credentials, or an identity token for the token flow.
#[derive(Clone)]
pub struct RegistryLogin {
    pub username: String,
    pub secret: String,
}

impl RegistryLogin {
    pub fn auth(&self) -> Auth {
        Auth::Basic {
            username: self.username.clone(),
            password: self.secret.clone(),
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> PathBuf {
    env_path("HOME").unwrap_or_default()
}

/// `$HELM_CONFIG_HOME`, else `$XDG_CONFIG_HOME/helm`, else `~/.config/helm`.
fn helm_config_home() -> PathBuf {
    env_path("HELM_CONFIG_HOME")
        .or_else(|| env_path("XDG_CONFIG_HOME").map(|p| p.join("helm")))
        .unwrap_or_else(|| home().join(".config").join("helm"))
}

fn read_optional(path: &Path) -> Result<Option<String>, ChartSourceError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ChartSourceError::Config {
            file: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        }),
    }
}

impl Credentials {
    /// Reads the files Helm and Docker read, where the environment says they are.
    pub fn from_env() -> Result<Credentials, ChartSourceError> {
        let repositories_file = env_path("HELM_REPOSITORY_CONFIG")
            .unwrap_or_else(|| helm_config_home().join("repositories.yaml"));
        let registry_file = env_path("HELM_REGISTRY_CONFIG")
            .unwrap_or_else(|| helm_config_home().join("registry").join("config.json"));
        let docker_file = env_path("DOCKER_CONFIG")
            .unwrap_or_else(|| home().join(".docker"))
            .join("config.json");
        Credentials::from_files(&repositories_file, &[registry_file, docker_file])
    }

    pub fn from_files(
        repositories_file: &Path,
        registry_files: &[PathBuf],
    ) -> Result<Credentials, ChartSourceError> {
        let repositories = match read_optional(repositories_file)? {
            Some(text) => {
                parse_repositories(&text).map_err(|message| ChartSourceError::Config {
                    file: repositories_file.to_path_buf(),
                    message,
                })?
            }
            None => Vec::new(),
        };
        let mut registries = Vec::new();
        for file in registry_files {
            if let Some(text) = read_optional(file)? {
                let config: DockerConfig =
                    serde_json::from_str(&text).map_err(|e| ChartSourceError::Config {
                        file: file.clone(),
                        message: format!("not a valid registry config (JSON): line {}", e.line()),
                    })?;
                registries.push(config);
            }
        }
        Ok(Credentials {
            repositories_file: repositories_file.to_path_buf(),
            repositories,
            registries,
        })
    }

    /// The repository `@name` (or `alias:name`) names.
    pub fn repository_named(&self, name: &str) -> Option<&Repository> {
        self.repositories.iter().find(|r| r.name == name)
    }

    /// The repository configured for `url` (compared as Helm does, trailing `/` aside).
    pub fn repository_for_url(&self, url: &str) -> Option<&Repository> {
        let want = url.trim_end_matches('/');
        self.repositories
            .iter()
            .find(|r| r.url.trim_end_matches('/') == want)
    }

    /// The login for the registry at `host` (`host:port`), if there is one.
    pub fn registry_login(&self, host: &str) -> Result<Option<RegistryLogin>, ChartSourceError> {
        for config in &self.registries {
            let entry = config
                .auths
                .iter()
                .find(|(key, _)| registry_host(key) == host)
                .map(|(_, entry)| entry);
            if let Some(login) = entry.and_then(login_of) {
                return Ok(Some(login));
            }
            let helper = config
                .cred_helpers
                .iter()
                .find(|(key, _)| registry_host(key) == host)
                .map(|(_, helper)| helper.as_str())
                .or((!config.creds_store.is_empty()).then_some(config.creds_store.as_str()));
            if let Some(helper) = helper {
                return credential_helper(helper, host);
            }
        }
        Ok(None)
    }
}

fn parse_repositories(text: &str) -> Result<Vec<Repository>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: RepositoriesFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        format!("not a valid Helm repositories file (line {line})")
    })?;
    Ok(file.repositories.unwrap_or_default())
}

/// `https://index.docker.io/v1/` or `host:5000` as `host[:port]`.
fn registry_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn login_of(entry: &AuthEntry) -> Option<RegistryLogin> {
    if !entry.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(entry.auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (username, password) = text.split_once(':')?;
        return Some(RegistryLogin {
            username: username.to_string(),
            secret: password.to_string(),
        });
    }
    if !entry.identitytoken.is_empty() {
        return Some(RegistryLogin {
            username: "<token>".to_string(),
            secret: entry.identitytoken.clone(),
        });
    }
    (!entry.username.is_empty()).then(|| RegistryLogin {
        username: entry.username.clone(),
        secret: entry.password.clone(),
    })
}

/// `docker-credential-<helper> get`, given the host on stdin.
fn credential_helper(helper: &str, host: &str) -> Result<Option<RegistryLogin>, ChartSourceError> {
    let failed = |message: String| ChartSourceError::CredentialHelper {
        helper: helper.to_string(),
        host: host.to_string(),
        message,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => failed("is not on PATH".to_string()),
            _ => failed(format!("could not start: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("failed: {e}")))?;
    if !output.status.success() {
        // "credentials not found in native keychain": no login, not an error.
        let stdout = String::from_utf8_lossy(&output.stdout);
        if stdout.contains("not found") {
            return Ok(None);
        }
        return Err(failed(format!("exited with {}", output.status)));
    }
    #[derive(serde::Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| failed("printed something that is not its JSON answer".to_string()))?;
    Ok(Some(RegistryLogin {
        username: answer.username,
        secret: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_repositories_file_and_docker_configs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let repos = dir.path().join("repositories.yaml");
        std::fs::write(
            &repos,
            "apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n\
             - caFile: /ca.pem\n  certFile: \"\"\n  insecure_skip_tls_verify: false\n  keyFile: \"\"\n\
             \x20 name: internal\n  pass_credentials_all: true\n  password: s3cret\n\
             \x20 url: https://charts.example.com/stable/\n  username: ci\n\
             - name: public\n  url: https://charts.example.org\n",
        )
        .unwrap();
        let helm_registry = dir.path().join("registry.json");
        std::fs::write(
            &helm_registry,
            r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}}}"#,
        )
        .unwrap();
        let docker = dir.path().join("docker.json");
        std::fs::write(
            &docker,
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"d","password":"p"},"ghcr.io":{"auth":"b3RoZXI6eA=="}},"credHelpers":{"gcr.io":"no-such-helper-xyz"}}"#,
        )
        .unwrap();
        let creds = Credentials::from_files(
            &repos,
            &[helm_registry, docker, dir.path().join("missing.json")],
        )
        .unwrap();
        let internal = creds.repository_named("internal").unwrap();
        assert_eq!(internal.username, "ci");
        assert!(internal.pass_credentials_all);
        assert_eq!(internal.tls().ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(
            creds
                .repository_for_url("https://charts.example.com/stable")
                .is_some()
        );
        assert!(creds.repository_named("public").unwrap().auth().is_none());
        assert!(!format!("{creds:?}").contains("s3cret"));
        // The Helm registry config first, then Docker's.
        let ghcr = creds.registry_login("ghcr.io").unwrap().unwrap();
        assert_eq!(
            (ghcr.username.as_str(), ghcr.secret.as_str()),
            ("user", "pass")
        );
        let hub = creds.registry_login("index.docker.io").unwrap().unwrap();
        assert_eq!(hub.username, "d");
        assert!(creds.registry_login("quay.io").unwrap().is_none());
        let err = creds.registry_login("gcr.io").err().unwrap().to_string();
        assert!(
            err.contains("docker-credential-no-such-helper-xyz") && err.contains("not on PATH"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_repositories_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let repos = dir.path().join("repositories.yaml");
        std::fs::write(&repos, "repositories: [name: x\n  password: s3cret").unwrap();
        let err = Credentials::from_files(&repos, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("repositories.yaml") && !err.contains("s3cret"),
            "{err}"
        );
    }
}
