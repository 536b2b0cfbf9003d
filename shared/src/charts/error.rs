//! What can go wrong fetching a chart. Every message names the URL (never with
//! credentials) and says what to do; none carries a credential.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ChartSourceError {
    #[error(
        "cannot reach {url}: {message}; check the repository URL and the network, or vendor \
         the chart in git"
    )]
    Unreachable { url: String, message: String },

    #[error("{url} answered HTTP {status}; check the repository URL, or vendor the chart in git")]
    Status { url: String, status: u16 },

    #[error("{url} answered HTTP {status}: {advice}")]
    Unauthorized {
        url: String,
        status: u16,
        advice: String,
    },

    #[error(
        "the chart `{name}` is not in the repository {url} (its index.yaml has no such entry); \
         fix the chart's name or repository"
    )]
    ChartNotInRepository { url: String, name: String },

    #[error(
        "no version of `{name}` at {url} matches `{range}`{}; fix the version asked for",
        if newest.is_empty() { " (it has none)".to_string() } else { format!(" (newest: {})", newest.join(", ")) }
    )]
    NoMatchingVersion {
        url: String,
        name: String,
        range: String,
        newest: Vec<String>,
    },

    #[error(
        "version {version} of `{name}` is not at {url}; pick another version (for a locked \
         dependency, run `helm dependency update`), or vendor the chart in git"
    )]
    VersionGone {
        url: String,
        name: String,
        version: String,
    },

    #[error(
        "the archive from {url} has digest sha256:{actual}, but {said_by} says {expected}: the \
         download was altered or the repository changed under the same version; nothing was \
         rendered from it"
    )]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
        said_by: String,
    },

    #[error("{url}: {message}")]
    Invalid { url: String, message: String },

    #[error("`{version}` is not a valid version or version range for `{name}`: {advice}")]
    InvalidVersion {
        name: String,
        version: String,
        advice: String,
    },

    #[error(
        "`{repository}` names a repository that is not in the Helm repositories file ({}); add \
         it with `helm repo add NAME URL` or write its URL in Chart.yaml",
        file.display()
    )]
    UnknownRepository { repository: String, file: PathBuf },

    #[error(
        "`{repository}` is not a chart source we can fetch from (https://, http://, oci:// or \
         file://, or @name of a repository in the Helm repositories file)"
    )]
    UnsupportedRepository { repository: String },

    #[error("{}: {message}", file.display())]
    Config { file: PathBuf, message: String },

    #[error(
        "the Docker credential helper `docker-credential-{helper}` for {host} {message}; run \
         `helm registry login {host}` or fix the helper"
    )]
    CredentialHelper {
        helper: String,
        host: String,
        message: String,
    },

    #[error("the chart cache {}: {message}", path.display())]
    Cache { path: PathBuf, message: String },
}

impl ChartSourceError {
    /// The URL the error is about, if it names one.
    pub fn url(&self) -> Option<&str> {
        match self {
            ChartSourceError::Unreachable { url, .. }
            | ChartSourceError::Status { url, .. }
            | ChartSourceError::Unauthorized { url, .. }
            | ChartSourceError::ChartNotInRepository { url, .. }
            | ChartSourceError::NoMatchingVersion { url, .. }
            | ChartSourceError::VersionGone { url, .. }
            | ChartSourceError::DigestMismatch { url, .. }
            | ChartSourceError::Invalid { url, .. } => Some(url),
            _ => None,
        }
    }
}
