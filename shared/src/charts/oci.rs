//! Charts from an OCI registry (`oci://host/path`), through the distribution API as
//! Helm fetches them: the manifest of the version's tag, its chart layer
//! (`application/vnd.cncf.helm.chart.content.v1.tar+gzip`), the blob checked against the
//! layer's digest. A range needs the tag list; an exact version is the tag (`+` written
//! as `_`, as Helm pushes it). A 401 is answered as the registry asks: basic credentials,
//! or a bearer token from its realm.

use std::collections::BTreeMap;

use super::credentials::RegistryLogin;
use super::error::ChartSourceError;
use super::http::{self, Auth, Request, Tls};
use super::repo::exact_version;
use super::semver::{Range, newest_matching};
use super::sources::{ChartSources, FetchedChart};

pub const CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `oci://host[:port]/path` split into the host and the repository path.
fn split_reference(repository: &str) -> Option<(&str, &str)> {
    let rest = repository.strip_prefix("oci://")?.trim_end_matches('/');
    match rest.split_once('/') {
        Some((host, path)) => Some((host, path)),
        None => Some((rest, "")),
    }
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

struct Session<'a> {
    base: String,
    host: String,
    sources: &'a ChartSources,
    login: Option<Option<RegistryLogin>>,
    token: Option<String>,
    /// The registry answered a Basic challenge: send the login with every request.
    basic: bool,
    shown_repository: String,
}

/// Fetches `name` at `version` (exact or a range) from the registry `repository`.
pub fn fetch(
    repository: &str,
    name: &str,
    version: &str,
    sources: &ChartSources,
) -> Result<FetchedChart, ChartSourceError> {
    let (host, path) =
        split_reference(repository).ok_or_else(|| ChartSourceError::UnsupportedRepository {
            repository: repository.to_string(),
        })?;
    let image = if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    };
    let shown = format!("oci://{host}/{image}");
    let exact = exact_version(version);
    if let Some(v) = &exact
        && let Some((archive, hex)) = sources.cache.archive(repository, name, v)
    {
        return Ok(FetchedChart {
            name: name.to_string(),
            version: v.clone(),
            digest: format!("sha256:{hex}"),
            url: format!("{shown}:{}", tag_of(v)),
            archive,
            from_cache: true,
        });
    }
    let plain = sources.plain_http_loopback && is_loopback(host);
    let mut session = Session {
        base: format!(
            "{}://{host}/v2/{image}",
            if plain { "http" } else { "https" }
        ),
        host: host.to_string(),
        sources,
        login: None,
        token: None,
        basic: false,
        shown_repository: shown.clone(),
    };
    let version = match exact {
        Some(v) => v,
        None => session.pick_tag(repository, name, version)?,
    };
    let tag = tag_of(&version);
    if let Some((archive, hex)) = sources.cache.archive(repository, name, &version) {
        return Ok(FetchedChart {
            name: name.to_string(),
            version,
            digest: format!("sha256:{hex}"),
            url: format!("{shown}:{tag}"),
            archive,
            from_cache: true,
        });
    }
    let manifest_url = format!("{}/manifests/{tag}", session.base);
    let manifest = session.get(&manifest_url, Some(MANIFEST), || {
        ChartSourceError::VersionGone {
            url: shown.clone(),
            name: name.to_string(),
            version: version.clone(),
        }
    })?;
    let layer = chart_layer(&manifest).map_err(|message| ChartSourceError::Invalid {
        url: format!("{shown}:{tag}"),
        message,
    })?;
    let expected = layer
        .strip_prefix("sha256:")
        .ok_or_else(|| ChartSourceError::Invalid {
            url: format!("{shown}:{tag}"),
            message: format!("the chart layer's digest `{layer}` is not a sha256 digest"),
        })?
        .to_ascii_lowercase();
    let blob_url = format!("{}/blobs/{layer}", session.base);
    let archive = session.get(&blob_url, None, || ChartSourceError::VersionGone {
        url: shown.clone(),
        name: name.to_string(),
        version: version.clone(),
    })?;
    let actual = super::cache::sha256_hex(&archive);
    if actual != expected {
        return Err(ChartSourceError::DigestMismatch {
            url: format!("{shown}:{tag}"),
            expected: layer,
            actual,
            said_by: "the registry's manifest".to_string(),
        });
    }
    sources
        .cache
        .store_archive(repository, name, &version, &archive)?;
    Ok(FetchedChart {
        name: name.to_string(),
        version,
        digest: format!("sha256:{actual}"),
        url: format!("{shown}:{tag}"),
        archive,
        from_cache: false,
    })
}

/// A version as Helm tags it: `+` is not allowed in a tag, Helm writes `_`.
fn tag_of(version: &str) -> String {
    version.replace('+', "_")
}

