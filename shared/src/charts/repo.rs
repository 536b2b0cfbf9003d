//! Charts from a chart repository (`https://…` with an `index.yaml`), as
//! `helm dependency build` fetches them: the index picks the version and the archive's
//! URL (relative URLs resolved against the repository's), the archive is checked against
//! the index's digest, then cached.

use super::error::ChartSourceError;
use super::http::{self, Request};
use super::index::{Index, IndexEntry};
use super::semver::{Range, Version};
use super::sources::{ChartSources, FetchedChart};

/// Fetches `name` at `version` (exact or a range) from the repository at `url`.
pub fn fetch(
    url: &str,
    name: &str,
    version: &str,
    sources: &ChartSources,
) -> Result<FetchedChart, ChartSourceError> {
    let url = url.trim_end_matches('/');
    let shown = http::display_url(url);
    let exact = exact_version(version);
    if let Some(exact) = &exact
        && let Some((archive, hex)) = sources.cache.archive(url, name, exact)
    {
        return Ok(FetchedChart {
            name: name.to_string(),
            version: exact.clone(),
            digest: format!("sha256:{hex}"),
            url: shown,
            archive,
            from_cache: true,
        });
    }
    let range = Range::asked(name, version)?;
    let pick = |index: &Index| -> Option<IndexEntry> {
        match &exact {
            Some(v) => index.exact(name, v).cloned(),
            None => index.select(name, &range).cloned(),
        }
    };
    // A cached index does while it is fresh enough and has what is asked for; an exact
    // version never changes, so for one any cached index that lists it does.
    let cached = (!sources.refresh)
        .then(|| sources.cache.index(url))
        .flatten()
        .filter(|(_, age)| exact.is_some() || *age <= sources.index_max_age)
        .and_then(|(bytes, _)| Index::parse(&bytes).ok())
        .and_then(|index| pick(&index));
    let entry = match cached {
        Some(entry) => entry,
        None => {
            let index = fetch_index(url, sources)?;
            pick(&index).ok_or_else(|| {
                if !index.entries.contains_key(name) {
                    ChartSourceError::ChartNotInRepository {
                        url: shown.clone(),
                        name: name.to_string(),
                    }
                } else if let Some(v) = &exact {
                    ChartSourceError::VersionGone {
                        url: shown.clone(),
                        name: name.to_string(),
                        version: v.clone(),
                    }
                } else {
                    ChartSourceError::NoMatchingVersion {
                        url: shown.clone(),
                        name: name.to_string(),
                        range: version.to_string(),
                        newest: index.newest_versions(name, 3),
                    }
                }
            })?
        }
    };
    let expected = entry
        .digest
        .as_deref()
        .map(|d| d.trim_start_matches("sha256:").to_ascii_lowercase());
    if let Some((archive, hex)) = sources.cache.archive(url, name, &entry.version)
        && expected.as_ref().is_none_or(|e| *e == hex)
    {
        return Ok(FetchedChart {
            name: name.to_string(),
            version: entry.version.clone(),
            digest: format!("sha256:{hex}"),
            url: shown,
            archive,
            from_cache: true,
        });
    }
    let archive_url = resolve_url(url, &entry)?;
    let archive = get(url, &archive_url, sources)?;
    let shown_archive = http::display_url(&archive_url);
    let actual = super::cache::sha256_hex(&archive);
    if let Some(expected) = &expected
        && *expected != actual
    {
        return Err(ChartSourceError::DigestMismatch {
            url: shown_archive,
            expected: format!("sha256:{expected}"),
            actual,
            said_by: format!("the index of {shown}"),
        });
    }
    sources
        .cache
        .store_archive(url, name, &entry.version, &archive)?;
    Ok(FetchedChart {
        name: name.to_string(),
        version: entry.version,
        digest: format!("sha256:{actual}"),
        url: shown_archive,
        archive,
        from_cache: false,
    })
}

/// `version` when it names one version rather than a range.
pub fn exact_version(version: &str) -> Option<String> {
    let v = version.trim();
    let v = v.strip_prefix('=').unwrap_or(v).trim();
    let parsed = Version::parse(v)?;
    // `1.2` is a range to Helm (`1.2.x`): only a full version is exact.
    let core = v.trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or(core);
    (core.split('.').count() == 3).then_some(parsed.original)
}

fn resolve_url(repository: &str, entry: &IndexEntry) -> Result<String, ChartSourceError> {
    let first = entry.urls.first().map(String::as_str).unwrap_or_default();
    let base =
        url::Url::parse(&format!("{repository}/")).map_err(|e| ChartSourceError::Invalid {
            url: http::display_url(repository),
            message: format!("not a valid repository URL: {e}"),
        })?;
    base.join(first)
        .map(|u| u.to_string())
        .map_err(|e| ChartSourceError::Invalid {
            url: http::display_url(repository),
            message: format!(
                "the index gives an invalid URL `{first}` for version {}: {e}",
                entry.version
            ),
        })
}

