//! A chart repository's `index.yaml`: its entries, and the one a version range picks
//! (the newest match, as `helm dependency update` picks it).

use std::collections::BTreeMap;

use super::semver::{Range, Version};

/// One version of a chart in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub version: String,
    /// Where the archive is: absolute, or relative to the repository URL.
    pub urls: Vec<String>,
    /// The archive's hex SHA-256, when the index gives one.
    pub digest: Option<String>,
}

#[derive(Debug, Default)]
pub struct Index {
    pub entries: BTreeMap<String, Vec<IndexEntry>>,
}

#[derive(serde::Deserialize)]
struct RawIndex {
    #[serde(default)]
    entries: Option<BTreeMap<String, Option<Vec<RawEntry>>>>,
}

#[derive(serde::Deserialize)]
struct RawEntry {
    #[serde(default)]
    version: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    digest: Option<String>,
}

fn text_of(value: &serde_yaml_ng::Value) -> Option<String> {
    match value {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Index {
    /// Parses an index (YAML, or the JSON Helm also accepts).
    pub fn parse(bytes: &[u8]) -> Result<Index, String> {
        let raw: RawIndex = serde_yaml_ng::from_slice(bytes).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            format!("not a valid chart repository index.yaml (line {line})")
        })?;
        let entries = raw
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|(name, versions)| {
                let versions = versions
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| {
                        Some(IndexEntry {
                            version: text_of(e.version.as_ref()?)?,
                            urls: e.urls.unwrap_or_default(),
                            digest: e.digest.filter(|d| !d.is_empty()),
                        })
                    })
                    .collect();
                (name, versions)
            })
            .collect();
        Ok(Index { entries })
    }

    /// The versions of `name`, newest first (for messages).
    pub fn newest_versions(&self, name: &str, count: usize) -> Vec<String> {
        let mut versions: Vec<Version> = self
            .entries
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|e| Version::parse(&e.version))
            .collect();
        versions.sort_by(|a, b| b.compare(a));
        versions
            .into_iter()
            .take(count)
            .map(|v| v.original)
            .collect()
    }

    /// The newest entry of `name` that `range` accepts and that has a URL.
    pub fn select(&self, name: &str, range: &Range) -> Option<&IndexEntry> {
        self.entries
            .get(name)?
            .iter()
            .filter(|e| !e.urls.is_empty())
            .filter_map(|e| Some((Version::parse(&e.version)?, e)))
            .filter(|(v, _)| range.matches(v))
            .max_by(|(a, _), (b, _)| a.compare(b))
            .map(|(_, e)| e)
    }

    /// The entry of `name` at exactly `version` (as written, or the same semver).
    pub fn exact(&self, name: &str, version: &str) -> Option<&IndexEntry> {
        let entries = self.entries.get(name)?;
        entries.iter().find(|e| e.version == version).or_else(|| {
            let want = Version::parse(version)?;
            entries.iter().find(|e| {
                Version::parse(&e.version)
                    .is_some_and(|v| v.compare(&want).is_eq() && !e.urls.is_empty())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "apiVersion: v1
entries:
  redis:
  - apiVersion: v2
    name: redis
    version: 2.1.0
    digest: aaaa
    urls: [https://cdn.example.com/redis-2.1.0.tgz]
  - name: redis
    version: 1.9.3
    digest: bbbb
    urls: [redis-1.9.3.tgz]
  - name: redis
    version: 1.10.0
    urls: [charts/redis-1.10.0.tgz]
  - name: redis
    version: 1.11.0-rc.1
    urls: [redis-1.11.0-rc.1.tgz]
  - name: redis
    version: 1.12.0
    urls: []
  empty:
generated: \"2026-01-01T00:00:00Z\"
";

    #[test]
    fn the_newest_match_with_a_url_is_picked() {
        let index = Index::parse(INDEX.as_bytes()).unwrap();
        let pick = |range: &str| {
            index
                .select("redis", &Range::parse(range).unwrap())
                .map(|e| e.version.clone())
        };
        assert_eq!(pick("^1.0").as_deref(), Some("1.10.0"));
        assert_eq!(pick("~1.9").as_deref(), Some("1.9.3"));
        assert_eq!(pick("*").as_deref(), Some("2.1.0"));
        assert_eq!(pick(">=1.11.0-0 <2").as_deref(), Some("1.11.0-rc.1"));
        assert_eq!(pick("^3"), None);
        assert_eq!(index.select("nope", &Range::parse("*").unwrap()), None);
        assert_eq!(
            index.exact("redis", "1.9.3").unwrap().digest.as_deref(),
            Some("bbbb")
        );
        assert_eq!(index.newest_versions("redis", 2), ["2.1.0", "1.12.0"]);
        assert!(index.entries["empty"].is_empty());
    }

    #[test]
    fn a_broken_index_names_its_line() {
        let err = Index::parse(b"entries:\n  a: [\n").unwrap_err();
        assert!(err.contains("index.yaml"), "{err}");
    }
}
