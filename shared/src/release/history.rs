//! The release history of every app, ours and Helm's, in one model.
//!
//! Our release records ([`ReleaseRecord`]) and Helm's releases ([`HelmRelease`]) both map
//! into [`Release`], whose serde form is the stable document `release-history -o json`
//! prints. The listing functions read both sources side by side; an app name found in
//! both in one namespace must be disambiguated by the caller (`only`). Records that cannot
//! be read are returned as [`Unreadable`] entries, never as a failed listing.

mod list;
mod manifest;

use std::fmt;

use serde::Serialize;

use crate::api_error::scope;
use crate::objects::{ObjectKey, ObjectsError};
use crate::release::elsewhere;
use crate::release::helm::{self, HelmError, HelmRelease};
use crate::release::record::{Counts, HookRun, ObjectResult, ReleaseRecord};
use crate::release::store::{StoreError, UnreadableRecord};
use crate::render::ChartInfo;
use crate::render::RenderError;
use crate::source::CommitInfo;

pub use list::{apps, history, last_deployed, release};
pub use manifest::{diff, masked_manifest, member_keys, objects};

/// Which tool wrote a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Source {
    #[serde(rename = "kubectl-gitops")]
    Gitops,
    #[serde(rename = "helm")]
    Helm,
}

impl Source {
    /// The word used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gitops => "kubectl-gitops",
            Source::Helm => "helm",
        }
    }

    fn wanted(self, only: Option<Source>) -> bool {
        only.is_none_or(|s| s == self)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Helm chart, or the chart our record names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartRef {
    pub name: String,
    pub version: String,
    /// The chart repository or OCI registry it came from, when it is not in git (ours).
    pub repository: Option<String>,
    /// `sha256:<hex>` of the chart archive fetched from `repository`.
    pub digest: Option<String>,
}

/// One release of one app, from either source. Fields a source does not have are `None`
/// (Helm records no commit, no user, no counts; we record no chart).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    pub source: Source,
    pub app: String,
    pub namespace: String,
    pub revision: u32,
    /// The source's own word: ours are `pending`, `deployed`, `failed`, `superseded`,
    /// `rolled-back`; Helm's also `uninstalled`, `pending-install`, `pending-upgrade`, ...
    pub status: String,
    /// When it last changed: ours finished (else started), Helm's last deployed.
    pub updated: Option<jiff::Timestamp>,
    pub started: Option<jiff::Timestamp>,
    pub finished: Option<jiff::Timestamp>,
    /// From started to finished, in seconds (ours only).
    pub duration_seconds: Option<f64>,
    /// `sync`, `rollback` or `heal` (ours only).
    pub operation: Option<String>,
    pub rollback_of: Option<u32>,
    pub description: String,
    pub commit: Option<CommitInfo>,
    /// Every commit the release covers, newest first (ours only; a record from before
    /// releases listed them gives its one commit), and how many more it leaves out.
    pub commits: Option<Vec<CommitInfo>>,
    pub commits_left_out: Option<usize>,
    /// The last time a sync found the cluster already as this release has it and
    /// recorded no release of its own (ours only).
    pub last_synced: Option<jiff::Timestamp>,
    /// The kubeconfig user who ran it (ours only).
    pub who: Option<String>,
    pub counts: Option<Counts>,
    pub repo: Option<String>,
    pub path: Option<String>,
    pub renderer: Option<String>,
    pub chart: Option<ChartRef>,
    pub app_version: Option<String>,
    /// A chart's `--values` files, repo-relative (ours only).
    pub values_files: Option<Vec<String>>,
    /// The keys a chart's `--set` flags assigned, without their values (ours only).
    pub set_keys: Option<Vec<String>>,
    /// The user-supplied values: ours merged from `--values` and `--set`, Helm's
    /// `config`. They can hold credentials: shown only when asked.
    #[serde(skip)]
    pub values: Option<serde_json::Value>,
    pub first_deployed: Option<jiff::Timestamp>,
    pub deleted: Option<jiff::Timestamp>,
    pub notes: Option<String>,
    pub error: Option<String>,
    /// The manifest as stored, unmasked: see [`masked_manifest`] before showing it.
    #[serde(skip)]
    pub manifest: String,
    /// What the sync did to each object (ours only; see [`objects`]).
    #[serde(skip)]
    pub results: Vec<ObjectResult>,
    /// The hooks the release ran (ours only), shown with one release.
    #[serde(skip)]
    pub hooks: Vec<HookRun>,
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

impl Release {
    pub fn from_record(record: ReleaseRecord) -> Release {
        let duration_seconds = record.finished.and_then(|finished| {
            let seconds = finished.duration_since(record.started).as_secs_f64();
            // Millisecond precision; a clock that went backwards gives no duration.
            (seconds >= 0.0).then(|| (seconds * 1000.0).round() / 1000.0)
        });
        let info = record.chart().filter(|c| !c.name.is_empty());
        let chart = info.as_ref().map(|c| ChartRef {
            name: c.name.clone(),
            version: c.version.clone(),
            repository: c.source.as_ref().map(|s| s.repository.clone()),
            digest: c.source.as_ref().map(|s| s.digest.clone()),
        });
        let commits = if record.commits.is_empty() {
            record.commit.iter().cloned().collect()
        } else {
            record.commits
        };
        Release {
            source: Source::Gitops,
            commits: Some(commits),
            commits_left_out: Some(record.commits_left_out),
            last_synced: record.last_synced,
            updated: Some(record.finished.unwrap_or(record.started)),
            started: Some(record.started),
            finished: record.finished,
            duration_seconds,
            operation: Some(record.operation.as_str().to_string()),
            rollback_of: record.rollback_of,
            status: record.status.as_str().to_string(),
            who: non_empty(&record.who),
            counts: Some(record.counts),
            path: non_empty(&record.path),
            renderer: non_empty(&record.renderer),
            chart,
            app_version: info.as_ref().and_then(|c| c.app_version.clone()),
            values_files: info.as_ref().map(|c| c.values_files.clone()),
            set_keys: info.as_ref().map(ChartInfo::set_keys),
            values: info.map(|c| c.values),
            first_deployed: None,
            deleted: None,
            notes: None,
            app: record.app,
            namespace: record.namespace,
            revision: record.revision,
            description: record.description,
            commit: record.commit,
            repo: record.repo,
            error: record.error,
            manifest: record.manifest.text(),
            results: record.objects,
            hooks: record.hooks,
        }
    }

    pub fn from_helm(release: HelmRelease) -> Release {
        let info = release.info;
        let metadata = release.chart.metadata;
        Release {
            source: Source::Helm,
            app: release.name,
            namespace: release.namespace,
            revision: release.version,
            status: non_empty(&info.status).unwrap_or_else(|| "unknown".into()),
            updated: helm::timestamp(&info.last_deployed),
            started: None,
            finished: None,
            duration_seconds: None,
            operation: None,
            rollback_of: None,
            description: info.description,
            commit: None,
            commits: None,
            commits_left_out: None,
            last_synced: None,
            who: None,
            counts: None,
            repo: None,
            path: None,
            renderer: None,
            chart: non_empty(&metadata.name).map(|name| ChartRef {
                name,
                version: metadata.version,
                repository: None,
                digest: None,
            }),
            app_version: non_empty(&metadata.app_version),
            values_files: None,
            set_keys: None,
            values: Some(release.config).filter(|c| !c.is_null()),
            first_deployed: helm::timestamp(&info.first_deployed),
            deleted: helm::timestamp(&info.deleted),
            notes: non_empty(&info.notes),
            error: None,
            manifest: release.manifest,
            results: Vec::new(),
            hooks: Vec::new(),
        }
    }
}

/// One object of a release: what the sync did to it (ours), or just its identity (Helm's,
/// and ours that never got as far as applying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseObject {
    pub key: ObjectKey,
    /// `created`, `configured`, `unchanged`, `pruned` or `failed`.
    pub action: Option<String>,
    pub health: Option<String>,
    pub message: Option<String>,
}

