//! A chart that is not in git (Argo CD's multi-source apps): fetched from a chart
//! repository or an OCI registry by name and version, and laid into the revision's tree
//! under a root of its own, so that it renders, records and drifts like a chart in git,
//! with its values files read from git at the revision.
//!
//! The root is the archive's name (`podinfo-6.5.4.tgz`), so objects' origins read
//! `podinfo-6.5.4.tgz/templates/deployment.yaml`: a path no repository file shares in
//! practice, and one that says where the template came from.

use std::io::Read;
use std::sync::Arc;

use crate::charts::{self, ChartRef, ChartSources};
use crate::source::Snapshot;

use super::{MAX_FILE_BYTES, RenderError};

/// The most a chart archive may unpack to: charts are kilobytes; this keeps a hostile
/// archive (a gzip bomb) from exhausting memory.
const MAX_UNPACKED_BYTES: usize = 64 * 1024 * 1024;

/// A chart's files keyed by their path inside the chart (`templates/x.yaml`).
pub(super) type ChartFiles = Vec<(String, Vec<u8>)>;

/// A chart an app takes from outside git, as the app list or the flags give it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteChart {
    /// A chart repository (`https://…`, its `index.yaml` beside) or an OCI registry path
    /// (`oci://host/path`, the chart at `<path>/<name>`).
    pub repository: String,
    /// The chart's name in that repository.
    pub name: String,
    /// A version or a semver range; empty means the newest.
    #[serde(default)]
    pub version: String,
}

/// Where a release's chart came from when it was not in git: kept in the release record,
/// shown by release-history, and used by drift to render the very same chart again.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ChartSource {
    /// The repository or registry, without credentials.
    pub repository: String,
    /// The chart's name there.
    pub name: String,
    /// The version fetched (a range resolved).
    pub version: String,
    /// `sha256:<hex>` of the chart archive.
    pub digest: String,
}

impl ChartSource {
    /// The chart exactly as recorded, to fetch it again.
    pub fn pinned(&self) -> RemoteChart {
        RemoteChart {
            repository: self.repository.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }
}

/// The revision's tree with `chart` fetched and laid under a root of its own, which the
/// returned tree's `root` names.
pub(super) fn attached(
    snapshot: &Snapshot,
    chart: &RemoteChart,
) -> Result<(Snapshot, ChartSource), RenderError> {
    let (source, files) = fetched(chart, "the app's chart")?;
    let root = format!("{}-{}.tgz", source.name, source.version);
    let mut tree = snapshot.clone();
    let prefix = format!("{root}/");
    let tree_files = Arc::make_mut(&mut tree.files);
    tree_files.retain(|path, _| !path.starts_with(&prefix));
    for (path, data) in files {
        tree_files.insert(format!("{prefix}{path}"), data);
    }
    tree.root = root;
    Ok((tree, source))
}

/// `chart` fetched (or found in the cache) and unpacked: where it came from, and its
/// files keyed by their path inside the chart. `of` says whose chart it is, for errors.
pub(super) fn fetched(
    chart: &RemoteChart,
    of: &str,
) -> Result<(ChartSource, ChartFiles), RenderError> {
    let boxed = |source| RenderError::ChartSource {
        of: of.to_string(),
        name: chart.name.clone(),
        version: match chart.version.as_str() {
            "" => "(newest)".to_string(),
            version => version.to_string(),
        },
        source: Box::new(source),
    };
    let sources = ChartSources::from_env().map_err(boxed)?;
    let fetched = charts::fetch(
        &ChartRef {
            repository: chart.repository.clone(),
            name: chart.name.clone(),
            version: chart.version.clone(),
        },
        &sources,
    )
    .map_err(boxed)?;
    let files = unpack(&fetched.archive).map_err(|message| RenderError::ChartArchive {
        chart: format!("{} {}", fetched.url, fetched.version),
        message,
    })?;
    Ok((
        ChartSource {
            repository: recorded_repository(&chart.repository),
            name: fetched.name,
            version: fetched.version,
            digest: fetched.digest,
        },
        files,
    ))
}

/// The repository as records and outputs keep it: a URL with a user and password in it
/// (`https://user:secret@host/charts`) is kept without them.
fn recorded_repository(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest))
            if rest
                .split('/')
                .next()
                .is_some_and(|host| host.contains('@')) =>
        {
            charts::display_url(url)
        }
        _ => url.to_string(),
    }
}

/// The files of a chart archive (`NAME/Chart.yaml`, …) keyed by their path under the
/// chart's own directory. Links, devices and paths leaving the directory are skipped, as
/// helm skips them.
fn unpack(archive: &[u8]) -> Result<ChartFiles, String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let entries = tar
        .entries()
        .map_err(|e| format!("not a gzipped tar archive: {e}"))?;
    let mut files = Vec::new();
    let mut total = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("a damaged archive: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("a name that is not a path: {e}"))?
            .to_string_lossy()
            .into_owned();
        // `podinfo/templates/x.yaml`: the chart's files sit under its name.
        let Some((_, inside)) = path.split_once('/') else {
            continue;
        };
        let parts: Vec<&str> = inside.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() || parts.iter().any(|p| *p == ".." || *p == ".") {
            continue;
        }
        let size = usize::try_from(entry.size()).unwrap_or(usize::MAX);
        if size > MAX_FILE_BYTES {
            return Err(format!(
                "{inside} is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit for one file"
            ));
        }
        total = total.saturating_add(size);
        if total > MAX_UNPACKED_BYTES {
            return Err(format!(
                "it unpacks to more than {MAX_UNPACKED_BYTES} bytes"
            ));
        }
        let mut data = Vec::with_capacity(size);
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot read {inside}: {e}"))?;
        files.push((parts.join("/"), data));
    }
    if !files
        .iter()
        .any(|(path, _)| path == super::helm::CHART_FILE)
    {
        return Err("it holds no Chart.yaml".to_string());
    }
    Ok(files)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, text) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, text.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_repository_is_recorded_without_credentials() {
        assert_eq!(
            recorded_repository("https://reader:s3cret@charts.example.com/stable"),
            "https://charts.example.com/stable"
        );
        assert_eq!(
            recorded_repository("oci://registry.example.com/charts"),
            "oci://registry.example.com/charts"
        );
        assert_eq!(
            recorded_repository("https://charts.example.com/a@b"),
            "https://charts.example.com/a@b"
        );
    }

    #[test]
    fn a_chart_archive_unpacks_under_the_charts_own_directory() {
        let bytes = archive(&[
            ("podinfo/Chart.yaml", "name: podinfo\n"),
            ("podinfo/templates/deployment.yaml", "kind: Deployment\n"),
            ("podinfo/charts/sub-1.0.0.tgz", "x"),
        ]);
        let files = unpack(&bytes).unwrap();
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Chart.yaml",
                "templates/deployment.yaml",
                "charts/sub-1.0.0.tgz"
            ]
        );
    }

    #[test]
    fn an_archive_without_a_chart_or_not_gzipped_is_refused() {
        let err = unpack(&archive(&[("x/values.yaml", "a: 1\n")])).unwrap_err();
        assert_eq!(err, "it holds no Chart.yaml");
        let err = unpack(b"plain text").unwrap_err();
        assert!(
            err.starts_with("not a gzipped tar archive") || err.starts_with("a damaged"),
            "{err}"
        );
    }
}
