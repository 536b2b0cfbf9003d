//! A chart's `dependencies:` that are not vendored under `charts/`, resolved as
//! `helm dependency build` resolves them: versions from `Chart.lock` when there is one
//! (its digest checked against Chart.yaml first), else the newest match of each range;
//! archives fetched (or taken from the cache). `file://` dependencies are handed back
//! for the caller to read from the same snapshot as the chart.
//!
//! Every dependency is fetched, `condition:` and `tags:` or not: helm refuses to
//! template a chart with a listed dependency missing from `charts/`, and evaluates
//! conditions and tags itself once they are there.

use serde_json::Value;

use super::error::ChartSourceError;
use super::fetch::{fetch, repository_url};
use super::lock::{Dependency, Lock, digest};
use super::sources::{ChartRef, ChartSources, FetchedChart};

/// What the caller reads of the chart.
pub struct ChartFiles<'a> {
    /// The chart's `Chart.yaml`, as its repository path (for messages).
    pub chart_path: &'a str,
    pub chart_yaml: &'a [u8],
    /// The chart's `Chart.lock`, as its repository path, and its bytes.
    pub lock: Option<(&'a str, &'a [u8])>,
}

/// A dependency to put under `charts/`.
#[derive(Debug)]
pub enum Resolved {
    /// An archive from a repository or a registry, written as `charts/<name>-<version>.tgz`.
    Archive {
        dependency: String,
        chart: FetchedChart,
    },
    /// A `file://` dependency: `path` is relative to the chart's directory.
    Local { name: String, path: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error("{chart}: dependency `{dependency}`: {source}")]
    Source {
        chart: String,
        dependency: String,
        source: Box<ChartSourceError>,
    },

    #[error(
        "{lock} is out of sync with the dependencies in {chart} (its digest does not match \
         them): run `helm dependency update` in the chart and commit the new Chart.lock"
    )]
    LockOutOfSync { chart: String, lock: String },

    #[error(
        "{lock} locks no version of the dependency `{dependency}` of {chart}: run \
         `helm dependency update` in the chart and commit the new Chart.lock"
    )]
    NotLocked {
        chart: String,
        lock: String,
        dependency: String,
    },

    #[error("{file}: {message}")]
    Invalid { file: String, message: String },

    #[error(
        "{chart}: dependency `{dependency}`: `{repository}` points outside the repository; a \
         file:// dependency is read from the same revision, so it must be inside it"
    )]
    FileOutside {
        chart: String,
        dependency: String,
        repository: String,
    },

    #[error(
        "{chart}: dependency `{dependency}`: `{repository}` has no Chart.yaml at {path} in the \
         same revision; fix the path, or vendor the chart under charts/"
    )]
    FileNotFound {
        chart: String,
        dependency: String,
        repository: String,
        path: String,
    },
}

fn yaml(file: &str, bytes: &[u8]) -> Result<Value, DependencyError> {
    serde_yaml_ng::from_slice(bytes).map_err(|e| DependencyError::Invalid {
        file: file.to_string(),
        message: format!(
            "not valid YAML (line {})",
            e.location().map_or(0, |l| l.line())
        ),
    })
}

/// The dependencies Chart.yaml lists.
pub fn listed(chart_path: &str, chart_yaml: &[u8]) -> Result<Vec<Dependency>, DependencyError> {
    let value = yaml(chart_path, chart_yaml)?;
    Ok(value
        .get("dependencies")
        .and_then(Value::as_array)
        .map(|deps| deps.iter().map(Dependency::from_value).collect())
        .unwrap_or_default())
}

/// Resolves the dependencies of the chart that `is_vendored` (by chart name) says are
/// not under `charts/`. `sources` is called only when something must be fetched.
pub fn resolve(
    files: &ChartFiles<'_>,
    is_vendored: &dyn Fn(&str) -> bool,
    sources: &dyn Fn() -> Result<ChartSources, ChartSourceError>,
) -> Result<Vec<Resolved>, DependencyError> {
    let chart = files.chart_path.to_string();
    let listed = listed(files.chart_path, files.chart_yaml)?;
    let mut resolved = Vec::new();
    let mut remote = Vec::new();
    for dependency in &listed {
        if dependency.repository.is_empty() || is_vendored(&dependency.name) {
            // Not ours to fetch: helm finds it under charts/, or names it missing.
            continue;
        }
        if let Some(path) = dependency.repository.strip_prefix("file://") {
            if !resolved
                .iter()
                .any(|r| matches!(r, Resolved::Local { name, .. } if *name == dependency.name))
            {
                resolved.push(Resolved::Local {
                    name: dependency.name.clone(),
                    path: path.to_string(),
                });
            }
        } else {
            remote.push(dependency);
        }
    }
    if remote.is_empty() {
        return Ok(resolved);
    }
    let source_error = |dependency: &str, source: ChartSourceError| DependencyError::Source {
        chart: chart.clone(),
        dependency: dependency.to_string(),
        source: Box::new(source),
    };
    let sources = sources().map_err(|e| source_error(&remote[0].name, e))?;
    let locked = match files.lock {
        Some((lock_path, bytes)) => {
            let lock = Lock::from_value(&yaml(lock_path, bytes)?);
            // Helm hashes Chart.yaml's dependencies with `@name` replaced by its URL.
            let mut requirements = listed.clone();
            for dependency in &mut requirements {
                let repo = dependency.repository.as_str();
                if (repo.starts_with('@') || repo.starts_with("alias:"))
                    && let Ok(url) = repository_url(repo, &sources)
                {
                    dependency.repository = url;
                }
            }
            if digest(&requirements, &lock.dependencies) != lock.digest {
                return Err(DependencyError::LockOutOfSync {
                    chart,
                    lock: lock_path.to_string(),
                });
            }
            Some((lock_path, lock))
        }
        None => None,
    };
    let mut seen = Vec::new();
    for dependency in remote {
        let version = match &locked {
            Some((lock_path, lock)) => lock
                .dependencies
                .iter()
                .find(|l| l.name == dependency.name)
                .map(|l| l.version.clone())
                .ok_or_else(|| DependencyError::NotLocked {
                    chart: chart.clone(),
                    lock: lock_path.to_string(),
                    dependency: dependency.name.clone(),
                })?,
            None => dependency.version.clone(),
        };
        let key = (
            dependency.repository.clone(),
            dependency.name.clone(),
            version.clone(),
        );
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let reference = ChartRef {
            repository: dependency.repository.clone(),
            name: dependency.name.clone(),
            version,
        };
        let label = if dependency.alias.is_empty() {
            dependency.name.clone()
        } else {
            format!("{} (alias {})", dependency.name, dependency.alias)
        };
        let fetched = fetch(&reference, &sources).map_err(|e| source_error(&label, e))?;
        resolved.push(Resolved::Archive {
            dependency: label,
            chart: fetched,
        });
    }
    Ok(resolved)
}