/// A record Secret that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub source: Source,
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The revision its name gives, if it gives one.
    pub revision: Option<u32>,
    pub reason: String,
}

impl Unreadable {
    fn new(source: Source, record: UnreadableRecord) -> Unreadable {
        Unreadable {
            source,
            namespace: record.namespace,
            secret: record.secret,
            revision: record.revision,
            reason: record.reason,
        }
    }
}

/// An app and its newest release, for the overview.
#[derive(Debug, Clone)]
pub struct AppSummary {
    pub source: Source,
    pub app: String,
    pub namespace: String,
    /// How many release records it has.
    pub releases: usize,
    /// The newest release; of ours, read with [`Read::Head`](crate::release::store::Read),
    /// only what a list shows: no manifest, objects, hooks or values.
    pub latest: Result<Release, Unreadable>,
}

/// The releases of one app, newest first.
#[derive(Debug, Clone)]
pub struct AppHistory {
    pub source: Source,
    pub app: String,
    pub namespace: String,
    pub entries: Vec<Result<Release, Unreadable>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "cannot {verb} Secrets in {}: {message}; releases are kept in Secrets, so reading them needs get and list on secrets {}",
        scope(namespace.as_deref()),
        grant(namespace.as_deref())
    )]
    Forbidden {
        verb: String,
        /// None when the call spanned all namespaces.
        namespace: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Helm(HelmError),
    #[error(transparent)]
    Unreadable(UnreadableRecord),
    #[error(
        "no releases of app {app} in namespace {namespace}{}{}",
        known_apps(known),
        elsewhere::hint(app, elsewhere)
    )]
    NoSuchApp {
        app: String,
        namespace: String,
        /// The apps that do have releases there.
        known: Vec<String>,
        /// The other namespaces where the app has releases.
        elsewhere: Vec<String>,
    },
    #[error(
        "app {app} has no release {revision} in namespace {namespace} (its releases: {})",
        join(available)
    )]
    NoSuchRelease {
        app: String,
        namespace: String,
        revision: u32,
        available: Vec<u32>,
    },
    #[error("app {app} has no deployed release in namespace {namespace}: {newest}")]
    NoDeployedRelease {
        app: String,
        namespace: String,
        /// What its newest release is instead.
        newest: String,
    },
    #[error(
        "app {app} has releases of both kubectl-gitops and Helm in namespace {namespace}: choose one with --source kubectl-gitops or --source helm"
    )]
    Ambiguous { app: String, namespace: String },
    #[error("the manifest of release {revision} of app {app} cannot be read: {source}")]
    Manifest {
        app: String,
        revision: u32,
        source: Box<RenderError>,
    },
    #[error("the manifest of release {revision} of app {app} cannot be read: {source}")]
    Objects {
        app: String,
        revision: u32,
        source: Box<ObjectsError>,
    },
}

fn grant(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide (or pass a namespace with -n)".into(),
    }
}

fn known_apps(known: &[String]) -> String {
    if known.is_empty() {
        " (no app has releases there)".into()
    } else {
        format!(" (apps with releases there: {})", known.join(", "))
    }
}

fn join(revisions: &[u32]) -> String {
    let words: Vec<String> = revisions.iter().map(u32::to_string).collect();
    words.join(", ")
}

impl From<StoreError> for HistoryError {
    /// Forbidden reads are worded for reading, not for the writes a sync needs.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Forbidden {
                verb,
                namespace,
                message,
            } => HistoryError::Forbidden {
                verb,
                namespace,
                message,
            },
            StoreError::Unreadable(record) => HistoryError::Unreadable(record),
            other => HistoryError::Store(other),
        }
    }
}

impl From<HelmError> for HistoryError {
    fn from(error: HelmError) -> Self {
        match error {
            HelmError::Forbidden {
                verb,
                namespace,
                message,
            } => HistoryError::Forbidden {
                verb,
                namespace,
                message,
            },
            HelmError::Unreadable(record) => HistoryError::Unreadable(record),
            other => HistoryError::Helm(other),
        }
    }
}

#[cfg(test)]
mod tests;
