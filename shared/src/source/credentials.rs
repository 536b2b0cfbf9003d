//! Git credentials from a directory (a mounted Secret), for the `git` command line that
//! fetches `--repo URL`: an SSH key with the hosts it may trust, or a token for HTTPS.
//! They reach git through its environment only: never in a URL, an argument or a file
//! another user can read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;

/// What the directory holds: `ssh-privatekey` (and `known_hosts`), as a Secret of type
/// `kubernetes.io/ssh-auth` has it, or `token` (and optionally `username`).
#[derive(Clone)]
pub enum GitCredentials {
    Ssh {
        /// A private copy of the key (ssh refuses a key others can read, and a mounted
        /// Secret's files are readable by its group).
        key: PathBuf,
        known_hosts: PathBuf,
    },
    Token {
        username: String,
        token: String,
    },
}

impl std::fmt::Debug for GitCredentials {
    // Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitCredentials::Ssh { key, known_hosts } => f
                .debug_struct("Ssh")
                .field("key", key)
                .field("known_hosts", known_hosts)
                .finish(),
            GitCredentials::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "git credentials in {}: neither ssh-privatekey nor token is there (a Secret of type kubernetes.io/ssh-auth, or one with a token key)",
        .dir.display()
    )]
    Empty { dir: PathBuf },
    #[error(
        "git credentials in {}: ssh-privatekey needs known_hosts beside it, or no SSH host can be trusted (ssh-keyscan HOST, checked against the host's published keys)",
        .dir.display()
    )]
    NoKnownHosts { dir: PathBuf },
    #[error("git credentials: cannot read {}: {message}", .path.display())]
    Read { path: PathBuf, message: String },
    #[error("git credentials: cannot write the private copy of the key in {}: {message}", .path.display())]
    Write { path: PathBuf, message: String },
}

/// The HTTPS user name a token goes with when the directory names none (GitHub, GitLab
/// and Gitea all take any non-empty name with a token).
const TOKEN_USER: &str = "git";

impl GitCredentials {
    /// Reads `dir`; an SSH key is copied into `private_dir` with owner-only permissions.
    pub fn from_dir(dir: &Path, private_dir: &Path) -> Result<GitCredentials, CredentialsError> {
        let read = |name: &str| -> Result<Option<String>, CredentialsError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CredentialsError::Read {
                    path,
                    message: e.to_string(),
                }),
            }
        };
        if let Some(key) = read("ssh-privatekey")? {
            let known_hosts = dir.join("known_hosts");
            if !known_hosts.is_file() {
                return Err(CredentialsError::NoKnownHosts {
                    dir: dir.to_path_buf(),
                });
            }
            let copy = private_copy(private_dir, &key)?;
            return Ok(GitCredentials::Ssh {
                key: copy,
                known_hosts,
            });
        }
        if let Some(token) = read("token")? {
            let username = read("username")?
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| TOKEN_USER.into());
            return Ok(GitCredentials::Token {
                username,
                token: token.trim().to_string(),
            });
        }
        Err(CredentialsError::Empty {
            dir: dir.to_path_buf(),
        })
    }

    /// The environment that makes `git` use them.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        match self {
            GitCredentials::Ssh { key, known_hosts } => {
                let command = format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile='{}' -o BatchMode=yes",
                    key.display(),
                    known_hosts.display()
                );
                vec![("GIT_SSH_COMMAND".into(), command.into())]
            }
            GitCredentials::Token { username, token } => {
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"));
                vec![
                    ("GIT_CONFIG_COUNT".into(), "1".into()),
                    ("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into()),
                    (
                        "GIT_CONFIG_VALUE_0".into(),
                        format!("Authorization: Basic {basic}").into(),
                    ),
                    // Never a prompt: a wrong token is an error, not a hang.
                    ("GIT_TERMINAL_PROMPT".into(), "0".into()),
                ]
            }
        }
    }
}

fn private_copy(private_dir: &Path, key: &str) -> Result<PathBuf, CredentialsError> {
    let write_err = |path: &Path, e: std::io::Error| CredentialsError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(private_dir).map_err(|e| write_err(private_dir, e))?;
    let path = private_dir.join("ssh-privatekey");
    let mut text = key.to_string();
    // ssh wants the key's last line ended.
    if !text.ends_with('\n') {
        text.push('\n');
    }
    write_private(&path, text.as_bytes()).map_err(|e| write_err(&path, e))?;
    Ok(path)
}

/// Writes `bytes` to `path`, readable and writable by this user only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(path)?.write_all(bytes)
}

/// The credentials every fetch of this process uses, set once at start.
static IN_USE: OnceLock<GitCredentials> = OnceLock::new();

/// Makes every later `git` fetch and clone of `--repo URL` use `credentials`. Once per
/// process: a later call changes nothing and returns false.
pub fn use_for_fetches(credentials: GitCredentials) -> bool {
    IN_USE.set(credentials).is_ok()
}

/// The environment of a `git` fetch or clone.
pub(super) fn fetch_env() -> Vec<(OsString, OsString)> {
    IN_USE.get().map(GitCredentials::env).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_basic_header_in_gits_environment_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cr3t-token\n").unwrap();
        let credentials = GitCredentials::from_dir(dir.path(), &dir.path().join("p")).unwrap();
        let env: Vec<(String, String)> = credentials
            .env()
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect();
        let expected = base64::engine::general_purpose::STANDARD.encode("git:s3cr3t-token");
        assert!(env.contains(&(
            "GIT_CONFIG_VALUE_0".into(),
            format!("Authorization: Basic {expected}")
        )));
        assert!(env.contains(&("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into())));
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
        std::fs::write(dir.path().join("username"), "x-access-token").unwrap();
        let named = GitCredentials::from_dir(dir.path(), &dir.path().join("p")).unwrap();
        assert!(
            matches!(named, GitCredentials::Token { username, .. } if username == "x-access-token")
        );
    }

    #[test]
    fn an_ssh_key_is_copied_for_its_owner_alone_and_needs_known_hosts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ssh-privatekey"), "-----BEGIN KEY-----").unwrap();
        let private = dir.path().join("private");
        let err = GitCredentials::from_dir(dir.path(), &private).unwrap_err();
        assert!(err.to_string().contains("known_hosts"), "{err}");
        std::fs::write(
            dir.path().join("known_hosts"),
            "example.com ssh-ed25519 AAAA\n",
        )
        .unwrap();
        let credentials = GitCredentials::from_dir(dir.path(), &private).unwrap();
        let GitCredentials::Ssh { key, .. } = &credentials else {
            panic!("{credentials:?}");
        };
        assert_eq!(
            std::fs::read_to_string(key).unwrap(),
            "-----BEGIN KEY-----\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let command = credentials.env()[0].1.clone().into_string().unwrap();
        assert!(command.contains("StrictHostKeyChecking=yes"), "{command}");
        assert!(command.contains("known_hosts"), "{command}");
    }

    #[test]
    fn an_empty_directory_says_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let err = GitCredentials::from_dir(dir.path(), &dir.path().join("p")).unwrap_err();
        assert!(
            err.to_string().contains("ssh-privatekey nor token"),
            "{err}"
        );
    }
}
