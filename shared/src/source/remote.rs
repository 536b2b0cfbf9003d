//! `--repo URL`: a bare clone in a cache directory, kept current with `git fetch`.
//!
//! The network side runs the `git` command line, not libgit2, so the user's credential
//! helpers, ssh-agent, proxies and `url.<base>.insteadOf` rules all apply (our git2 build has
//! no https/ssh transports at all).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use git2::Repository;
use sha2::{Digest, Sha256};

use super::{Repo, SourceError};

/// Branches and tags, forced, so the cache mirrors the remote after every fetch (the
/// `refs/pull/*` and similar that `--mirror` would bring are not needed).
const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

impl Repo {
    /// `--repo URL`: clone (bare) or fetch into `cache_dir/<stable hash of url>` using the
    /// `git` CLI, then open it. A local path that is a directory is just discovered.
    pub fn open_remote(url: &str, cache_dir: &Path) -> Result<Repo, SourceError> {
        if Path::new(url).is_dir() {
            return Repo::discover(Path::new(url));
        }
        let shown = redact(url);
        let write_err = |path: &Path, e: std::io::Error| SourceError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        fs::create_dir_all(cache_dir).map_err(|e| write_err(cache_dir, e))?;
        let key = cache_key(url);
        let dest = cache_dir.join(&key);

        if let Ok(repo) = Repository::open_bare(&dest) {
            let mut fetch = Command::new("git");
            fetch
                .arg("--git-dir")
                .arg(&dest)
                .args(["fetch", "--quiet", "--prune", "origin"])
                .args(REFSPECS);
            run_git(fetch, "fetch", url)?;
            return Ok(Repo::from_git2(repo, Some(shown)));
        }
        if dest.exists() {
            // A broken cache entry (say, an interrupted run of an older version): start over.
            fs::remove_dir_all(&dest).map_err(|e| write_err(&dest, e))?;
        }

        // Clone beside the final place and rename, so a crash or a concurrent run never
        // leaves a half-cloned repository where the next run would trust it.
        let partial = cache_dir.join(format!(".{key}.partial-{}", std::process::id()));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(|e| write_err(&partial, e))?;
        }
        let mut clone = Command::new("git");
        clone
            .args(["clone", "--bare", "--quiet", "--"])
            .arg(url)
            .arg(&partial);
        if let Err(e) = run_git(clone, "clone", url) {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
        if let Err(e) = fs::rename(&partial, &dest) {
            let _ = fs::remove_dir_all(&partial);
            // Another run won the race and the cache is there: use it.
            if Repository::open_bare(&dest).is_err() {
                return Err(write_err(&dest, e));
            }
        }
        let repo = Repository::open_bare(&dest).map_err(|e| SourceError::Open {
            path: dest.display().to_string(),
            message: e.message().to_owned(),
        })?;
        Ok(Repo::from_git2(repo, Some(shown)))
    }
}

/// Run git with stdin closed (the terminal prompt of a credential helper still works, git
/// opens the tty itself); its stderr becomes the error message.
fn run_git(mut command: Command, action: &'static str, url: &str) -> Result<(), SourceError> {
    let shown = redact(url);
    let output = command
        .envs(super::credentials::fetch_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SourceError::GitNotRunnable {
            url: shown.clone(),
            message: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stderr = if stderr.is_empty() {
        format!("git exited with {}", output.status)
    } else {
        stderr
    };
    // git may print the URL itself, credentials included.
    let stderr = stderr.replace(url, &shown);
    Err(SourceError::GitCommand {
        action,
        url: shown,
        stderr,
    })
}

/// A stable, file-name-safe key for a URL: hex of the first 16 bytes of its SHA-256.
pub(super) fn cache_key(url: &str) -> String {
    Sha256::digest(url.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL with any `user:password@` replaced, for messages.
fn redact(url: &str) -> String {
    match userinfo_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    }
}

/// Byte range of the userinfo in `scheme://userinfo@host/...`, if any.
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')? + start;
    Some((start, at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials_only() {
        assert_eq!(
            redact("https://user:tok@github.com/a/b.git"),
            "https://***@github.com/a/b.git"
        );
        assert_eq!(
            redact("https://github.com/a/b@c"),
            "https://github.com/a/b@c"
        );
        assert_eq!(redact("git@github.com:a/b.git"), "git@github.com:a/b.git");
    }

    #[test]
    fn cache_key_is_stable_and_distinct() {
        assert_eq!(cache_key("file:///x"), cache_key("file:///x"));
        assert_ne!(cache_key("file:///x"), cache_key("file:///y"));
        assert_eq!(cache_key("a").len(), 32);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod remote_tests {
    use super::super::test_support::{TestRepo, git_in};
    use super::*;

    fn cache_entries(cache: &Path) -> Vec<String> {
        fs::read_dir(cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn open_remote_clones_into_the_cache_then_fetches() {
        let t = TestRepo::new();
        t.write("app.yaml", "v: 1\n");
        let c1 = t.commit("one");
        let bare = t.tmp.path().join("remote.git");
        git_in(
            t.tmp.path(),
            t.tmp.path(),
            &["clone", "--bare", "--quiet", "repo", "remote.git"],
        );
        let url = format!("file://{}", bare.display());
        let cache = t.tmp.path().join("cache");

        let repo = Repo::open_remote(&url, &cache).unwrap();
        assert_eq!(repo.resolve("main").unwrap().id, c1);
        assert_eq!(repo.resolve("HEAD").unwrap().id, c1);
        assert_eq!(repo.label(), url);
        assert_eq!(repo.workdir(), None);
        assert_eq!(cache_entries(&cache), [cache_key(&url)]);
        drop(repo);

        t.write("app.yaml", "v: 2\n");
        let c2 = t.commit("two");
        t.git(&["push", "--quiet", bare.to_str().unwrap(), "main"]);
        let repo = Repo::open_remote(&url, &cache).unwrap();
        assert_eq!(repo.resolve("main").unwrap().id, c2);
        assert_eq!(
            repo.resolve("origin/main").unwrap().id,
            c2,
            "habit from clones"
        );
        let snap = repo.snapshot(&repo.resolve("main").unwrap(), "").unwrap();
        assert_eq!(snap.files["app.yaml"], b"v: 2\n");
        assert!(matches!(
            repo.working_tree(""),
            Err(SourceError::BareRepository { .. })
        ));
        assert_eq!(cache_entries(&cache), [cache_key(&url)]);

        // A local directory is opened where it is.
        let local = Repo::open_remote(t.dir.to_str().unwrap(), &cache).unwrap();
        assert!(local.workdir().is_some());
    }

    #[test]
    fn open_remote_failure_carries_git_stderr() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}/missing.git", tmp.path().display());
        let err = Repo::open_remote(&url, &tmp.path().join("cache")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("git clone of {url} failed: ")),
            "{message}"
        );
        assert!(
            message.len() > format!("git clone of {url} failed: ").len(),
            "{message}"
        );
        assert!(
            cache_entries(&tmp.path().join("cache")).is_empty(),
            "no half clone left behind"
        );
    }
}