/// The digest of the manifest's chart layer.
fn chart_layer(manifest: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Layer {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        layers: Vec<Layer>,
    }
    let manifest: Manifest =
        serde_json::from_slice(manifest).map_err(|e| format!("not an OCI manifest: {e}"))?;
    manifest
        .layers
        .into_iter()
        .find(|l| l.media_type == CHART_LAYER)
        .map(|l| l.digest)
        .ok_or_else(|| format!("not a Helm chart: the manifest has no layer of type {CHART_LAYER}"))
}

/// `Bearer realm="…",service="…",scope="…"` as its parameters.
fn challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Session<'_> {
    fn login(&mut self) -> Result<Option<RegistryLogin>, ChartSourceError> {
        if self.login.is_none() {
            self.login = Some(self.sources.credentials.registry_login(&self.host)?);
        }
        Ok(self.login.clone().flatten())
    }

    fn refused(&self, url: &str, status: u16, had_login: bool) -> ChartSourceError {
        ChartSourceError::Unauthorized {
            url: http::display_url(url).replacen(
                &self.base_shown_prefix(),
                &self.shown_repository,
                1,
            ),
            status,
            advice: if had_login {
                format!(
                    "the registry refused the login kept for {host}; run `helm registry login {host}` again",
                    host = self.host
                )
            } else {
                format!(
                    "the registry wants a login and none is kept for {host}; run `helm registry login {host}`",
                    host = self.host
                )
            },
        }
    }

    fn base_shown_prefix(&self) -> String {
        http::display_url(&self.base)
    }

    /// GETs `url`, answering a 401 as the registry asks; `missing` is the error for a 404.
    fn get(
        &mut self,
        url: &str,
        accept: Option<&str>,
        missing: impl Fn() -> ChartSourceError,
    ) -> Result<Vec<u8>, ChartSourceError> {
        self.response(url, accept, missing).map(|r| r.body)
    }

    fn response(
        &mut self,
        url: &str,
        accept: Option<&str>,
        missing: impl Fn() -> ChartSourceError,
    ) -> Result<http::Response, ChartSourceError> {
        let tls = Tls::default();
        let mut tried_login = self.basic;
        for _ in 0..3 {
            let auth = self.token.clone().map(Auth::Bearer).or_else(|| {
                self.login
                    .clone()
                    .flatten()
                    .filter(|_| tried_login || self.basic)
                    .map(|l| l.auth())
            });
            let response = http::get(&Request {
                url,
                accept,
                auth: auth.as_ref(),
                tls: &tls,
                pass_credentials_all: false,
            })
            .map_err(|e| self.rename(e))?;
            match response.status {
                200..=299 => return Ok(response),
                404 => return Err(missing()),
                401 if !tried_login => {
                    tried_login = true;
                    let header = response.www_authenticate.unwrap_or_default();
                    let (scheme, params) = challenge(&header);
                    let login = self.login()?;
                    if scheme == "bearer" {
                        self.token = Some(self.token(url, &params, login.as_ref())?);
                    } else if login.is_none() {
                        return Err(self.refused(url, 401, false));
                    } else {
                        self.basic = true;
                    }
                }
                401 | 403 => {
                    let had_login = self.login.clone().flatten().is_some();
                    return Err(self.refused(url, response.status, had_login));
                }
                status => {
                    return Err(ChartSourceError::Status {
                        url: self.shown_repository.clone(),
                        status,
                    });
                }
            }
        }
        Err(self.refused(url, 401, self.login.clone().flatten().is_some()))
    }

    /// A bearer token from the realm of the registry's challenge.
    fn token(
        &self,
        url: &str,
        params: &BTreeMap<String, String>,
        login: Option<&RegistryLogin>,
    ) -> Result<String, ChartSourceError> {
        let realm = params
            .get("realm")
            .ok_or_else(|| ChartSourceError::Invalid {
                url: self.shown_repository.clone(),
                message: "the registry asked for a bearer token without saying where to get one"
                    .to_string(),
            })?;
        let mut token_url = url::Url::parse(realm).map_err(|_| ChartSourceError::Invalid {
            url: self.shown_repository.clone(),
            message: "the registry's token realm is not a valid URL".to_string(),
        })?;
        {
            let mut query = token_url.query_pairs_mut();
            for key in ["service", "scope"] {
                if let Some(value) = params.get(key) {
                    query.append_pair(key, value);
                }
            }
        }
        let auth = login.map(RegistryLogin::auth);
        let response = http::get(&Request {
            url: token_url.as_str(),
            accept: Some("application/json"),
            auth: auth.as_ref(),
            tls: &Tls::default(),
            pass_credentials_all: false,
        })
        .map_err(|e| self.rename(e))?;
        if response.status == 401 || response.status == 403 {
            return Err(self.refused(url, response.status, login.is_some()));
        }
        if !(200..300).contains(&response.status) {
            return Err(ChartSourceError::Status {
                url: http::display_url(token_url.as_str()),
                status: response.status,
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&response.body).map_err(|_| ChartSourceError::Invalid {
                url: http::display_url(token_url.as_str()),
                message: "the token service's answer is not JSON with a token".to_string(),
            })?;
        let token = if answer.token.is_empty() {
            answer.access_token
        } else {
            answer.token
        };
        if token.is_empty() {
            return Err(self.refused(url, 401, login.is_some()));
        }
        Ok(token)
    }

    /// An unreachable registry is named by its `oci://` reference.
    fn rename(&self, error: ChartSourceError) -> ChartSourceError {
        match error {
            ChartSourceError::Unreachable { message, .. } => ChartSourceError::Unreachable {
                url: self.shown_repository.clone(),
                message,
            },
            other => other,
        }
    }

    /// The newest tag of `name` that `range` accepts, from the tag list (a cached one
    /// while it is fresh and has a match).
    fn pick_tag(
        &mut self,
        repository: &str,
        name: &str,
        version: &str,
    ) -> Result<String, ChartSourceError> {
        let range = Range::asked(name, version)?;
        let pick = |tags: &[String]| {
            let versions: Vec<String> = tags.iter().map(|t| t.replace('_', "+")).collect();
            newest_matching(&range, versions.iter().map(String::as_str)).map(|v| v.original)
        };
        if !self.sources.refresh
            && let Some((bytes, age)) = self.sources.cache.tags(repository, name)
            && age <= self.sources.index_max_age
            && let Ok(tags) = serde_json::from_slice::<Vec<String>>(&bytes)
            && let Some(found) = pick(&tags)
        {
            return Ok(found);
        }
        let tags = self.tags(name)?;
        if let Ok(bytes) = serde_json::to_vec(&tags) {
            self.sources.cache.store_tags(repository, name, &bytes)?;
        }
        pick(&tags).ok_or_else(|| {
            let mut newest: Vec<String> = tags.iter().map(|t| t.replace('_', "+")).collect();
            newest.sort_by(|a, b| {
                match (
                    super::semver::Version::parse(a),
                    super::semver::Version::parse(b),
                ) {
                    (Some(a), Some(b)) => b.compare(&a),
                    _ => b.cmp(a),
                }
            });
            newest.truncate(3);
            ChartSourceError::NoMatchingVersion {
                url: self.shown_repository.clone(),
                name: name.to_string(),
                range: version.to_string(),
                newest,
            }
        })
    }

    /// Every tag, following the registry's `Link` pages.
    fn tags(&mut self, name: &str) -> Result<Vec<String>, ChartSourceError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut all = Vec::new();
        let mut next = Some(format!("{}/tags/list", self.base));
        let origin = self
            .base
            .split("/v2/")
            .next()
            .unwrap_or_default()
            .to_string();
        let shown = self.shown_repository.clone();
        for _ in 0..100 {
            let Some(url) = next.take() else { break };
            let (body, link) =
                self.get_with_link(&url, || ChartSourceError::ChartNotInRepository {
                    url: shown.clone(),
                    name: name.to_string(),
                })?;
            let list: TagList =
                serde_json::from_slice(&body).map_err(|_| ChartSourceError::Invalid {
                    url: shown.clone(),
                    message: "the tag list is not valid JSON".to_string(),
                })?;
            all.extend(list.tags.unwrap_or_default());
            next = link
                .and_then(|l| {
                    let start = l.find('<')? + 1;
                    let end = l.find('>')?;
                    l.contains("rel=\"next\"")
                        .then(|| l[start..end].to_string())
                })
                .map(|path| {
                    if path.starts_with('/') {
                        format!("{origin}{path}")
                    } else {
                        path
                    }
                });
        }
        Ok(all)
    }

    fn get_with_link(
        &mut self,
        url: &str,
        missing: impl Fn() -> ChartSourceError,
    ) -> Result<(Vec<u8>, Option<String>), ChartSourceError> {
        let response = self.response(url, Some("application/json"), missing)?;
        Ok((response.body, response.link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_references_are_read() {
        let (scheme, params) = challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:charts/web:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(params["realm"], "https://auth.example.com/token");
        assert_eq!(params["scope"], "repository:charts/web:pull");
        assert_eq!(challenge(r#"Basic realm="Registry Realm""#).0, "basic");
        assert_eq!(
            split_reference("oci://127.0.0.1:5000/charts/team"),
            Some(("127.0.0.1:5000", "charts/team"))
        );
        assert!(
            is_loopback("127.0.0.1:5000") && is_loopback("localhost") && is_loopback("[::1]:80")
        );
        assert!(!is_loopback("registry.example.com:5000"));
        assert_eq!(tag_of("1.2.3+build.7"), "1.2.3_build.7");
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:c"}},"layers":[{{"mediaType":"{CHART_LAYER}","digest":"sha256:abc","size":3}}]}}"#
        );
        assert_eq!(chart_layer(manifest.as_bytes()).unwrap(), "sha256:abc");
        assert!(
            chart_layer(br#"{"layers":[]}"#)
                .unwrap_err()
                .contains("not a Helm chart")
        );
    }
}
