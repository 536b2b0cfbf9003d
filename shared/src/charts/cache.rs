//! The chart cache on disk: `$XDG_CACHE_HOME/kubectl-gitops/charts` (else
//! `~/.cache/kubectl-gitops/charts`), one directory per repository:
//!
//! ```text
//! <host>-<hash of the repository URL>/
//!   index.yaml                           the repository's index (chart repositories)
//!   tags/<name>.json                     the tag list of <name> (OCI registries)
//!   <name>/<version>/sha256-<hex>.tgz    an archive, verified before it was stored
//! ```
//!
//! Files are written to a temporary file beside their place and renamed, so a reader
//! never sees half a file, and two renders storing the same file at once both succeed.
//! An archive's name carries its digest, checked again when it is read.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::error::ChartSourceError;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A name or version as one safe path component.
fn component(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') || safe != text {
        // Not the text itself: make it unique again.
        format!(
            "_{}-{}",
            safe.trim_start_matches('.'),
            &sha256_hex(text.as_bytes())[..12]
        )
    } else {
        safe
    }
}

impl Cache {
    pub fn new(root: PathBuf) -> Cache {
        Cache { root }
    }

    /// `$XDG_CACHE_HOME/kubectl-gitops/charts`, else `~/.cache/kubectl-gitops/charts`.
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".cache")
            });
        base.join("kubectl-gitops").join("charts")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn repository_dir(&self, repository: &str) -> PathBuf {
        let repository = repository.trim_end_matches('/');
        let host = url::Url::parse(repository)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "repository".to_string());
        let key = format!(
            "{}-{}",
            component(&host),
            &sha256_hex(repository.as_bytes())[..16]
        );
        self.root.join(key)
    }

    /// The cached archive of `name` `version` from `repository`, with its hex digest;
    /// `None` when there is none (or it no longer matches its digest).
    pub fn archive(
        &self,
        repository: &str,
        name: &str,
        version: &str,
    ) -> Option<(Vec<u8>, String)> {
        let dir = self
            .repository_dir(repository)
            .join(component(name))
            .join(component(version));
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let file_name = entry.file_name();
            let Some(hex) = file_name
                .to_str()
                .and_then(|f| f.strip_prefix("sha256-"))
                .and_then(|f| f.strip_suffix(".tgz"))
            else {
                continue;
            };
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if sha256_hex(&bytes) == hex {
                return Some((bytes, hex.to_string()));
            }
        }
        None
    }

    /// Stores a verified archive; returns its hex digest.
    pub fn store_archive(
        &self,
        repository: &str,
        name: &str,
        version: &str,
        bytes: &[u8],
    ) -> Result<String, ChartSourceError> {
        let hex = sha256_hex(bytes);
        let path = self
            .repository_dir(repository)
            .join(component(name))
            .join(component(version))
            .join(format!("sha256-{hex}.tgz"));
        write_atomically(&path, bytes)?;
        Ok(hex)
    }

    /// The cached index of `repository` and how old it is.
    pub fn index(&self, repository: &str) -> Option<(Vec<u8>, Duration)> {
        read_with_age(&self.repository_dir(repository).join("index.yaml"))
    }

    pub fn store_index(&self, repository: &str, bytes: &[u8]) -> Result<(), ChartSourceError> {
        write_atomically(&self.repository_dir(repository).join("index.yaml"), bytes)
    }

    /// The cached tag list of `name` in `repository` and how old it is.
    pub fn tags(&self, repository: &str, name: &str) -> Option<(Vec<u8>, Duration)> {
        let file = format!("{}.json", component(name));
        read_with_age(&self.repository_dir(repository).join("tags").join(file))
    }

    pub fn store_tags(
        &self,
        repository: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), ChartSourceError> {
        let file = format!("{}.json", component(name));
        write_atomically(
            &self.repository_dir(repository).join("tags").join(file),
            bytes,
        )
    }
}

fn read_with_age(path: &Path) -> Option<(Vec<u8>, Duration)> {
    let bytes = std::fs::read(path).ok()?;
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    Some((bytes, age))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ChartSourceError> {
    let failed = |e: std::io::Error| ChartSourceError::Cache {
        path: path.to_path_buf(),
        message: format!("cannot write it: {e}"),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_found_by_name_and_version_and_checked_against_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let repo = "https://charts.example.com/stable/";
        assert!(cache.archive(repo, "redis", "1.2.3").is_none());
        let hex = cache
            .store_archive(repo, "redis", "1.2.3", b"archive")
            .unwrap();
        assert_eq!(hex, sha256_hex(b"archive"));
        // The same repository with or without the trailing slash.
        let (bytes, got) = cache
            .archive("https://charts.example.com/stable", "redis", "1.2.3")
            .unwrap();
        assert_eq!((bytes.as_slice(), got), (&b"archive"[..], hex.clone()));
        assert!(cache.archive(repo, "redis", "1.2.4").is_none());
        assert!(
            cache
                .archive("oci://other/charts", "redis", "1.2.3")
                .is_none()
        );
        // A file altered on disk is not a hit.
        let path = dir
            .path()
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("redis/1.2.3")
            .join(format!("sha256-{hex}.tgz"));
        std::fs::write(&path, b"tampered").unwrap();
        assert!(cache.archive(repo, "redis", "1.2.3").is_none());
        // Names that are not path components stay inside the cache.
        cache
            .store_archive(repo, "../../x", "1.0.0/..", b"y")
            .unwrap();
        assert!(cache.archive(repo, "../../x", "1.0.0/..").is_some());
        assert!(!dir.path().join("x").exists());
        cache.store_index(repo, b"entries: {}").unwrap();
        assert_eq!(cache.index(repo).unwrap().0, b"entries: {}");
    }
}
