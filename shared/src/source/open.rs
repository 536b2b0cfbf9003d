//! Opening the repository a `--repo` value names: a directory inside a checkout, or a URL
//! whose clone ([`super::remote`]) is kept in the user's cache directory.

use std::path::{Path, PathBuf};

use super::{Repo, SourceError};

/// The repository a `--repo` value names: a URL (cloned or fetched into
/// [`repo_cache_dir`] with the user's git) or a directory inside a checkout.
pub fn open_repo(spec: &str) -> Result<Repo, SourceError> {
    if is_url(spec) {
        Repo::open_remote(spec, &repo_cache_dir())
    } else {
        Repo::discover(Path::new(spec))
    }
}

/// `scheme://...`, or scp-like `user@host:path` that is not a directory here.
pub fn is_url(spec: &str) -> bool {
    spec.contains("://") || (spec.contains('@') && spec.contains(':') && !Path::new(spec).exists())
}

/// Where `--repo URL` clones are kept: `$XDG_CACHE_HOME/kubectl-gitops/repos`.
pub fn repo_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubectl-gitops").join("repos")
}

#[cfg(test)]
mod tests {
    use super::is_url;

    #[test]
    fn urls_are_told_from_directories() {
        assert!(is_url("https://example.com/r.git"));
        assert!(is_url("git@example.com:org/r.git"));
        assert!(!is_url("/tmp"));
    }
}
