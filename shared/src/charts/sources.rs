//! What a fetch is asked for and what it gives, and the settings every fetch shares.

use std::path::PathBuf;
use std::time::Duration;

use super::cache::Cache;
use super::credentials::Credentials;
use super::error::ChartSourceError;

/// A chart in a chart repository or an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRef {
    /// `https://…` (a chart repository), `oci://host/path` (a registry), or `@name` /
    /// `alias:name` of a repository in the Helm repositories file.
    pub repository: String,
    /// The chart's name: an entry of the repository's index, or the last part of the
    /// OCI reference (`oci://host/path` + `/name`).
    pub name: String,
    /// An exact version (`1.2.3`) or a range (`^1.2`, `>=1.0 <2.0`, ...).
    pub version: String,
}

/// A fetched chart archive, its digest verified.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedChart {
    pub name: String,
    /// The exact version picked.
    pub version: String,
    /// `sha256:<hex>` of the archive.
    pub digest: String,
    /// Where it came from (no credentials in it).
    pub url: String,
    /// The `.tgz` archive, as `helm package` makes it.
    pub archive: Vec<u8>,
    /// Whether it came from the cache, with no request made.
    pub from_cache: bool,
}

impl std::fmt::Debug for FetchedChart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedChart")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("digest", &self.digest)
            .field("url", &self.url)
            .field("archive_bytes", &self.archive.len())
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

impl FetchedChart {
    /// The file name `helm dependency build` gives it under `charts/`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

/// Where charts are cached, the credentials to fetch them with, and how much a cached
/// index is trusted. Load it once ([`ChartSources::from_env`]) and share it.
#[derive(Debug)]
pub struct ChartSources {
    pub cache: Cache,
    pub credentials: Credentials,
    /// Refetch repository indexes and tag lists even when the cached ones would do
    /// (`KUBECTL_GITOPS_CHART_REFRESH=1`).
    pub refresh: bool,
    /// How long a cached index (or tag list) is trusted for a version range.
    pub index_max_age: Duration,
    /// Reach OCI registries on 127.0.0.1 / localhost / ::1 over plain HTTP
    /// (`KUBECTL_GITOPS_PLAIN_HTTP=1`, helm's `--plain-http`).
    pub plain_http_loopback: bool,
}

/// How long a cached index is trusted for a version range, unless it has no match.
pub const INDEX_MAX_AGE: Duration = Duration::from_secs(60 * 60);

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

impl ChartSources {
    /// The user's cache directory and the credentials Helm and Docker keep, from the
    /// environment (see the module docs for the variables).
    pub fn from_env() -> Result<ChartSources, ChartSourceError> {
        Ok(ChartSources {
            cache: Cache::new(Cache::default_dir()),
            credentials: Credentials::from_env()?,
            refresh: env_flag("KUBECTL_GITOPS_CHART_REFRESH"),
            index_max_age: INDEX_MAX_AGE,
            plain_http_loopback: env_flag("KUBECTL_GITOPS_PLAIN_HTTP"),
        })
    }

    /// No credentials, a given cache directory: for tests and for callers that bring
    /// their own.
    pub fn with_cache_dir(dir: PathBuf) -> ChartSources {
        ChartSources {
            cache: Cache::new(dir),
            credentials: Credentials::default(),
            refresh: false,
            index_max_age: INDEX_MAX_AGE,
            plain_http_loopback: false,
        }
    }
}