fn fetch_index(url: &str, sources: &ChartSources) -> Result<Index, ChartSourceError> {
    let index_url = format!("{url}/index.yaml");
    let bytes = get(url, &index_url, sources)?;
    let index = Index::parse(&bytes).map_err(|message| ChartSourceError::Invalid {
        url: http::display_url(&index_url),
        message,
    })?;
    sources.cache.store_index(url, &bytes)?;
    Ok(index)
}

/// GETs `target` with the credentials the repositories file holds for `repository`:
/// sent to the repository's own host only, unless `pass_credentials_all` says otherwise.
fn get(
    repository: &str,
    target: &str,
    sources: &ChartSources,
) -> Result<Vec<u8>, ChartSourceError> {
    let configured = sources.credentials.repository_for_url(repository);
    let tls = configured.map(|r| r.tls()).unwrap_or_default();
    let pass_all = configured.is_some_and(|r| r.pass_credentials_all);
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()))
    };
    let same_host = host(repository) == host(target);
    let auth = configured
        .and_then(|r| r.auth())
        .filter(|_| same_host || pass_all);
    let response = http::get(&Request {
        url: target,
        accept: None,
        auth: auth.as_ref(),
        tls: &tls,
        pass_credentials_all: pass_all,
    })?;
    let shown = http::display_url(target);
    match response.status {
        200..=299 => Ok(response.body),
        401 | 403 => Err(ChartSourceError::Unauthorized {
            url: shown,
            status: response.status,
            advice: if auth.is_some() {
                format!(
                    "the credentials the Helm repositories file ({}) holds for {} were refused; \
                     fix them with `helm repo add NAME {} --username USER --password-stdin --force-update`",
                    sources.credentials.repositories_file.display(),
                    http::display_url(repository),
                    http::display_url(repository),
                )
            } else {
                format!(
                    "the repository wants credentials; add them with `helm repo add NAME {} \
                     --username USER --password-stdin` (the Helm repositories file: {})",
                    http::display_url(repository),
                    sources.credentials.repositories_file.display(),
                )
            },
        }),
        status => Err(ChartSourceError::Status { url: shown, status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions_are_told_from_ranges() {
        assert_eq!(exact_version("1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(exact_version("v1.2.3-rc.1").as_deref(), Some("v1.2.3-rc.1"));
        assert_eq!(exact_version("=1.2.3").as_deref(), Some("1.2.3"));
        for range in ["1.2", "^1.2.3", "~1.2.3", ">=1.0.0", "1.x", "*", ""] {
            assert_eq!(exact_version(range), None, "{range}");
        }
    }

    #[test]
    fn relative_urls_are_resolved_against_the_repository() {
        let entry = |u: &str| IndexEntry {
            version: "1.0.0".into(),
            urls: vec![u.into()],
            digest: None,
        };
        let repo = "https://example.com/charts/stable";
        assert_eq!(
            resolve_url(repo, &entry("a-1.0.0.tgz")).unwrap(),
            "https://example.com/charts/stable/a-1.0.0.tgz"
        );
        assert_eq!(
            resolve_url(repo, &entry("https://cdn.example.org/a.tgz")).unwrap(),
            "https://cdn.example.org/a.tgz"
        );
    }

    #[test]
    fn a_cached_archive_is_used_without_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let sources = ChartSources::with_cache_dir(dir.path().to_path_buf());
        // Port 9 on loopback: nothing listens, so any request would fail the test.
        let repo = "https://127.0.0.1:9/charts";
        sources
            .cache
            .store_archive(repo, "web", "1.2.3", b"tgz")
            .unwrap();
        let got = fetch(repo, "web", "1.2.3", &sources).unwrap();
        assert!(got.from_cache);
        assert_eq!(got.archive, b"tgz");
        assert_eq!(
            got.digest,
            format!("sha256:{}", super::super::cache::sha256_hex(b"tgz"))
        );
        // A range is answered from the cached index and the cached archive.
        sources
            .cache
            .store_index(
                repo,
                b"entries:\n  web:\n  - version: 1.2.3\n    urls: [web-1.2.3.tgz]\n",
            )
            .unwrap();
        let got = fetch(repo, "web", "^1.0", &sources).unwrap();
        assert_eq!((got.version.as_str(), got.from_cache), ("1.2.3", true));
        // No match in the cached index: the repository is asked, and is unreachable.
        let err = fetch(repo, "web", "^2.0", &sources)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot reach https://127.0.0.1:9/charts/index.yaml"),
            "{err}"
        );
    }
}
