//! One chart fetched from wherever its repository says: a chart repository, an OCI
//! registry, or a repository of the Helm repositories file named by `@name`.

use super::error::ChartSourceError;
use super::sources::{ChartRef, ChartSources, FetchedChart};
use super::{oci, repo};

/// Fetches `chart` (from the cache when it can), its digest verified.
pub fn fetch(chart: &ChartRef, sources: &ChartSources) -> Result<FetchedChart, ChartSourceError> {
    let repository = repository_url(&chart.repository, sources)?;
    if repository.starts_with("oci://") {
        oci::fetch(&repository, &chart.name, &chart.version, sources)
    } else {
        repo::fetch(&repository, &chart.name, &chart.version, sources)
    }
}

/// The URL `repository` stands for: `@name` and `alias:name` looked up in the Helm
/// repositories file; URLs as they are.
pub fn repository_url(
    repository: &str,
    sources: &ChartSources,
) -> Result<String, ChartSourceError> {
    let repository = repository.trim();
    if let Some(name) = repository
        .strip_prefix('@')
        .or_else(|| repository.strip_prefix("alias:"))
    {
        return sources
            .credentials
            .repository_named(name)
            .map(|r| r.url.clone())
            .ok_or_else(|| ChartSourceError::UnknownRepository {
                repository: repository.to_string(),
                file: sources.credentials.repositories_file.clone(),
            });
    }
    let lower = repository.to_ascii_lowercase();
    if ["https://", "http://", "oci://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        Ok(repository.to_string())
    } else {
        Err(ChartSourceError::UnsupportedRepository {
            repository: repository.to_string(),
        })
    }
}
